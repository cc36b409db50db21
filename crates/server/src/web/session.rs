//! Who is asking, for a `/ui` page: the session cookie read into an [`AdminSession`] or a
//! [`UserSession`], the CSRF check of every form, and the pre-session token of the sign-in
//! forms.
//!
//! An `Authorization` header is never a session: a machine key, an admin API key or a token
//! app's key on a page is refused (403), so a stolen API key cannot drive the console and a
//! page can never be reached by a script holding one. The Origin / Sec-Fetch-Site check of
//! every POST is in `web/mod.rs` (one middleware for all of `/ui`).

use super::layout;
use crate::engine::{EngineError, Strength, Subject, WebSession};
use crate::http::Ctx;
use crate::http::extract::ConnInfo;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// The session cookie: `__Host-` so it is Secure, host-only and `Path=/` by the browser's
/// own rule.
pub const COOKIE: &str = "__Host-latchkey";
/// The sign-in forms' double-submit cookie (before there is a session).
pub const PRE_COOKIE: &str = "__Host-latchkey-pre";

pub const ADMIN_SIGNIN: &str = "/ui/signin";
pub const USER_SIGNIN: &str = "/ui/me/signin";

/// A refusal or a detour of a `/ui` request, answered as a page (never the API's JSON).
#[derive(Debug)]
pub enum WebError {
    /// No (live) session: 303 to this sign-in page.
    SignIn(&'static str),
    Forbidden(String),
    NotFound(String),
    Invalid(String),
    // Used by the self-service portal (branch web-self); the allow goes when it is merged.
    #[allow(dead_code)]
    TooMany,
    Unavailable,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::SignIn(to) => {
                let mut r = layout::see_other(to);
                // A cookie that opens nothing is dropped.
                r.headers_mut()
                    .append(header::SET_COOKIE, clear_cookie(COOKIE));
                r
            }
            WebError::Forbidden(s) => layout::error_page(StatusCode::FORBIDDEN, &s),
            WebError::NotFound(s) => layout::error_page(StatusCode::NOT_FOUND, &s),
            WebError::Invalid(s) => layout::error_page(StatusCode::BAD_REQUEST, &s),
            WebError::TooMany => layout::error_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts from your address; wait a minute and try again.",
            ),
            WebError::Unavailable => layout::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server's database is unavailable; try again.",
            ),
        }
    }
}

impl From<EngineError> for WebError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound(s) => WebError::NotFound(s),
            EngineError::Invalid(s) | EngineError::BadSecret(s) | EngineError::PolicyView(s) => {
                WebError::Invalid(s)
            }
            EngineError::UnknownClient(_) | EngineError::BadPolicy(_) => {
                WebError::Invalid(e.to_string())
            }
            EngineError::Store(crate::store::StoreError::Conflict(what)) => {
                WebError::Invalid(format!("{what} already exists."))
            }
            EngineError::Forbidden(crate::engine::Forbidden::NeedsStrongSignin) => {
                WebError::Forbidden(crate::engine::NEEDS_STRONG_SIGNIN.into())
            }
            EngineError::Unauthorized(crate::engine::Unauthorized::InviteCode) => {
                WebError::Forbidden(crate::engine::INVITE_GONE.into())
            }
            EngineError::Fido2Refused(why) => WebError::Invalid(why.text()),
            other => {
                tracing::error!(error = %other, "web request failed");
                WebError::Unavailable
            }
        }
    }
}

pub type WebResult<T> = Result<T, WebError>;

/// The value of cookie `name` among the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// `Set-Cookie` of the session: Secure, HttpOnly, SameSite=Strict, `Path=/`, no Domain, no
/// Max-Age (the browser forgets it when it closes; the server ends it earlier).
pub fn session_cookie(value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or(HeaderValue::from_static(
        "__Host-latchkey=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
    ))
}

/// `Set-Cookie` that deletes cookie `name`.
pub fn clear_cookie(name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
    .unwrap_or(HeaderValue::from_static(
        "__Host-latchkey=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
    ))
}

