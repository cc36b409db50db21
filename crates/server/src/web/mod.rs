//! The web console and the self-service portal (issue 23, docs/web.md): server-rendered
//! pages under `/ui`, a transport like `http/` — pages parse, authenticate the session
//! (`session.rs`), call one engine method and draw its answer (`layout.rs`).
//!
//! One middleware ([`headers`]) covers every `/ui` answer, refusals of the router included:
//! the security headers, the Origin / Sec-Fetch-Site check of every request that is not a
//! GET or HEAD, and refusals drawn as pages rather than the API's JSON.

pub mod admin;
pub mod assets;
pub mod csv;
pub mod layout;
pub mod me;
pub mod session;

#[cfg(test)]
mod tests;

use crate::config::TlsSetting;
use crate::http::Ctx;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use latchkey_proto::routes;
use maud::html;
use session::{MaybeSession, WebError};

/// No script but our own files, no inline script or style, no framing, forms only to us,
/// images ours or inline data (QR codes).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const FIXED_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CSP),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    // Not `no-referrer`: with it a browser sends `Origin: null` on every form post (Fetch,
    // "append a request `Origin` header"), and the same-origin check below would refuse
    // the site's own forms. `same-origin` still sends nothing to another site.
    ("referrer-policy", "same-origin"),
];

/// `/ui` and everything below `/ui/`.
pub fn is_ui(path: &str) -> bool {
    path == routes::UI || path.starts_with(routes::UI_ROOT)
}

/// A request path as log lines may print it: an invite link's code never (the path
/// itself is the secret), everything else as it is.
pub fn log_path(path: &str) -> &str {
    if path.starts_with("/ui/invite/") {
        "/ui/invite/…"
    } else {
        path
    }
}

/// The `/ui` routes, merged into `http::router`.
pub fn router() -> Router<Ctx> {
    Router::new()
        .route(routes::UI, get(to_root))
        .route(routes::UI_ROOT, get(root))
        .route(routes::UI_SIGNOUT, post(signout))
        .route(routes::UI_STATIC, get(assets::file))
        .merge(admin::router())
        .merge(me::router())
}

/// The headers of every `/ui` answer, the cross-site check of every state-changing request,
/// and the router's own refusals (404, 405, a body too large) drawn as pages.
pub async fn headers(State(cx): State<Ctx>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !is_ui(path) {
        return next.run(req).await;
    }
    let is_static = path.starts_with("/ui/static/");
    let mut resp = if req.method() != Method::GET && req.method() != Method::HEAD {
        match same_origin(&req, &cx.engine.cfg().tls) {
            Ok(()) => next.run(req).await,
            Err(e) => e.into_response(),
        }
    } else {
        next.run(req).await
    };
    let status = resp.status();
    let html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if (status.is_client_error() || status.is_server_error()) && !html {
        resp = layout::error_page(status, refusal_sentence(status));
    }
    let h = resp.headers_mut();
    for (name, value) in FIXED_HEADERS {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if !is_static || !status.is_success() && status != StatusCode::NOT_MODIFIED {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

fn refusal_sentence(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "There is no such page.",
        StatusCode::METHOD_NOT_ALLOWED => "This page does not take that kind of request.",
        StatusCode::PAYLOAD_TOO_LARGE => "The form is too large.",
        StatusCode::REQUEST_TIMEOUT => "The form took too long to arrive.",
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "This request is refused.",
        s if s.is_server_error() => "The server could not answer; try again.",
        _ => "The request could not be read.",
    }
}

/// A request that changes something must come from our own pages: `Sec-Fetch-Site`, when
/// the browser sends it, is `same-origin` (or `none`, typed by the person); `Origin`, when
/// sent, names this host. A request with neither is refused too: every browser that can
/// show these pages sends at least one on a POST, so one without both is not a form of ours
/// (fail closed).
fn same_origin(req: &Request, tls: &TlsSetting) -> Result<(), WebError> {
    let refuse =
        || WebError::Forbidden("This request came from another site and is refused.".into());
    let h = req.headers();
    let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if let Some(site) = site
        && site != "same-origin"
        && site != "none"
    {
        return Err(refuse());
    }
    let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let Some(origin) = origin else {
        return if site.is_some() {
            Ok(())
        } else {
            Err(refuse())
        };
    };
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .ok_or_else(refuse)?;
    // Behind a TLS-terminating proxy (`insecure_http`) the browser's origin is https.
    let ok = origin == format!("https://{host}")
        || (*tls == TlsSetting::InsecureHttp && origin == format!("http://{host}"));
    if ok { Ok(()) } else { Err(refuse()) }
}

/// `GET /ui` → `/ui/`.
async fn to_root() -> Response {
    layout::see_other(routes::UI_ROOT)
}

/// `GET /ui/`: the console for an admin, the portal for a user, else the two sign-in links.
async fn root(MaybeSession(s): MaybeSession) -> Response {
    match s.map(|(_, s)| s.subject) {
        Some(crate::engine::Subject::Admin(_)) => layout::see_other(routes::UI_ADMIN),
        Some(crate::engine::Subject::User { .. }) => layout::see_other("/ui/me/"),
        None => layout::html_response(
            StatusCode::OK,
            layout::page(
                "Sign in",
                &layout::Nav::default(),
                html! {
                    h1 { "latchkey" }
                    div.card.narrow {
                        p { "Sign in to manage your own second factors, or to the admin console." }
                        div.actions {
                            a.button #signin-user href=(session::USER_SIGNIN) { "Sign in to your account" }
                            a.button.secondary #signin-admin href=(session::ADMIN_SIGNIN) { "Admin console" }
                        }
                    }
                },
            ),
        ),
    }
}

#[derive(serde::Deserialize)]
struct SignoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/signout`: ends the session (admin or user) after its CSRF check.
async fn signout(
    State(cx): State<Ctx>,
    MaybeSession(s): MaybeSession,
    req: Request,
) -> Result<Response, WebError> {
    let Some((cookie, session)) = s else {
        return Ok(layout::see_other(routes::UI_ROOT));
    };
    let body = crate::http::body::collect(req)
        .await
        .map_err(|e| WebError::Invalid(e.message))?;
    let form: SignoutForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| WebError::Invalid("The form is malformed.".into()))?;
    session::check_csrf(&session, &form.csrf)?;
    cx.engine.web_session_close(&cookie).await?;
    let mut r = layout::see_other(routes::UI_ROOT);
    r.headers_mut()
        .append(header::SET_COOKIE, session::clear_cookie(session::COOKIE));
    Ok(r)
}
