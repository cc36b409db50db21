//! Admin API under `/v1/admin/…` (admin API key only).

use crate::{Method, OtpAlgorithm, TokenKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct User {
    pub name: String,
    pub display_name: String,
    pub groups: Vec<String>,
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub token_count: u32,
    /// Unix seconds until which the user is locked out after failures, if locked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<i64>,
}

/// `POST /v1/admin/users/{name}/tokens`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OtpTokenCreate {
    pub kind: TokenKind,
    #[serde(default)]
    pub algorithm: Option<OtpAlgorithm>,
    #[serde(default)]
    pub digits: Option<u32>,
    /// TOTP time step in seconds.
    #[serde(default)]
    pub period: Option<u32>,
    /// Free text shown in listings, e.g. "phone".
    #[serde(default)]
    pub label: Option<String>,
    /// Import an existing token's seed (base32, e.g. from a hardware token's seed file)
    /// instead of generating one. The answer's otpauth URI then carries that seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub kind: TokenKind,
    pub algorithm: OtpAlgorithm,
    pub digits: u32,
    /// TOTP period; absent for HOTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u32>,
    pub label: String,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
    /// The certificate of a smartcard token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smartcard: Option<crate::smartcard::SmartcardInfo>,
}

/// Answer to a token enrolment: the only time the secret leaves the server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TokenEnrolled {
    pub token: TokenInfo,
    /// `otpauth://` Key Uri; contains the secret.
    pub otpauth_uri: String,
}

/// `POST /v1/admin/users/{name}/verify`: check a code as a login would (it is consumed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub code: crate::Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct VerifyResult {
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Server unreachable → no login without the offline flow.
    #[default]
    Closed,
    /// Server unreachable → login passes without MFA (must be chosen explicitly).
    Open,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum UnknownUser {
    #[default]
    Deny,
    Allow,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct OfflinePolicy {
    pub enabled: bool,
    pub max_days: u32,
    pub max_logins: u32,
    pub max_failures: u32,
}

/// A client policy, keyed by client_id (`*` is the fallback).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Policy {
    pub client_id: String,
    pub mfa_required: bool,
    pub methods: Vec<Method>,
    /// Users the policy applies to; empty with empty `groups` means everyone.
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub failmode: FailMode,
    pub unknown_user: UnknownUser,
    /// Failures before the user is locked out.
    pub lockout_threshold: u32,
    /// First lockout duration in seconds; doubles with each further failure.
    pub lockout_backoff: u64,
    pub lockout_max_backoff: u64,
    /// Wrong codes accepted inside one login transaction before it is denied.
    pub max_attempts: u32,
    /// Seconds a login transaction lives.
    pub tx_ttl: u64,
    pub offline: OfflinePolicy,
    #[serde(default)]
    pub fido2: crate::fido2::Fido2Policy,
    /// Session rules (events issue): absent in answers of older servers.
    #[serde(default)]
    pub session: SessionPolicy,
    /// Inline enrolment at the login prompt: absent in answers of older servers.
    #[serde(default)]
    pub enroll: EnrollPolicy,
    /// A user's "this wasn't me" on one of their logins (self-service portal) also disables
    /// the user (`report_locks_user`).
    #[serde(default)]
    pub report_locks_user: bool,
}

/// Inline enrolment rules of a client policy (docs/enrollment.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct EnrollPolicy {
    /// What a user without a token may enrol at the prompt (`enroll.inline`); empty: off.
    pub inline: Vec<crate::enroll::EnrollMethod>,
    /// Logins a user without a token may finish with the first factor alone while being
    /// asked to enrol (`enroll.grace_logins`), counted per user.
    pub grace_logins: u32,
    /// Unix seconds after which inline enrolment stops (`enroll.until`, a date): a rollout
    /// window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Seconds a pending enrolment lives (`enroll.ttl`).
    pub ttl: u64,
}

/// Session rules of a client policy, applied to sessions opened through that context.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SessionPolicy {
    /// Longest session in seconds (`session.max_hours`); 0: no limit.
    pub max_secs: u64,
    /// Lock the session when the user badges out.
    pub lock_on_badge_out: bool,
    /// Lock when no server answered for this many seconds
    /// (`session.lock_when_unreachable_after`); 0: never.
    pub lock_when_unreachable_after: u64,
}

/// `PATCH /v1/admin/policies/{client_id}`: `key=value` settings, parsed and validated by the
/// server (one place), e.g. `{"mfa_required": "true", "offline.max_days": "7"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyUpdate {
    pub settings: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JoinTokenCreate {
    /// Lifetime in seconds.
    pub expires_in: u64,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct JoinTokenCreated {
    pub join_token: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Machine {
    pub id: String,
    pub hostname: String,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<i64>,
    /// `api_key`, or `client_cert` when a certificate fingerprint is bound.
    pub credential: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct AuditEntry {
    pub id: i64,
    /// Unix seconds.
    pub time: i64,
    /// `admin`, `machine:<id>` or `system`.
    pub actor: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `ok`, `deny`, `fail`, `error`.
    pub result: String,
    pub detail: String,
}

/// Query string of `GET /v1/admin/audit`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `POST /v1/admin/tokens/{id}/resync`: two consecutive HOTP codes (RFC 4226 §7.4).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenResync {
    pub code1: crate::Secret,
    pub code2: crate::Secret,
}

/// `POST /v1/admin/users/{name}/invite`: a one-time link to the self-service portal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UserInviteCreate {
    /// Lifetime in seconds (default 24 h, at most 7 days).
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// Answer to `POST /v1/admin/users/{name}/invite`. A new invite replaces the user's older
/// one not used yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct UserInvited {
    pub user: crate::UserName,
    /// `https://HOST[:PORT]/ui/invite/CODE`: works once; shown only now.
    pub url: crate::Secret,
    pub expires_at: i64,
}

/// `POST /v1/admin/admins`: a web console admin (docs/web.md "Admin accounts"). The TOTP
/// secret is made by the server and answered once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AdminCreate {
    pub name: String,
    /// At least 12 characters.
    pub password: crate::Secret,
}

/// The new admin's TOTP secret, shown once: scan the otpauth URI into an authenticator app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct AdminCreated {
    pub name: String,
    pub otpauth_uri: String,
    /// The same secret, base32, for typing in.
    pub secret: String,
}

/// An admin account of the web console.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct AdminInfo {
    pub name: String,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_signin_at: Option<i64>,
    /// Set while sign-in is locked after repeated failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<i64>,
}
