//! The server's engine: every decision and every store access. Logins end in an explicit
//! allow, challenge, retry or deny; store errors propagate as errors (HTTP answers 503),
//! never as a grant. The HTTP layer authenticates the caller through the engine, parses,
//! calls one method and maps its typed answer.

use crate::store::StoreError;

mod account;
mod admin_users;
pub mod admins;
mod callers;
mod enrol;
mod events;
mod fido2;
mod inline_enrol;
mod inline_link;
mod invites;
mod login;
mod machines;
pub mod messages;
mod offline;
mod otp;
mod policies;
pub use policies::PolicyDetail;
mod push;
mod self_service;
mod service;
mod sessions;
pub mod smartcard;
mod token_app;
mod tokens;
mod validate;
mod wakeups;
mod web_keys;
pub mod web_sessions;
mod web_signin;

#[cfg(test)]
pub(crate) mod tests;

pub use admins::{AdminSignIn, SIGNIN_REFUSED};
pub use callers::Credential;
pub use enrol::{CodeKind, IssuedCode};
pub use fido2::{NO_WEB_RP_ID, user_handle};
pub use invites::{INVITE_GONE, INVITE_PATH, INVITE_TTL, Invite};
pub use messages::{GENERIC_DENY, NO_ATTEMPTS, REG_GONE, Said, TX_GONE};
pub use offline::{Answered, Attach};
pub use push::{MAX_WAIT, PUSH_TTL, PushOutcome};
pub use self_service::{
    Me, NEEDS_STRONG_SIGNIN, OwnAppLink, OwnLogin, OwnTotp, Tested, TotpConfirmed,
};
pub use service::{Actor, Engine, EngineParts, now};
pub use sessions::parse_hours;
pub use validate::{validate_client_id, validate_user_name};
pub use web_keys::KeyCreate;
pub use web_sessions::{Strength, Subject, WebSession};
pub use web_signin::{
    APP_SEED_REFUSED, CodeSignin, KeyChallenge, PORTAL_SIGNIN_REFUSED, PushSignin, SignedIn,
    WEB_MACHINE,
};

/// Who is calling, once the caller is authenticated: the reason an HTTP route may refuse
/// is one of these, never a string picked by the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthorized {
    /// A machine key that matches no machine.
    MachineKey,
    /// A client certificate registered to no machine.
    MachineCert,
    AdminKey,
    /// A token app key that matches no app (revoked, or never registered).
    AppKey,
    JoinToken,
    AppRegistrationCode,
    SmartcardEnrollCode,
    /// An invite link's code: unknown, used, expired, or its user disabled.
    InviteCode,
}

/// A credential of the wrong kind for the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    AdminKeyOnMachineRoute,
    MachineKeyOnAdminRoute,
    /// A self-service session opened by an invite link, for what needs the user's own
    /// sign-in (removing a factor, reporting a login).
    NeedsStrongSignin,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Invalid(String),
    /// An imported OATH secret that is not usable.
    #[error("{0}")]
    BadSecret(String),
    #[error("{0}")]
    NotFound(String),
    #[error(
        "client_id {0:?} has no policy; create one with `latchkey policy set {0} mfa_required=true`"
    )]
    UnknownClient(String),
    #[error("stored policy is invalid: {0}")]
    BadPolicy(String),
    /// A stored policy that does not resolve, shown to the admin who asked for it.
    #[error("{0}")]
    PolicyView(String),
    #[error("unauthorized: {0:?}")]
    Unauthorized(Unauthorized),
    #[error("forbidden: {0:?}")]
    Forbidden(Forbidden),
    /// A FIDO2 registration step refused (the person is told why).
    #[error("{0:?}")]
    Fido2Refused(messages::KeyRegistration),
    /// Randomness or key generation failed.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// A new login transaction's id ([`crate::store::tx_id`]): the current time, then 16
/// random bytes that make it unguessable.
pub fn new_tx_id() -> std::result::Result<latchkey_proto::TxId, StoreError> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let random =
        latchkey_crypto::random_bytes(16).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    stored(crate::store::tx_id(ms, &random))
}

/// An identifier the server made or stored after its validator, read back into its type: one
/// that no longer parses is a corrupt row or a broken generator, never the caller's mistake,
/// so it is an internal error and nothing is decided on it.
pub fn stored<T>(v: String) -> std::result::Result<T, StoreError>
where
    T: TryFrom<String, Error = latchkey_proto::InvalidId>,
{
    T::try_from(v).map_err(|e| StoreError::Corrupt(format!("stored {}: {e}", e.field)))
}

/// A random identifier: `bytes` random bytes, lowercase base32.
pub fn new_id(bytes: usize) -> std::result::Result<String, StoreError> {
    let raw =
        latchkey_crypto::random_bytes(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(latchkey_crypto::base32_encode(&raw).to_ascii_lowercase())
}
