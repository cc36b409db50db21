//! `/ui/signin`: the admin sign-in page (name, password and TOTP code in one form).

use crate::engine::{AdminSignIn, SIGNIN_REFUSED, Subject};
use crate::http::Ctx;
use crate::web::layout::{self, FlashQuery, Nav};
use crate::web::session::{self, MaybeSession, SigninCsrf, SigninForm, WebResult};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use latchkey_proto::{Secret, routes};
use maud::html;

const FLASH: &[(&str, &str)] = &[
    ("refused", SIGNIN_REFUSED),
    (
        "toomany",
        "Too many sign-in attempts from your address; wait a minute and try again.",
    ),
];

/// `GET /ui/signin`.
pub async fn form(
    MaybeSession(s): MaybeSession,
    headers: HeaderMap,
    Query(q): Query<FlashQuery>,
) -> WebResult<Response> {
    if let Some((_, s)) = &s
        && matches!(s.subject, Subject::Admin(_))
    {
        return Ok(layout::see_other(routes::UI_ADMIN));
    }
    let pre = SigninCsrf::for_form(&headers)?;
    let nav = Nav {
        flash: q.flash(FLASH, None),
        ..Nav::default()
    };
    let body = html! {
        h1 { "Admin console" }
        form.card.narrow method="post" action=(routes::UI_SIGNIN) {
            (layout::signin_csrf(&pre))
            (layout::field("name", "name", "Name", "", None, "text", Some("username")))
            (layout::field("password", "password", "Password", "", None, "password", Some("current-password")))
            (layout::field("code", "code", "Code from your authenticator app", "", Some("6 digits"), "text", Some("one-time-code")))
            button #signin type="submit" { "Sign in" }
        }
        p.muted { "Admins are created on the server with " code { "latchkey admin add NAME" } "." }
        p { a href=(session::USER_SIGNIN) { "Not an admin? Sign in to your own account." } }
    };
    let mut r = layout::html_response(StatusCode::OK, layout::page("Admin sign-in", &nav, body));
    if let Some(c) = pre.set_cookie() {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

#[derive(serde::Deserialize)]
pub struct SigninFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: Secret,
    #[serde(default)]
    code: Secret,
}

/// `POST /ui/signin`: rate-limited per address, then the engine decides.
pub async fn submit(
    State(cx): State<Ctx>,
    SigninForm {
        form,
        ip,
        old_cookie,
    }: SigninForm<SigninFields>,
) -> WebResult<Response> {
    if !cx.signin_limiter.allow(&ip) {
        return Ok(layout::see_other("/ui/signin?err=toomany"));
    }
    let name = form.name.trim();
    match cx
        .engine
        .admin_signin(name, &form.password, &form.code, &ip)
        .await?
    {
        AdminSignIn::Refused => Ok(layout::see_other("/ui/signin?err=refused")),
        AdminSignIn::Ok => {
            // Opening a session replaces the one the browser held.
            if let Some(old) = old_cookie {
                cx.engine.web_session_close(&old).await?;
            }
            let (cookie, _) = cx
                .engine
                .web_session_open(Subject::Admin(name.to_string()), &ip)
                .await?;
            let mut r = layout::see_other(routes::UI_ADMIN);
            r.headers_mut()
                .append(header::SET_COOKIE, session::session_cookie(&cookie));
            r.headers_mut().append(
                header::SET_COOKIE,
                session::clear_cookie(session::PRE_COOKIE),
            );
            Ok(r)
        }
    }
}
