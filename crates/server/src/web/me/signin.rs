//! `/ui/me/signin`: the user's own sign-in, name first, then one of two ways that each need
//! two factors: a security key or passkey with user verification (`keys.rs`), or a code
//! from the authenticator plus an approval in the token app (here). Rate-limited per
//! address like the admin sign-in; the user's lockout counts every wrong code.

use crate::engine::{CodeSignin, PushSignin, SignedIn, Subject};
use crate::http::Ctx;
use crate::web::layout::{self, FlashQuery, Nav};
use crate::web::session::{self, MaybeSession, SigninCsrf, SigninForm, WebResult};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use latchkey_proto::{Secret, routes};
use maud::html;
use std::time::Duration;

/// The pending push sign-in's transaction id, between the code and the approval: a
/// cookie, so it is in no URL or log, and SameSite=Strict like the session's.
pub const PUSH_COOKIE: &str = "__Host-latchkey-push";
/// How long one load of the waiting page waits for the approval before it refreshes.
const WAIT_STEP: Duration = Duration::from_secs(5);

pub const FLASH: &[(&str, &str)] = &[
    (
        "toomany",
        "Too many sign-in attempts from your address; wait a minute and try again.",
    ),
    ("expired", "The sign-in ran out of time: start again."),
];

/// `GET /ui/me/signin`.
pub async fn form(
    State(cx): State<Ctx>,
    MaybeSession(s): MaybeSession,
    headers: HeaderMap,
    Query(q): Query<FlashQuery>,
) -> WebResult<Response> {
    // A strong session has nothing to gain here; an invite session signs in to become one.
    if let Some((_, s)) = &s
        && matches!(
            s.subject,
            Subject::User {
                strength: crate::engine::Strength::Strong,
                ..
            }
        )
        && q.err.is_none()
    {
        return Ok(layout::see_other(routes::UI_ME));
    }
    let pre = SigninCsrf::for_form(&headers)?;
    // A refusal's own sentence is drawn by the POST's answer itself (`refused`): before
    // a session there is no flash store, and no sentence goes into a URL.
    let nav = Nav {
        flash: q.flash(FLASH, None),
        ..Nav::default()
    };
    let key_note = cx.engine.cfg().web_rp_id.is_none();
    let body = signin_body(&pre, key_note);
    let mut r = layout::html_response(StatusCode::OK, layout::page("Sign in", &nav, body));
    if let Some(c) = pre.set_cookie() {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

fn signin_body(pre: &SigninCsrf, key_note: bool) -> maud::Markup {
    html! {
        h1 { "Sign in to your account" }
        form.card.narrow #signin-form method="post" action=(routes::UI_ME_SIGNIN_CODE) {
            (layout::signin_csrf(pre))
            (layout::field("signin-name", "name", "Your user name", "", None, "text", Some("username")))
            h2 { "With a security key or passkey" }
            @if key_note {
                p.muted { (crate::engine::NO_WEB_RP_ID) }
            }
            button #signin-key type="submit" formaction=(routes::UI_ME_SIGNIN_KEY) { "Use a security key or passkey" }
            h2 { "With a code and your phone" }
            (layout::field("signin-code", "code", "Code from your authenticator app", "", Some("Then approve the request in the latchkey app"), "text", Some("one-time-code")))
            button #signin-push type="submit" { "Send the code and ask my phone" }
        }
        p.muted { "New here? Ask your administrator for an invite link." }
        p { a href=(session::ADMIN_SIGNIN) { "Admin console" } }
    }
}

/// The sign-in page again with the engine's sentence as its error line.
pub fn refused(pre_headers: &HeaderMap, sentence: &str, key_note: bool) -> WebResult<Response> {
    let pre = SigninCsrf::for_form(pre_headers)?;
    let nav = Nav {
        flash: Some(layout::Flash {
            kind: layout::FlashKind::Err,
            text: sentence.to_string(),
        }),
        ..Nav::default()
    };
    let mut r = layout::html_response(
        StatusCode::UNAUTHORIZED,
        layout::page("Sign in", &nav, signin_body(&pre, key_note)),
    );
    if let Some(c) = pre.set_cookie() {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

/// Opens the session of a finished sign-in (Strong) or a redeemed invite (Invite):
/// replaces the browser's session, drops the pre-session and push cookies, goes to
/// `/ui/me/`.
pub async fn open(
    cx: &Ctx,
    signed: SignedIn,
    ip: &str,
    old_cookie: Option<&str>,
) -> WebResult<Response> {
    if let Some(old) = old_cookie {
        cx.engine.web_session_close(old).await?;
    }
    let (cookie, _) = cx
        .engine
        .web_session_open(
            Subject::User {
                name: signed.user.into_string(),
                strength: signed.strength,
            },
            ip,
        )
        .await?;
    let mut r = layout::see_other(routes::UI_ME);
    let h = r.headers_mut();
    h.append(header::SET_COOKIE, session::session_cookie(&cookie));
    h.append(
        header::SET_COOKIE,
        session::clear_cookie(session::PRE_COOKIE),
    );
    h.append(header::SET_COOKIE, session::clear_cookie(PUSH_COOKIE));
    Ok(r)
}

#[derive(serde::Deserialize)]
pub struct CodeFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    code: Secret,
}

/// `POST /ui/me/signin/code`: the code; right, the push goes out and the waiting page
/// follows.
pub async fn code(
    State(cx): State<Ctx>,
    headers: HeaderMap,
    SigninForm { form, ip, .. }: SigninForm<CodeFields>,
) -> WebResult<Response> {
    if !cx.signin_limiter.allow(&ip) {
        return Ok(layout::see_other("/ui/me/signin?err=toomany"));
    }
    let key_note = cx.engine.cfg().web_rp_id.is_none();
    match cx
        .engine
        .signin_code(&form.name, form.code.expose(), &ip)
        .await?
    {
        CodeSignin::Refused(s) => refused(&headers, &s, key_note),
        CodeSignin::Push { ceremony, .. } => {
            let mut r = layout::see_other(routes::UI_ME_SIGNIN_WAIT);
            let c = format!(
                "{PUSH_COOKIE}={ceremony}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=120"
            );
            if let Ok(v) = HeaderValue::from_str(&c) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            Ok(r)
        }
    }
}

/// `GET /ui/me/signin/wait`: shows the number to type in the app and refreshes itself
/// (the `Refresh` header: no script) until the push is answered.
pub async fn wait(
    State(cx): State<Ctx>,
    headers: HeaderMap,
    super::PeerIp(ip): super::PeerIp,
) -> WebResult<Response> {
    let Some(ceremony) = session::cookie(&headers, PUSH_COOKIE).map(str::to_string) else {
        return Ok(layout::see_other("/ui/me/signin?err=expired"));
    };
    let key_note = cx.engine.cfg().web_rp_id.is_none();
    let number = cx.engine.signin_push_number(&ceremony).await?;
    match cx.engine.signin_push_wait(&ceremony, WAIT_STEP).await? {
        PushSignin::SignedIn(signed) => {
            let old = session::cookie(&headers, session::COOKIE);
            open(&cx, signed, &ip, old).await
        }
        PushSignin::Refused(s) => {
            let mut r = refused(&headers, &s, key_note)?;
            r.headers_mut()
                .append(header::SET_COOKIE, session::clear_cookie(PUSH_COOKIE));
            Ok(r)
        }
        PushSignin::Waiting => {
            let body = html! {
                h1 { "Approve on your phone" }
                div.card.narrow #push-wait {
                    @if let Some(n) = number {
                        p { "Type this number in the latchkey app to approve the sign-in:" }
                        p.push-number #push-number { (n) }
                    }
                    p.muted { "This page checks again by itself every few seconds." }
                    p { a href=(routes::UI_ME_SIGNIN_WAIT) { "Check now" } " · " a href=(routes::UI_ME_SIGNIN) { "Start again" } }
                }
            };
            let mut r = layout::html_response(
                StatusCode::OK,
                layout::page("Approve on your phone", &Nav::default(), body),
            );
            r.headers_mut().insert(
                HeaderName::from_static("refresh"),
                HeaderValue::from_static("1"),
            );
            Ok(r)
        }
    }
}
