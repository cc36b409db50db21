//! Extractors: JSON and query bodies with our error shape, and the two kinds of caller.

use super::error::ApiErr;
use crate::state::Shared;
use crate::store::MachineRow;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use latchkey_crypto::keys::hash_api_key;
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

impl FromRequestParts<Shared> for MachineCaller {
    type Rejection = ApiErr;
    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiErr> {
        let machine = if let Some(key) = bearer(parts)? {
            let hash = hash_api_key(key);
            let found = match state.machine_cache.get(&hash) {
                Some(m) => Some(m),
                None => {
                    let found = state.store.machine_by_key_hash(&hash).await?;
                    if let Some(m) = &found {
                        state.machine_cache.put(&hash, m.clone());
                    }
                    found
                }
            };
            if found.is_none() && state.store.admin_key_exists(&hash_api_key(key)).await? {
                return Err(ApiErr::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "machine endpoints need a machine credential, not an admin key",
                ));
            }
            found.ok_or_else(|| {
                unauthorized("the machine key is not valid (was the machine removed?)")
            })?
        } else if let Some(fp) = parts
            .extensions
            .get::<ConnInfo>()
            .and_then(|c| c.client_cert_sha256.clone())
        {
            let key = format!("cert:{fp}");
            match state.machine_cache.get(&key) {
                Some(m) => m,
                None => {
                    let m = state.store.machine_by_cert(&fp).await?.ok_or_else(|| {
                        unauthorized("the client certificate is not registered to any machine")
                    })?;
                    state.machine_cache.put(&key, m.clone());
                    m
                }
            }
        } else {
            return Err(unauthorized(
                "missing machine credential: send Authorization: Bearer <machine key> or a registered client certificate",
            ));
        };
        state.touch_machine(&machine.id).await;
        Ok(MachineCaller(machine))
    }
}

/// An administrator (admin API key only; machine keys are refused).
pub struct AdminCaller;

impl FromRequestParts<Shared> for AdminCaller {
    type Rejection = ApiErr;
    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiErr> {
        let Some(key) = bearer(parts)? else {
            return Err(unauthorized(
                "missing admin credential: send Authorization: Bearer <admin key>",
            ));
        };
        let hash = hash_api_key(key);
        if state.store.admin_key_exists(&hash).await? {
            return Ok(AdminCaller);
        }
        if state.store.machine_by_key_hash(&hash).await?.is_some() {
            return Err(ApiErr::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "admin endpoints need an admin API key; machine keys are refused",
            ));
        }
        Err(unauthorized("the admin key is not valid"))
    }
}