/// The peer address a session is opened from (for the audit log and rate limits).
pub fn peer_ip(parts_ext: &axum::http::Extensions) -> String {
    parts_ext
        .get::<ConnInfo>()
        .and_then(|c| c.peer)
        .map(|p| p.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The CSRF check of a signed-in form: the field must equal the session's token (compared
/// in constant time).
pub fn check_csrf(session: &WebSession, form_value: &str) -> Result<(), WebError> {
    if latchkey_crypto::ct_eq(session.csrf.as_bytes(), form_value.as_bytes()) {
        Ok(())
    } else {
        Err(WebError::Forbidden(
            "This form is out of date or was not sent by this site; reload the page and try again."
                .into(),
        ))
    }
}

fn refuse_authorization(parts: &Parts) -> Result<(), WebError> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return Err(WebError::Forbidden(
            "An API key is not a web session: sign in to the console in a browser.".into(),
        ));
    }
    Ok(())
}

/// The live session of the request's cookie, if any.
async fn session_of(parts: &Parts, cx: &Ctx) -> Result<Option<(String, WebSession)>, WebError> {
    refuse_authorization(parts)?;
    let Some(value) = cookie(&parts.headers, COOKIE) else {
        return Ok(None);
    };
    let value = value.to_string();
    Ok(cx.engine.web_session(&value).await?.map(|s| (value, s)))
}

/// A signed-in admin. Without a session: 303 to `/ui/signin`; a user's session: 403.
#[derive(Debug, Clone)]
pub struct AdminSession {
    pub name: String,
    pub session: WebSession,
    pub cookie: String,
}

impl FromRequestParts<Ctx> for AdminSession {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, cx: &Ctx) -> Result<Self, WebError> {
        let Some((cookie, session)) = session_of(parts, cx).await? else {
            return Err(WebError::SignIn(ADMIN_SIGNIN));
        };
        match &session.subject {
            Subject::Admin(name) => Ok(AdminSession {
                name: name.clone(),
                cookie,
                session,
            }),
            Subject::User { .. } => Err(WebError::Forbidden(
                "This page is for administrators.".into(),
            )),
        }
    }
}

/// A signed-in user of the self-service portal. Without a session: 303 to
/// `/ui/me/signin`; an admin's session: 403.
// Used by the self-service portal (branch web-self); the allow goes when it is merged.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct UserSession {
    pub name: String,
    pub strength: Strength,
    pub session: WebSession,
    pub cookie: String,
}

impl FromRequestParts<Ctx> for UserSession {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, cx: &Ctx) -> Result<Self, WebError> {
        let Some((cookie, session)) = session_of(parts, cx).await? else {
            return Err(WebError::SignIn(USER_SIGNIN));
        };
        match &session.subject {
            Subject::User { name, strength } => Ok(UserSession {
                name: name.clone(),
                strength: *strength,
                cookie,
                session,
            }),
            Subject::Admin(_) => Err(WebError::Forbidden(
                "Sign in as a user to see this page.".into(),
            )),
        }
    }
}

/// Any live session, or none (the start page, sign-out).
pub struct MaybeSession(pub Option<(String, WebSession)>);

impl FromRequestParts<Ctx> for MaybeSession {
    type Rejection = WebError;
    async fn from_request_parts(parts: &mut Parts, cx: &Ctx) -> Result<Self, WebError> {
        Ok(MaybeSession(session_of(parts, cx).await?))
    }
}

#[derive(serde::Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// A form body (`application/x-www-form-urlencoded`), read within the router's size and
/// time limits; returns the parsed form and its `csrf` field.
async fn read_form<T: DeserializeOwned>(req: Request) -> Result<(T, String), WebError> {
    let form_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(WebError::Invalid("Send the form as a web form.".into()));
    }
    let bytes = crate::http::body::collect(req)
        .await
        .map_err(|e| WebError::Invalid(e.message))?;
    let csrf = serde_urlencoded::from_bytes::<CsrfOnly>(&bytes)
        .map(|c| c.csrf)
        .unwrap_or_default();
    let form = serde_urlencoded::from_bytes::<T>(&bytes)
        .map_err(|_| WebError::Invalid("The form is incomplete or malformed.".into()))?;
    Ok((form, csrf))
}

