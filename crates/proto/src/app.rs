//! Token app (push) API: registration through a one-time link, the push long-poll, signed
//! approvals and denials, badge in/out.

use crate::{ClientId, Secret, TxId, UserName};
use serde::{Deserialize, Serialize};

/// `POST /v1/admin/users/{name}/apps`: a one-time registration link for a token app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AppLinkCreate {
    /// Lifetime in seconds (default 15 min).
    #[serde(default)]
    pub expires_in: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct AppLinkCreated {
    /// The one-time registration code (the CLI builds the link from it).
    pub code: Secret,
    pub expires_at: i64,
    /// `sha256:HEX` of the server's TLS certificate, for the link's pin.
    pub tls_fingerprint: String,
}

/// `POST /v1/apps/register` (the code is the credential).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AppRegister {
    pub code: Secret,
    /// Shown to admins, e.g. "alice's phone".
    pub device_name: String,
    /// X25519 public key (32 bytes, base64): offline challenges are sealed to it.
    pub x25519_public: String,
    /// Ed25519 public key (32 bytes, base64): approvals are signed with it.
    pub ed25519_public: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct AppRegistered {
    pub app_id: String,
    pub user: UserName,
    /// Bearer credential for the app's own calls (pending, respond, badge).
    pub app_key: String,
    /// TOTP seed for plain codes (`otpauth://` URI).
    pub otpauth_uri: String,
}

/// A login waiting for approval, as the app sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct PushRequest {
    pub tx: TxId,
    pub user: UserName,
    /// Host name of the machine the login happens on.
    pub host: String,
    pub client_id: ClientId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhost: Option<String>,
    pub expires_at: i64,
    /// Random value the approval signature must cover (no replay onto another request).
    pub nonce: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        }
    }
}

/// `POST /v1/apps/respond`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PushResponse {
    pub tx: TxId,
    pub decision: Decision,
    /// The number the person typed (number matching); absent for a denial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    pub nonce: String,
    /// Ed25519 signature (base64) over [`push_signing_bytes`].
    pub signature: String,
    /// Why the person denied, if they said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The exact bytes an approval or denial signs: domain, transaction, decision, number, nonce.
pub fn push_signing_bytes(
    tx: &str,
    decision: Decision,
    number: Option<u32>,
    nonce: &str,
) -> Vec<u8> {
    let number = number.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    format!(
        "latchkey-push-v1\n{tx}\n{}\n{number}\n{nonce}",
        decision.as_str()
    )
    .into_bytes()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct PushVerdict {
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum BadgeState {
    In,
    Out,
}

/// `POST /v1/apps/badge`: presence, signed like approvals.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Badge {
    pub state: BadgeState,
    /// Unix seconds when the person badged; must be within 5 min of the server's clock.
    pub time: i64,
    /// Ed25519 signature (base64) over [`badge_signing_bytes`].
    pub signature: String,
}

pub fn badge_signing_bytes(app_id: &str, state: BadgeState, time: i64) -> Vec<u8> {
    let state = match state {
        BadgeState::In => "in",
        BadgeState::Out => "out",
    };
    format!("latchkey-badge-v1\n{app_id}\n{state}\n{time}").into_bytes()
}

/// Answer to `POST /v1/login/{tx}/push`: the number the login screen shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct PushStarted {
    pub number: u32,
    pub expires_in: u64,
    pub message: String,
}

/// Answer to `POST /v1/login/{tx}/push`: the number to show, or a denial.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum PushStartResult {
    Started(PushStarted),
    Step(crate::login::LoginStepResult),
}
