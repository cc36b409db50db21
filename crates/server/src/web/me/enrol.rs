//! Adding and testing the user's own tokens: an authenticator app (`/ui/me/totp`: QR code,
//! secret, first code), the token app (`/ui/me/app`: its registration link), and a code
//! test of one token (`/ui/me/test/{id}`).

use super::home::refused;
use super::{invite_note, me, nav};
use crate::engine::{OwnTotp, TotpConfirmed};
use crate::http::Ctx;
use crate::web::layout::{self, Flash, FlashKind, FlashQuery, SAID};
use crate::web::session::{UserForm, UserSession, WebResult};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use latchkey_proto::{Secret, routes};
use maud::html;

/// The base32 secret in groups of four, for typing.
fn grouped(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `GET /ui/me/totp`: a fresh pending authenticator (replacing an unconfirmed one).
pub async fn totp_form(State(cx): State<Ctx>, user: UserSession) -> WebResult<Response> {
    let started = cx.engine.own_totp_start(&me(&user)).await?;
    Ok(totp_page(&user, &started, None))
}

fn totp_page(user: &UserSession, started: &OwnTotp, err: Option<String>) -> Response {
    let body = html! {
        h1 { "Add an authenticator app" }
        @if let Some(note) = invite_note(user) { p.card { (note) } }
        div.card {
            p { "Scan this QR code with your authenticator app (Google or Microsoft Authenticator, Aegis, FreeOTP…), or type the secret into it. It is shown only while you enrol." }
            (with_id(layout::qr_img(started.otpauth_uri.expose(), "QR code to scan with your authenticator app"), "totp-qr"))
            div.secret {
                span.muted { "Secret: " }
                span.value #totp-secret data-secret=(started.secret.expose()) { (grouped(started.secret.expose())) }
            }
        }
        form.card.narrow method="post" action=(routes::UI_ME_TOTP) {
            (layout::csrf_field(&user.session))
            input type="hidden" name="id" value=(started.id);
            (layout::field("totp-code", "code", "The code your app shows now", "", Some("6 digits"), "text", Some("one-time-code")))
            button #totp-confirm type="submit" { "Confirm" }
        }
        p { a href=(routes::UI_ME) { "Back to your tokens" } }
    };
    let flash = err.map(|text| Flash {
        kind: FlashKind::Err,
        text,
    });
    layout::html_response(
        StatusCode::OK,
        layout::page(
            "Add an authenticator app",
            &nav(user, "nav-me-totp", flash),
            body,
        ),
    )
}

/// `markup` (one `<img …>`, as `layout::qr_img` draws it) with an id added.
fn with_id(markup: maud::Markup, id: &str) -> maud::Markup {
    maud::PreEscaped(
        markup
            .into_string()
            .replacen("<img ", &format!("<img id=\"{id}\" "), 1),
    )
}

#[derive(serde::Deserialize)]
pub struct ConfirmFields {
    #[serde(default)]
    id: String,
    #[serde(default)]
    code: Secret,
}

/// `POST /ui/me/totp`: the first code. Wrong: the same secret again, with the reason.
pub async fn totp_confirm(
    State(cx): State<Ctx>,
    UserForm { user, form }: UserForm<ConfirmFields>,
) -> WebResult<Response> {
    let me = me(&user);
    let why = match cx
        .engine
        .own_totp_confirm(&me, &form.id, form.code.expose())
        .await?
    {
        TotpConfirmed::Enrolled { .. } => {
            return Ok(layout::see_other(&format!("{}?ok=totp", routes::UI_ME)));
        }
        TotpConfirmed::Wrong { left } => {
            format!(
                "That code was not right: type the code your app shows now ({left} tries left)."
            )
        }
        TotpConfirmed::Gone => {
            "That enrolment ran out (10 minutes, or too many wrong codes): scan this new QR code."
                .to_string()
        }
    };
    let pending = match cx.engine.own_totp_pending(&me, &form.id).await? {
        Some(p) => p,
        None => cx.engine.own_totp_start(&me).await?,
    };
    Ok(totp_page(&user, &pending, Some(why)))
}

/// `GET /ui/me/app`: a token-app registration link for the user's phone (15 minutes).
pub async fn app(
    State(cx): State<Ctx>,
    user: UserSession,
    headers: HeaderMap,
) -> WebResult<Response> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let link = cx.engine.own_app_link(&me(&user), host).await?;
    let url = link.url.expose();
    let body = html! {
        h1 { "Add the latchkey token app" }
        @if let Some(note) = invite_note(&user) { p.card { (note) } }
        div.card {
            p { "On your phone, scan this QR code with the camera, or open the link: the latchkey app opens and registers itself. It approves logins by push and answers offline logins." }
            (with_id(layout::qr_img(url, "QR code of the token app's registration link"), "app-qr"))
            p { a #app-link href=(url) { (url) } }
            p.muted { "The link works once, until " (layout::time(Some(link.expires_at))) ". With the command-line app: " code { "latchkey-token register '" (url) "'" } }
        }
        p { a href=(routes::UI_ME) { "Back to your tokens" } }
    };
    Ok(layout::html_response(
        StatusCode::OK,
        layout::page("Add the token app", &nav(&user, "nav-me", None), body),
    ))
}

/// `GET /ui/me/test/{id}`: a code field for one of the user's code tokens.
pub async fn test_form(
    State(cx): State<Ctx>,
    user: UserSession,
    Path(id): Path<String>,
    Query(q): Query<FlashQuery>,
) -> WebResult<Response> {
    let tokens = cx.engine.own_tokens(&me(&user)).await?;
    let Some(t) = tokens.iter().find(|t| t.id == id) else {
        return Err(crate::web::session::WebError::NotFound(
            "You have no token with this id.".into(),
        ));
    };
    let said = cx.engine.web_flash_take(&user.cookie).await?;
    let body = html! {
        h1 { "Test " (t.label) }
        p { "Type a code from this token to check that it works. The code is used up, as at a login; a wrong code counts toward your account's lockout." }
        form.card.narrow method="post" action=(latchkey_proto::routes::fill(routes::UI_ME_TEST, &[&t.id])) {
            (layout::csrf_field(&user.session))
            (layout::field("test-code", "code", "Code", "", Some("6 to 8 digits"), "text", Some("one-time-code")))
            button #test-go type="submit" { "Test the code" }
        }
        p { a href=(routes::UI_ME) { "Back to your tokens" } }
    };
    Ok(layout::html_response(
        StatusCode::OK,
        layout::page(
            "Test a token",
            &nav(&user, "nav-me", q.flash(&[], said)),
            body,
        ),
    ))
}

#[derive(serde::Deserialize)]
pub struct TestFields {
    #[serde(default)]
    code: Secret,
}

/// `POST /ui/me/test/{id}`: the verdict in the page's flash line.
pub async fn test_submit(
    State(cx): State<Ctx>,
    Path(id): Path<String>,
    super::PeerIp(ip): super::PeerIp,
    UserForm { user, form }: UserForm<TestFields>,
) -> WebResult<Response> {
    let back = latchkey_proto::routes::fill(routes::UI_ME_TEST, &[&id]);
    match cx
        .engine
        .own_token_test(&me(&user), &id, form.code.expose(), &ip)
        .await
    {
        Ok(t) => {
            cx.engine.web_flash_set(&user.cookie, &t.message).await?;
            let kind = if t.ok { "ok" } else { "err" };
            Ok(layout::see_other(&format!("{back}?{kind}={SAID}")))
        }
        Err(e) => refused(&cx, &user, &back, e.into()).await,
    }
}
