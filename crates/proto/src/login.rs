//! Machine login API: `POST /v1/login/start`, `POST /v1/login/{tx}/otp`.

use crate::{ClientId, Method, Secret, TxId, UserName};
use serde::{Deserialize, Serialize};

/// `POST /v1/login/start`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginStart {
    pub user: UserName,
    /// Access context: `login`, `unlock`, `elevation`, `remote` or an admin-defined id.
    pub client_id: ClientId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhost: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<String>,
    /// The shell can enrol a user without a token at this prompt: its first factor was
    /// verified (docs/enrollment.md). Sent only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enroll: bool,
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
        tx: TxId,
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
    /// The user has no token and the policy lets them enrol one now (only when the request
    /// said `enroll`). `pending_id` is the login transaction the enrolment belongs to.
    Enroll {
        pending_id: TxId,
        methods: Vec<crate::enroll::EnrollMethod>,
        message: String,
        /// Seconds until the pending enrolment expires.
        expires_in: u64,
        /// Logins this user may still finish without a token (`…/enroll/skip`); 0: none.
        grace_left: u32,
    },
}

/// `POST /v1/login/{tx}/otp`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginOtp {
    pub code: Secret,
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
    pub user: UserName,
    pub client_id: ClientId,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct AccountStatus {
    pub allowed: bool,
    /// Safe to show to the person; empty when allowed.
    pub message: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_otp_request_never_prints_its_code() {
        let req = LoginOtp {
            code: Secret::from("402917"),
        };
        let shown = format!("{req:?} {req:#?}");
        assert!(!shown.contains("402917"), "{shown}");
        assert_eq!(serde_json::to_string(&req).unwrap(), r#"{"code":"402917"}"#);
    }

    #[test]
    fn a_login_start_reads_and_prints_as_with_plain_strings() {
        let text = r#"{"user":"alice","client_id":"login","tty":"pts/0"}"#;
        // `enroll` is sent only when true.
        let start: LoginStart = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&start).unwrap(), text);
        assert_eq!(
            format!("{start:?}"),
            r#"LoginStart { user: "alice", client_id: "login", rhost: None, tty: Some("pts/0"), enroll: false }"#
        );
        for bad in [
            r#"{"user":"a/b","client_id":"login"}"#,
            r#"{"user":"alice","client_id":"lo gin"}"#,
        ] {
            assert!(serde_json::from_str::<LoginStart>(bad).is_err(), "{bad}");
        }
    }
}
