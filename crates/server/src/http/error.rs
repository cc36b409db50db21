//! The one error shape of the API: `{"error": "<code>", "message": "<one clear sentence>"}`.

use crate::engine::EngineError;
use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use latchkey_proto::ApiError;

#[derive(Debug)]
pub struct ApiErr {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiErr {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiErr {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let body = ApiError {
            error: self.code.to_string(),
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiErr {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiErr::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{what} already exists"),
            ),
            other => {
                tracing::error!(error = %other, "store failure");
                ApiErr::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the server's database is unavailable; try again",
                )
            }
        }
    }
}

impl From<EngineError> for ApiErr {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(m) => ApiErr::bad_request(m),
            e @ EngineError::UnknownClient(_) => {
                ApiErr::new(StatusCode::BAD_REQUEST, "unknown_client_id", e.to_string())
            }
            EngineError::BadPolicy(m) => {
                tracing::error!(error = %m, "invalid stored policy");
                ApiErr::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "policy_error",
                    "the client policy is invalid; an admin must fix it",
                )
            }
            EngineError::Store(s) => s.into(),
        }
    }
}
