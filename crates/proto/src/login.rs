//! Machine login API: `POST /v1/login/start`, `POST /v1/login/{tx}/otp`.

use crate::Method;
use serde::{Deserialize, Serialize};

/// `POST /v1/login/start`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginStart {
    pub user: String,
    /// Access context: `login`, `unlock`, `elevation`, `remote` or an admin-defined id.
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhost: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<String>,
}

/// Answer to `POST /v1/login/start`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum LoginStartResult {
    /// The policy needs no second factor for this user and context.
    Allow { message: String },
    /// A second factor is needed; answer with the transaction id.
    Challenge {
        tx: String,
        methods: Vec<Method>,
        message: String,
        /// Seconds until the transaction expires.
        expires_in: u64,
        /// Present when `methods` offers `fido2`: what to ask the security key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fido2: Option<crate::fido2::Fido2Request>,
        /// Present when `methods` offers a smartcard.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        smartcard: Option<crate::smartcard::SmartcardRequest>,
    },
    /// Refused; `reason` is safe to show to the person logging in.
    Deny { reason: String },
}

/// `POST /v1/login/{tx}/otp`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginOtp {
    pub code: String,
}

/// Answer to a second-factor step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum LoginStepResult {
    Success {
        message: String,
    },
    Retry {
        attempts_left: u32,
        message: String,
    },
    Deny {
        reason: String,
    },
    /// A push is still waiting for the person (answer to `push/wait`): ask again.
    Pending {
        message: String,
    },
}

/// `POST /v1/account/check`: may this user log in now (PAM account management)?
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AccountCheck {
    pub user: String,
    pub client_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct AccountStatus {
    pub allowed: bool,
    /// Safe to show to the person; empty when allowed.
    pub message: String,
}
