//! Extractors: JSON and query bodies with our error shape, and the three kinds of caller
//! (read from the request here, authenticated by the engine).

use super::Ctx;
use super::error::ApiErr;
use crate::engine::Credential;
use crate::store::{AppRow, MachineRow};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// Per-connection facts, inserted by the accept loop.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    pub peer: Option<std::net::SocketAddr>,
    /// Lowercase hex SHA-256 of the TLS client certificate, if one was presented.
    pub client_cert_sha256: Option<String>,
}

pub(super) fn clip(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.len() > 200 {
        format!("{}…", &s[..s.floor_char_boundary(200)])
    } else {
        s
    }
}

/// JSON in (with our error shape on bad input) and JSON out.
pub struct Json<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiErr;
    async fn from_request(req: Request, _: &S) -> Result<Self, ApiErr> {
        if !is_json(req.headers()) {
            return Err(ApiErr::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        // Our own reader, not axum's: it bounds time and memory (see `body`).
        let bytes = super::body::collect(req).await?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

/// `application/json` or `application/<anything>+json`, parameters ignored, as axum's own
/// extractor accepts.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    let Some((ty, sub)) = essence.split_once('/') else {
        return false;
    };
    let sub = sub.as_bytes();
    ty.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case(b"json")
            || (sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case(b"+json")))
}

/// From `from_bytes`, so only what the bytes themselves get wrong.
fn json_rejection(rej: JsonRejection) -> ApiErr {
    let text = clip(&rej.body_text());
    match rej {
        JsonRejection::JsonSyntaxError(_) => ApiErr::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {text}"),
        ),
        _ => ApiErr::new(StatusCode::BAD_REQUEST, "invalid_request", text),
    }
}

pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiErr;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiErr> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(rej) => Err(ApiErr::bad_request(clip(&rej.body_text()))),
        }
    }
}

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiErr> {
    let Some(v) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not valid text"))?;
    match v.strip_prefix("Bearer ") {
        Some(t) if !t.trim().is_empty() => Ok(Some(t.trim())),
        _ => Err(unauthorized(
            "the Authorization header must be `Bearer <key>`",
        )),
    }
}

fn unauthorized(msg: &str) -> ApiErr {
    ApiErr::new(StatusCode::UNAUTHORIZED, "unauthorized", msg)
}

/// A joined machine, authenticated by API key or by its registered client certificate.
pub struct MachineCaller(pub MachineRow);

impl FromRequestParts<Ctx> for MachineCaller {
    type Rejection = ApiErr;
    async fn from_request_parts(parts: &mut Parts, cx: &Ctx) -> Result<Self, ApiErr> {
        let cred = if let Some(key) = bearer(parts)? {
            Credential::Key(key)
        } else if let Some(fp) = parts
            .extensions
            .get::<ConnInfo>()
            .and_then(|c| c.client_cert_sha256.as_deref())
        {
            Credential::Cert(fp)
        } else {
            return Err(unauthorized(
                "missing machine credential: send Authorization: Bearer <machine key> or a registered client certificate",
            ));
        };
        Ok(MachineCaller(cx.engine.machine_caller(cred).await?))
    }
}

/// An administrator (admin API key only; machine keys are refused).
pub struct AdminCaller;

impl FromRequestParts<Ctx> for AdminCaller {
    type Rejection = ApiErr;
    async fn from_request_parts(parts: &mut Parts, cx: &Ctx) -> Result<Self, ApiErr> {
        let Some(key) = bearer(parts)? else {
            return Err(unauthorized(
                "missing admin credential: send Authorization: Bearer <admin key>",
            ));
        };
        cx.engine.admin_caller(key).await?;
        Ok(AdminCaller)
    }
}

/// A registered token app (bearer `lkp_…`). A revoked app's key no longer matches anything.
pub struct AppCaller(pub AppRow);

impl FromRequestParts<Ctx> for AppCaller {
    type Rejection = ApiErr;
    async fn from_request_parts(parts: &mut Parts, cx: &Ctx) -> Result<Self, ApiErr> {
        // Not `bearer`: the token app has always been answered this one sentence.
        let key = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                unauthorized("missing app credential: send Authorization: Bearer <app key>")
            })?;
        Ok(AppCaller(cx.engine.app_caller(key).await?))
    }
}
