//! The one error shape of the API: `{"error": "<code>", "message": "<one clear sentence>"}`.

use crate::engine::{EngineError, Forbidden, Unauthorized};
use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use latchkey_proto::{ApiError, ErrorCode};

#[derive(Debug)]
pub struct ApiErr {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiErr {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiErr {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let body = ApiError {
            error: self.code.as_str().to_string(),
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
                ErrorCode::Conflict,
                format!("{what} already exists"),
            ),
            other => {
                tracing::error!(error = %other, "store failure");
                ApiErr::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::StoreUnavailable,
                    "the server's database is unavailable; try again",
                )
            }
        }
    }
}

/// The status, code and sentence of a refused caller or one-time code.
fn unauthorized(why: Unauthorized) -> ApiErr {
    let (code, message) = match why {
        Unauthorized::MachineKey => (
            ErrorCode::Unauthorized,
            "the machine key is not valid (was the machine removed?)",
        ),
        Unauthorized::MachineCert => (
            ErrorCode::Unauthorized,
            "the client certificate is not registered to any machine",
        ),
        Unauthorized::AdminKey => (ErrorCode::Unauthorized, "the admin key is not valid"),
        Unauthorized::AppKey => (
            ErrorCode::Unauthorized,
            "this token app is not registered (was it revoked?)",
        ),
        Unauthorized::JoinToken => (
            ErrorCode::InvalidJoinToken,
            "the join token is unknown, already used or expired",
        ),
        Unauthorized::AppRegistrationCode => (
            ErrorCode::InvalidRegistrationCode,
            "the registration link is unknown, already used or expired: ask for a new one",
        ),
        Unauthorized::SmartcardEnrollCode => (
            ErrorCode::InvalidEnrollCode,
            "the enrollment code is unknown, already used, expired or for another user",
        ),
        Unauthorized::InviteCode => (ErrorCode::Unauthorized, crate::engine::INVITE_GONE),
    };
    ApiErr::new(StatusCode::UNAUTHORIZED, code, message)
}

fn forbidden(why: Forbidden) -> ApiErr {
    let message = match why {
        Forbidden::AdminKeyOnMachineRoute => {
            "machine endpoints need a machine credential, not an admin key"
        }
        Forbidden::MachineKeyOnAdminRoute => {
            "admin endpoints need an admin API key; machine keys are refused"
        }
        Forbidden::NeedsStrongSignin => crate::engine::NEEDS_STRONG_SIGNIN,
    };
    ApiErr::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
}

impl From<EngineError> for ApiErr {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(m) => ApiErr::bad_request(m),
            EngineError::BadSecret(m) => {
                ApiErr::new(StatusCode::BAD_REQUEST, ErrorCode::BadSecret, m)
            }
            EngineError::NotFound(m) => ApiErr::not_found(m),
            EngineError::PolicyView(m) => {
                ApiErr::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::PolicyError, m)
            }
            EngineError::Unauthorized(why) => unauthorized(why),
            EngineError::Forbidden(why) => forbidden(why),
            EngineError::Fido2Refused(why) => ApiErr::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Fido2RegistrationRefused,
                why.text(),
            ),
            EngineError::Internal(m) => {
                ApiErr::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Internal, m)
            }
            e @ EngineError::UnknownClient(_) => ApiErr::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnknownClientId,
                e.to_string(),
            ),
            EngineError::BadPolicy(m) => {
                tracing::error!(error = %m, "invalid stored policy");
                ApiErr::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::PolicyError,
                    "the client policy is invalid; an admin must fix it",
                )
            }
            EngineError::Store(s) => s.into(),
        }
    }
}
