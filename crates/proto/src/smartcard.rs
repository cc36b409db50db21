//! Smartcard (PKCS#11 certificate) wire types: the login challenge and answer, admin
//! registration, and machine enrollment with a one-time code.

use crate::{Secret, UserName};
use serde::{Deserialize, Serialize};

/// Part of `LoginStartResult::Challenge` when the user may answer with a smartcard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SmartcardRequest {
    /// 32 bytes to sign on the card, base64.
    pub challenge: String,
    /// SHA-256 fingerprints (lowercase hex of the DER) of the user's registered, currently
    /// valid certificates: the agent looks for one of these on the card.
    pub fingerprints: Vec<String>,
}

/// `POST /v1/login/{tx}/smartcard`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginSmartcard {
    /// Fingerprint of the certificate whose key signed.
    pub fingerprint: String,
    /// The card's signature of the challenge, base64 (RSA PKCS#1 v1.5, or ECDSA raw r ‖ s).
    pub signature: String,
    /// `rsa-pkcs1-sha256` or `ecdsa-p256-sha256`.
    pub mechanism: String,
}

/// What a smartcard token shows in listings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SmartcardInfo {
    pub fingerprint: String,
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// `POST /v1/admin/users/{name}/smartcards`: register a certificate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SmartcardAdd {
    /// The certificate, PEM.
    pub cert_pem: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// `POST /v1/admin/users/{name}/smartcards/enroll`: a one-time code for
/// `latchkey-agent enroll-smartcard`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SmartcardCodeCreate {
    /// Lifetime in seconds (default 900).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// A one-time enrollment code (shown once; stored hashed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SmartcardEnrollCode {
    pub user: UserName,
    pub code: Secret,
    pub expires_at: i64,
}

/// `POST /v1/smartcards/enroll` (machine credential + one-time code).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SmartcardEnroll {
    pub user: UserName,
    pub code: Secret,
    /// The certificate read from the card, DER in base64.
    pub cert: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}
