//! `/ui/invite/{code}`: an invite link's landing. Opening the link (GET or HEAD) spends
//! nothing and says nothing about the account: a page with one button, `#invite-open`,
//! whose POST (a sign-in form's double-submit token, as no session exists yet) redeems the
//! code, opens an invite session and goes on to `/ui/me/`. So mail scanners and link
//! previews that fetch the link leave it usable, and another site cannot switch a browser
//! into someone else's account by sending it there (login CSRF): the POST must come from
//! this page. No log line prints the path (web::log_path).

use crate::engine::{INVITE_GONE, SignedIn, Strength};
use crate::http::Ctx;
use crate::web::layout::{self, Nav};
use crate::web::session::{SigninCsrf, SigninForm, WebError, WebResult};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use maud::html;

/// `GET /ui/invite/{code}`: the page with the button; the code is not looked at.
pub async fn show(headers: HeaderMap) -> WebResult<Response> {
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(WebError::Forbidden(
            "An API key is not a web session: open the link in a browser.".into(),
        ));
    }
    let pre = SigninCsrf::for_form(&headers)?;
    // No `action`: the form posts to this very address, so the code is not copied into
    // the page.
    let body = html! {
        h1 { "Open your self-service page" }
        form.card.narrow #invite-form method="post" {
            (layout::signin_csrf(&pre))
            p { "This one-time link opens the page where you add and manage your second factors. It works once: after that, sign in or ask your administrator for a new link." }
            p.muted { "If you did not expect this link, close this page." }
            button #invite-open type="submit" { "Open your self-service page" }
        }
    };
    let mut r = layout::html_response(
        StatusCode::OK,
        layout::page("Open your self-service page", &Nav::default(), body),
    );
    if let Some(c) = pre.set_cookie() {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

/// The button's form: its token only.
#[derive(serde::Deserialize)]
pub struct OpenFields {}

/// `POST /ui/invite/{code}`: redeems the code once, replaces the browser's session with an
/// invite session, 303 to `/ui/me/`.
pub async fn open(
    State(cx): State<Ctx>,
    Path(code): Path<String>,
    SigninForm { ip, old_cookie, .. }: SigninForm<OpenFields>,
) -> WebResult<Response> {
    if !cx.signin_limiter.allow(&ip) {
        return Err(WebError::TooMany);
    }
    let user = match cx.engine.invite_redeem(&code, &ip).await {
        Ok(user) => user,
        Err(crate::engine::EngineError::Unauthorized(_)) => {
            return Ok(layout::error_page(StatusCode::GONE, INVITE_GONE));
        }
        Err(e) => return Err(e.into()),
    };
    let signed = SignedIn {
        user,
        strength: Strength::Invite,
    };
    super::signin::open(&cx, signed, &ip, old_cookie.as_deref()).await
}