/// A POST of the admin console: the admin's session, its CSRF token checked, then the form.
/// Nothing of the form is acted on before the check.
pub struct AdminForm<T> {
    pub admin: AdminSession,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<Ctx> for AdminForm<T> {
    type Rejection = WebError;
    async fn from_request(req: Request, cx: &Ctx) -> Result<Self, WebError> {
        let (mut parts, body) = req.into_parts();
        let admin = AdminSession::from_request_parts(&mut parts, cx).await?;
        let (form, csrf) = read_form::<T>(Request::from_parts(parts, body)).await?;
        check_csrf(&admin.session, &csrf)?;
        Ok(AdminForm { admin, form })
    }
}

/// A POST of the self-service portal: the user's session, its CSRF token checked, the form.
// Used by the self-service portal (branch web-self); the allow goes when it is merged.
#[allow(dead_code)]
pub struct UserForm<T> {
    pub user: UserSession,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<Ctx> for UserForm<T> {
    type Rejection = WebError;
    async fn from_request(req: Request, cx: &Ctx) -> Result<Self, WebError> {
        let (mut parts, body) = req.into_parts();
        let user = UserSession::from_request_parts(&mut parts, cx).await?;
        let (form, csrf) = read_form::<T>(Request::from_parts(parts, body)).await?;
        check_csrf(&user.session, &csrf)?;
        Ok(UserForm { user, form })
    }
}

/// The double-submit token of a sign-in form: a random value in the `__Host-latchkey-pre`
/// cookie (HttpOnly, SameSite=Strict) and the same value in the form's hidden field. A
/// cross-site page can neither read the cookie nor set it (`__Host-`), so it cannot post a
/// matching pair.
#[derive(Debug, Clone)]
pub struct SigninCsrf {
    token: String,
    fresh: bool,
}

fn plausible_token(v: &str) -> bool {
    v.len() == 52 && v.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl SigninCsrf {
    /// The token of the request's pre-session cookie, or a new one (then
    /// [`SigninCsrf::set_cookie`] must go on the answer).
    pub fn for_form(headers: &HeaderMap) -> Result<SigninCsrf, WebError> {
        if let Some(v) = cookie(headers, PRE_COOKIE).filter(|v| plausible_token(v)) {
            return Ok(SigninCsrf {
                token: v.to_string(),
                fresh: false,
            });
        }
        let token = crate::engine::web_sessions::random_token()?;
        Ok(SigninCsrf { token, fresh: true })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The `Set-Cookie` for a new token (an hour), or None when the cookie is already there.
    pub fn set_cookie(&self) -> Option<HeaderValue> {
        self.fresh
            .then(|| {
                HeaderValue::from_str(&format!(
                    "{PRE_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=3600",
                    self.token
                ))
                .ok()
            })
            .flatten()
    }
}

/// A sign-in POST: the form, with its double-submit token checked against the cookie (in
/// constant time). An `Authorization` header is refused here too.
pub struct SigninForm<T> {
    pub form: T,
    pub ip: String,
    /// The session cookie the browser already holds, if any (replaced by the new one).
    pub old_cookie: Option<String>,
}

impl<T: DeserializeOwned> FromRequest<Ctx> for SigninForm<T> {
    type Rejection = WebError;
    async fn from_request(req: Request, _cx: &Ctx) -> Result<Self, WebError> {
        let (parts, body) = req.into_parts();
        refuse_authorization(&parts)?;
        let ip = peer_ip(&parts.extensions);
        let pre = cookie(&parts.headers, PRE_COOKIE).map(str::to_string);
        let old_cookie = cookie(&parts.headers, COOKIE).map(str::to_string);
        let (form, csrf) = read_form::<T>(Request::from_parts(parts, body)).await?;
        let ok = pre.as_deref().is_some_and(|p| {
            plausible_token(p) && latchkey_crypto::ct_eq(p.as_bytes(), csrf.as_bytes())
        });
        if !ok {
            return Err(WebError::Forbidden(
                "This sign-in form is out of date or was not sent by this site; reload the page and try again."
                    .into(),
            ));
        }
        Ok(SigninForm {
            form,
            ip,
            old_cookie,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-latchkey-pre=P; __Host-latchkey=S"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("S"));
        assert_eq!(cookie(&h, PRE_COOKIE), Some("P"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn the_session_cookie_has_its_attributes() {
        let c = session_cookie("V");
        let c = c.to_str().unwrap_or_default();
        assert!(c.starts_with("__Host-latchkey=V;"), "{c}");
        for a in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(a), "{c}");
        }
        assert!(!c.contains("Domain"), "{c}");
    }
}
