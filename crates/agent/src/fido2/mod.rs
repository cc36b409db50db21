//! FIDO2 security keys: the agent is the CTAP2 client (there is no browser on a login
//! screen). Layers, each over the one below and identical for every device:
//!
//! - [`hid`]: 64-byte HID reports over Linux hidraw or a Unix SOCK_SEQPACKET socket;
//! - [`ctaphid`]: CTAPHID framing, channel allocation, keep-alives, cancel;
//! - [`ctap2`]: getInfo, makeCredential, getAssertion, clientPIN in CBOR;
//! - [`pin`]: PIN protocol 1;
//! - this module: the operations the login engine, enrollment and (later) offline logins use.

pub mod ctap2;
pub mod ctaphid;
pub mod enroll;
pub mod hid;
pub mod pin;
#[cfg(unix)]
pub mod sys;

use crate::config::AgentConfig;
use ctap2::{Authenticator, GetAssertion, Info, status};
use latchkey_crypto::webauthn::{ORIGIN_AGENT, TYPE_GET, client_data_json, sha256};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fido2Error {
    #[error("No security key found: plug it in and try again")]
    NoDevice,
    #[error("{0} is not a FIDO2 (CTAP2) security key")]
    NotCtap2(String),
    #[error("No security key answered in time")]
    Timeout,
    #[error("security key I/O error: {0}")]
    Io(String),
    #[error("security key protocol error: {0}")]
    Protocol(String),
    #[error("security key error 0x{0:02x}")]
    Status(u8),
    #[error("Wrong security key PIN")]
    WrongPin { retries: Option<u64> },
}

impl Fido2Error {
    /// One line for the person at the login screen.
    pub fn user_message(&self, timeout: Duration) -> String {
        match self {
            Fido2Error::Timeout => {
                format!("No security key answered in {} s", timeout.as_secs().max(1))
            }
            Fido2Error::WrongPin {
                retries: Some(n), ..
            } => format!("Wrong security key PIN ({n} tries left before it locks)"),
            Fido2Error::Status(status::NO_CREDENTIALS) => {
                "This security key is not registered for this account".into()
            }
            Fido2Error::Status(status::PIN_BLOCKED) => {
                "The security key PIN is blocked: the key must be reset".into()
            }
            Fido2Error::Status(status::PIN_AUTH_BLOCKED) => {
                "Too many wrong PINs: unplug the security key and plug it in again".into()
            }
            Fido2Error::Status(status::PIN_NOT_SET) | Fido2Error::Status(status::PIN_REQUIRED) => {
                "This login needs a PIN on your security key, and none is set".into()
            }
            Fido2Error::Status(status::OPERATION_DENIED) => {
                "The security key refused (user verification failed or was denied)".into()
            }
            Fido2Error::Status(status::USER_ACTION_TIMEOUT)
            | Fido2Error::Status(status::KEEPALIVE_CANCEL) => {
                format!("No security key answered in {} s", timeout.as_secs().max(1))
            }
            Fido2Error::Status(status::CREDENTIAL_EXCLUDED) => {
                "This security key is already registered for this account".into()
            }
            other => other.to_string(),
        }
    }
}

/// Agent settings for security keys (`fido2_devices`, `fido2_timeout` in agent.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `unix:/path` or `/dev/hidrawN`; empty means: detect FIDO hidraw devices.
    pub devices: Vec<String>,
    /// How long a key has to answer (the person touching it included).
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            devices: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl Settings {
    pub fn from_config(cfg: &AgentConfig) -> Settings {
        Settings {
            devices: cfg.fido2_devices.clone(),
            timeout: cfg.fido2_timeout,
        }
    }

    pub fn device_specs(&self) -> Vec<String> {
        if self.devices.is_empty() {
            hid::detect_hidraw()
                .into_iter()
                .map(|p| p.display().to_string())
                .collect()
        } else {
            self.devices.clone()
        }
    }
}

/// Opens every configured (or detected) key that answers CTAPHID_INIT, in order.
pub fn open_all(settings: &Settings) -> Vec<Authenticator> {
    let mut out = Vec::new();
    for spec in settings.device_specs() {
        match hid::open(&spec).map_err(|e| Fido2Error::Io(e.to_string())) {
            Ok(dev) => match Authenticator::open(dev) {
                Ok(a) => out.push(a),
                Err(e) => tracing::info!(device = %spec, error = %e, "FIDO2 device skipped"),
            },
            Err(e) => tracing::debug!(device = %spec, error = %e, "FIDO2 device not available"),
        }
    }
    out
}

/// How user verification is done for one operation.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Uv {
    /// Not asked for.
    #[default]
    None,
    /// The key's built-in verification (fingerprint): `options.uv`.
    BuiltIn,
    /// A PIN, through a PIN token (protocol 1).
    Pin(Zeroizing<String>),
}

