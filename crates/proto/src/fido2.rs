//! FIDO2 security keys: the login challenge's FIDO2 part, the assertion the agent posts back,
//! and the registration ceremony (`latchkey token add-fido2` → `latchkey-agent enroll-fido2`).
//!
//! Binary values (challenges, credential ids, authenticator data, signatures, client data,
//! attestation objects) travel as base64url without padding, as in WebAuthn.

use crate::admin::TokenInfo;
use crate::{Secret, UserName};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// WebAuthn's `userVerification` requirement, set per client policy
/// (`fido2.user_verification`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum UserVerification {
    /// PIN or biometrics must be done; an assertion without the UV flag is refused.
    Required,
    /// Done when the key can without asking for a PIN (built-in biometrics); not checked.
    #[default]
    Preferred,
    /// Not asked for.
    Discouraged,
}

impl UserVerification {
    pub fn as_str(self) -> &'static str {
        match self {
            UserVerification::Required => "required",
            UserVerification::Preferred => "preferred",
            UserVerification::Discouraged => "discouraged",
        }
    }
}

impl fmt::Display for UserVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UserVerification {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "required" => Ok(UserVerification::Required),
            "preferred" => Ok(UserVerification::Preferred),
            "discouraged" => Ok(UserVerification::Discouraged),
            _ => Err(format!("{s:?} is not required, preferred or discouraged")),
        }
    }
}

/// FIDO2 settings of a client policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Fido2Policy {
    #[serde(default)]
    pub user_verification: UserVerification,
}

/// The FIDO2 part of a login challenge: what the agent passes to authenticatorGetAssertion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Fido2Request {
    pub rp_id: String,
    /// Random, single-use, base64url.
    pub challenge: String,
    /// The user's registered credential ids (base64url): the allow list.
    pub allow_credentials: Vec<String>,
    pub user_verification: UserVerification,
}

/// `POST /v1/login/{tx}/fido2`: an authenticatorGetAssertion answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginFido2 {
    pub credential_id: String,
    pub authenticator_data: String,
    pub signature: String,
    /// The client data JSON whose SHA-256 was the clientDataHash.
    pub client_data_json: String,
}

/// `POST /v1/admin/users/{name}/fido2`: start a registration for a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Fido2RegistrationCreate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Seconds the code stays valid (default 900).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// The one-time registration code, shown once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Fido2RegistrationCreated {
    pub user: UserName,
    pub code: Secret,
    pub expires_at: i64,
    pub rp_id: String,
}

/// `POST /v1/fido2/register/start` (machine credential).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Fido2RegisterStart {
    pub user: UserName,
    pub code: Secret,
}

/// What the agent passes to authenticatorMakeCredential.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Fido2RegisterOptions {
    pub rp_id: String,
    pub rp_name: String,
    /// WebAuthn user handle (base64url).
    pub user_id: String,
    pub user_name: String,
    pub user_display_name: String,
    /// base64url
    pub challenge: String,
    /// COSE algorithms the server accepts, preferred first.
    pub algorithms: Vec<i64>,
    /// Credentials the user already has (base64url): the key refuses to register twice.
    pub exclude_credentials: Vec<String>,
    pub user_verification: UserVerification,
}

/// `POST /v1/fido2/register/finish` (machine credential).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Fido2RegisterFinish {
    pub user: UserName,
    pub code: Secret,
    /// base64url of the CTAP2 attestation object (`fmt`, `authData`, `attStmt`).
    pub attestation_object: String,
    /// base64url of the client data JSON.
    pub client_data_json: String,
}

/// Answer to a finished registration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Fido2Registered {
    pub token: TokenInfo,
    pub credential_id: String,
    /// AAGUID of the authenticator model (all zero for many keys without attestation).
    pub aaguid: String,
    pub user_verified: bool,
    pub attestation: String,
}