impl std::fmt::Debug for Uv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Uv::None => "None",
            Uv::BuiltIn => "BuiltIn",
            Uv::Pin(_) => "Pin(<redacted>)",
        })
    }
}

/// How to reach user verification with a key, from its getInfo, when the relying party
/// requires it (`required`) or would like it without asking for a PIN (`preferred`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UvPlan {
    None,
    BuiltIn,
    NeedPin,
    /// Required, but the key has neither a PIN nor built-in verification set up.
    Impossible,
}

pub fn uv_plan(info: &Info, required: bool, preferred: bool) -> UvPlan {
    if info.uv == Some(true) && (required || preferred) {
        return UvPlan::BuiltIn;
    }
    if !required {
        return UvPlan::None;
    }
    // A key that lists no PIN protocols is a CTAP 2.0 key: protocol 1.
    let protocol_1 = info.pin_protocols.is_empty() || info.pin_protocols.contains(&pin::PROTOCOL_1);
    if info.client_pin == Some(true) && protocol_1 {
        return UvPlan::NeedPin;
    }
    UvPlan::Impossible
}

/// What to ask a key for at login.
#[derive(Debug, Clone)]
pub struct AssertionRequest<'a> {
    pub rp_id: &'a str,
    pub challenge: &'a [u8],
    pub allow_list: &'a [Vec<u8>],
    pub uv: &'a Uv,
}

/// A key's answer with the client data it signed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub credential_id: Vec<u8>,
    pub authenticator_data: Vec<u8>,
    pub signature: Vec<u8>,
    pub client_data_json: String,
}

/// One authenticatorGetAssertion (with a PIN token first when `uv` is a PIN). Reused by
/// online and offline logins; the caller verifies the answer (server or cached key).
pub fn get_assertion(
    auth: &mut Authenticator,
    req: &AssertionRequest<'_>,
    deadline: Instant,
    on_touch: &mut dyn FnMut(),
) -> Result<Assertion, Fido2Error> {
    let client_data_json = client_data_json(TYPE_GET, req.challenge, ORIGIN_AGENT);
    let hash = sha256(client_data_json.as_bytes());
    let token = match req.uv {
        Uv::Pin(p) => Some(auth.pin_token(p, deadline)?),
        _ => None,
    };
    let a = auth.get_assertion(
        &GetAssertion {
            rp_id: req.rp_id,
            client_data_hash: &hash,
            allow: req.allow_list,
            uv: *req.uv == Uv::BuiltIn,
        },
        token.as_deref().map(|t| &t[..]),
        deadline,
        on_touch,
    )?;
    Ok(Assertion {
        credential_id: a.credential_id,
        authenticator_data: a.auth_data,
        signature: a.signature,
        client_data_json,
    })
}

/// [`get_assertion_any`] on the blocking pool (a touch can take seconds), with owned inputs.
/// A task that could not run is reported as an I/O error.
pub async fn get_assertion_blocking(
    settings: Settings,
    rp_id: String,
    challenge: Vec<u8>,
    allow_list: Vec<Vec<u8>>,
    uv: Uv,
) -> Result<Assertion, Fido2Error> {
    tokio::task::spawn_blocking(move || {
        get_assertion_any(
            &settings,
            &AssertionRequest {
                rp_id: &rp_id,
                challenge: &challenge,
                allow_list: &allow_list,
                uv: &uv,
            },
        )
    })
    .await
    .unwrap_or_else(|e| Err(Fido2Error::Io(format!("the security key task failed: {e}"))))
}

/// Asks each available key in turn until one holds an allowed credential.
pub fn get_assertion_any(
    settings: &Settings,
    req: &AssertionRequest<'_>,
) -> Result<Assertion, Fido2Error> {
    let deadline = Instant::now() + settings.timeout;
    let mut keys = open_all(settings);
    if keys.is_empty() {
        return Err(Fido2Error::NoDevice);
    }
    let mut last = Fido2Error::NoDevice;
    for key in keys.iter_mut() {
        match get_assertion(key, req, deadline, &mut || {}) {
            Ok(a) => return Ok(a),
            Err(e @ Fido2Error::Status(status::NO_CREDENTIALS)) => {
                tracing::info!(device = %key.device_name(), "security key holds none of the user's credentials");
                last = e;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// getInfo of the first available key.
pub fn probe(settings: &Settings) -> Result<Info, Fido2Error> {
    let deadline = Instant::now() + Duration::from_secs(5).min(settings.timeout);
    let mut keys = open_all(settings);
    let Some(first) = keys.first_mut() else {
        return Err(Fido2Error::NoDevice);
    };
    first.get_info(deadline)
}
