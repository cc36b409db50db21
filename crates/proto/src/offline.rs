//! Offline login wire types: the signed bundle a server hands an agent after an online MFA
//! success, what rides along server answers (bundle, users to forget), and the QR challenge
//! the agent shows when no server answers.
//!
//! Decoders here are strict (exact versions, bounded sizes, unknown fields refused) and never
//! panic on any input: a stolen or corrupted state file must not crash the agent.

use serde::{Deserialize, Serialize};

/// Version of the bundle payload format.
pub const BUNDLE_VERSION: u32 = 1;
/// Largest bundle payload accepted (JSON bytes).
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024;
/// Prefix of a QR challenge's text form (then base45 of [`Challenge::to_bytes`]).
pub const CHALLENGE_PREFIX: &str = "LK1:";
/// Version byte of the binary challenge.
pub const CHALLENGE_VERSION: u8 = 1;
/// HPKE `info` of a challenge: binds the ciphertext to this purpose and version.
pub const CHALLENGE_INFO: &[u8] = b"latchkey offline challenge v1";
/// Longest user, host or client_id carried in a challenge.
pub const MAX_CONTEXT_FIELD: usize = 64;

/// The signed form as it travels and is stored: `payload` is base64 of the exact JSON bytes
/// of a [`Bundle`]; `signature` is base64 of the server's Ed25519 signature over
/// `"latchkey offline bundle v1\0" ‖ payload bytes`. The agent verifies the bytes it
/// received, never a re-serialisation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedBundle {
    pub payload: String,
    pub signature: String,
}

/// One user's offline login material on one machine. Public verification material only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub version: u32,
    /// Random id (audit and logs).
    pub id: String,
    pub user: String,
    pub machine_id: String,
    /// Access contexts allowed offline.
    pub client_ids: Vec<String>,
    /// Unix seconds (server clock).
    pub issued_at: i64,
    /// Unix seconds after which the bundle is refused (`offline.max_days`).
    pub not_after: i64,
    /// Offline logins allowed before the user must log in online again.
    pub max_logins: u32,
    /// Wrong offline answers after which the agent wipes the bundle.
    pub max_failures: u32,
    #[serde(default)]
    pub apps: Vec<OfflineApp>,
    /// FIDO2 credentials (filled once the FIDO2 method exists).
    #[serde(default)]
    pub fido2: Vec<OfflineFido2>,
    /// Smartcard certificates.
    #[serde(default)]
    pub smartcards: Vec<OfflineSmartcard>,
    /// Which offline methods each client_id allows (its policy's `methods`: `push` stands for
    /// the token-app QR challenge). A client_id missing here (bundles before this field)
    /// allows the token app only.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub methods: std::collections::BTreeMap<String, Vec<crate::Method>>,
}

impl Bundle {
    /// Whether `client_id` allows `method` offline (see [`Bundle::methods`]).
    pub fn allows(&self, client_id: &str, method: crate::Method) -> bool {
        match self.methods.get(client_id) {
            Some(m) => m.contains(&method),
            None => method == crate::Method::Push,
        }
    }
}

/// A registered token app: the QR challenge is sealed to its X25519 key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OfflineApp {
    pub id: String,
    /// base64 of the 32-byte X25519 public key.
    pub x25519_public: String,
    pub device_name: String,
}

/// A FIDO2 credential for an offline getAssertion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OfflineFido2 {
    /// base64url credential id.
    pub credential_id: String,
    /// base64url of the COSE_Key.
    pub cose_key: String,
    pub rp_id: String,
    /// Last signature counter the server saw; the agent keeps its own, higher one.
    pub sign_count: u32,
    pub uv_required: bool,
}

/// A smartcard certificate for an offline PKCS#11 signature.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OfflineSmartcard {
    /// base64 of the DER certificate.
    pub cert_der: String,
    /// Lowercase hex SHA-256 of the DER certificate (as in the online smartcard request).
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

fn bad(msg: impl Into<String>) -> DecodeError {
    DecodeError(msg.into())
}

impl Bundle {
    /// Parses and checks the payload bytes: size, version, field shapes, limits.
    pub fn decode(bytes: &[u8]) -> Result<Bundle, DecodeError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(bad("bundle too large"));
        }
        let b: Bundle = serde_json::from_slice(bytes).map_err(|e| bad(format!("bundle: {e}")))?;
        if b.version != BUNDLE_VERSION {
            return Err(bad(format!(
                "bundle version {} is not supported",
                b.version
            )));
        }
        let short = |s: &str| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control);
        if !short(&b.user) || !short(&b.machine_id) || !short(&b.id) {
            return Err(bad("bundle: user, machine_id or id is malformed"));
        }
        if b.client_ids.is_empty() || !b.client_ids.iter().all(|c| short(c)) {
            return Err(bad("bundle: client_ids are malformed"));
        }
        if b.not_after <= b.issued_at {
            return Err(bad("bundle: not_after is not after issued_at"));
        }
        if b.max_logins == 0 || b.max_failures == 0 {
            return Err(bad("bundle: limits must be at least 1"));
        }
        Ok(b)
    }

    pub fn encode(&self) -> Result<Vec<u8>, DecodeError> {
        serde_json::to_vec(self).map_err(|e| bad(e.to_string()))
    }
}

/// Offline material riding along a server answer (login start, code, push, account check):
/// a fresh bundle after an MFA success, and users whose bundles this machine must wipe
/// (disabled, removed, token revoked, or `latchkey machine forget-offline`). Old agents and
/// other clients ignore these fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct OfflineAttachment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_bundle: Option<SignedBundle>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offline_forget: Vec<String>,
}

impl OfflineAttachment {
    pub fn is_empty(&self) -> bool {
        self.offline_bundle.is_none() && self.offline_forget.is_empty()
    }
}

/// A server answer `T` with the offline attachment beside its own fields.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", schemars(rename = "{T}WithOffline"))]
pub struct WithOffline<T> {
    #[serde(flatten)]
    pub inner: T,
    #[serde(flatten)]
    pub offline: OfflineAttachment,
}

/// `POST /v1/admin/machines/{id}/forget-offline`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ForgetOffline {
    pub user: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ForgetOfflineQueued {
    pub machine_id: String,
    pub user: String,
    /// Unix seconds of the request; the agent wipes the bundle at its next contact.
    pub requested_at: i64,
}

/// The QR challenge. Binary layout (big-endian):
///
/// ```text
/// version u8 | key_id [4] | expires_at u32 | nonce [8] |
/// len u8 | user | len u8 | host | len u8 | client_id |     ← header: the HPKE aad
/// enc [32] | ciphertext (plaintext: digits u8, code u32; + 16-byte tag)
/// ```
///
/// The header is readable (the app shows it before opening) and authenticated (it is the
/// aad, so changing any byte makes opening fail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// First 4 bytes of SHA-256 of the app's X25519 public key: which key to open with.
    pub key_id: [u8; 4],
    /// Unix seconds.
    pub expires_at: u32,
    pub nonce: [u8; 8],
    pub user: String,
    pub host: String,
    pub client_id: String,
    pub enc: [u8; 32],
    pub ciphertext: Vec<u8>,
}

/// The sealed content of a challenge.
pub const CODE_PLAINTEXT_LEN: usize = 5;
const TAG: usize = 16;

fn push_field(out: &mut Vec<u8>, s: &str) -> Result<(), DecodeError> {
    let len = u8::try_from(s.len()).map_err(|_| bad("field too long"))?;
    if s.is_empty() || s.len() > MAX_CONTEXT_FIELD {
        return Err(bad("user, host and client_id must be 1 to 64 bytes"));
    }
    out.push(len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(bad("challenge is truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn field(&mut self) -> Result<String, DecodeError> {
        let len = usize::from(self.take(1)?[0]);
        if len == 0 || len > MAX_CONTEXT_FIELD {
            return Err(bad("challenge field length is out of range"));
        }
        let s = std::str::from_utf8(self.take(len)?)
            .map_err(|_| bad("challenge field is not UTF-8"))?;
        if s.chars().any(char::is_control) {
            return Err(bad("challenge field has control characters"));
        }
        Ok(s.to_string())
    }
}

impl Challenge {
    /// The readable, authenticated part (the HPKE aad).
    pub fn header(&self) -> Result<Vec<u8>, DecodeError> {
        let mut out = Vec::with_capacity(64);
        out.push(CHALLENGE_VERSION);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        push_field(&mut out, &self.user)?;
        push_field(&mut out, &self.host)?;
        push_field(&mut out, &self.client_id)?;
        Ok(out)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, DecodeError> {
        let mut out = self.header()?;
        out.extend_from_slice(&self.enc);
        out.extend_from_slice(&self.ciphertext);
        Ok(out)
    }

    /// Strict parse: version, bounded fields, exact ciphertext length, nothing after it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Challenge, DecodeError> {
        let mut r = Reader(bytes);
        let version = r.take(1)?[0];
        if version != CHALLENGE_VERSION {
            return Err(bad(format!("challenge version {version} is not supported")));
        }
        let key_id = r.array::<4>()?;
        let expires_at = u32::from_be_bytes(r.array::<4>()?);
        let nonce = r.array::<8>()?;
        let user = r.field()?;
        let host = r.field()?;
        let client_id = r.field()?;
        let enc = r.array::<32>()?;
        let ciphertext = r.take(CODE_PLAINTEXT_LEN + TAG)?.to_vec();
        if !r.0.is_empty() {
            return Err(bad("challenge has trailing bytes"));
        }
        Ok(Challenge {
            key_id,
            expires_at,
            nonce,
            user,
            host,
            client_id,
            enc,
            ciphertext,
        })
    }
}

/// Plaintext of a challenge: the number of digits and the code.
pub fn code_plaintext(digits: u8, code: u32) -> [u8; CODE_PLAINTEXT_LEN] {
    let c = code.to_be_bytes();
    [digits, c[0], c[1], c[2], c[3]]
}

/// Reads a challenge plaintext back into the code as the person types it (zero-padded).
pub fn code_from_plaintext(pt: &[u8]) -> Result<String, DecodeError> {
    let [digits, a, b, c, d] = <[u8; CODE_PLAINTEXT_LEN]>::try_from(pt)
        .map_err(|_| bad("challenge plaintext has the wrong length"))?;
    if !(6..=9).contains(&digits) {
        return Err(bad("challenge code length is out of range"));
    }
    let code = u32::from_be_bytes([a, b, c, d]);
    if u64::from(code) >= 10u64.pow(u32::from(digits)) {
        return Err(bad("challenge code is out of range"));
    }
    Ok(format!("{code:0width$}", width = usize::from(digits)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::LoginStepResult;

    fn sample() -> Challenge {
        Challenge {
            key_id: [1, 2, 3, 4],
            expires_at: 1_800_000_000,
            nonce: [9; 8],
            user: "alice".into(),
            host: "test-host".into(),
            client_id: "login".into(),
            enc: [7; 32],
            ciphertext: vec![5; CODE_PLAINTEXT_LEN + 16],
        }
    }

    #[test]
    fn challenge_round_trips_and_refuses_damage() {
        let c = sample();
        let bytes = c.to_bytes().unwrap();
        assert_eq!(Challenge::from_bytes(&bytes).unwrap(), c);
        assert!(Challenge::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Challenge::from_bytes(&longer).is_err());
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert!(Challenge::from_bytes(&v2).is_err());
        assert!(Challenge::from_bytes(&[]).is_err());
        let mut long_user = c.clone();
        long_user.user = "x".repeat(65);
        assert!(long_user.to_bytes().is_err());
    }

    #[test]
    fn code_plaintext_round_trips() {
        assert_eq!(
            code_from_plaintext(&code_plaintext(8, 42)).unwrap(),
            "00000042"
        );
        assert_eq!(
            code_from_plaintext(&code_plaintext(6, 999_999)).unwrap(),
            "999999"
        );
        assert!(code_from_plaintext(&code_plaintext(6, 1_000_000)).is_err());
        assert!(code_from_plaintext(&code_plaintext(3, 1)).is_err());
        assert!(code_from_plaintext(&[8, 0, 0]).is_err());
    }

    #[test]
    fn attachment_rides_beside_a_tagged_answer_and_old_readers_ignore_it() {
        let a = WithOffline {
            inner: LoginStepResult::Success {
                message: "ok".into(),
            },
            offline: OfflineAttachment {
                offline_bundle: Some(SignedBundle {
                    payload: "cA==".into(),
                    signature: "cw==".into(),
                }),
                offline_forget: vec!["bob".into()],
            },
        };
        let json = serde_json::to_string(&a).unwrap();
        let back: WithOffline<LoginStepResult> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        let old: LoginStepResult = serde_json::from_str(&json).unwrap();
        assert_eq!(old, a.inner);
        // An answer without attachment reads as an empty one.
        let plain = r#"{"result":"deny","reason":"no"}"#;
        let w: WithOffline<LoginStepResult> = serde_json::from_str(plain).unwrap();
        assert!(w.offline.is_empty());
    }

    #[test]
    fn bundle_decode_is_strict() {
        let b = Bundle {
            version: BUNDLE_VERSION,
            id: "b1".into(),
            user: "alice".into(),
            machine_id: "m1".into(),
            client_ids: vec!["login".into()],
            issued_at: 100,
            not_after: 200,
            max_logins: 10,
            max_failures: 5,
            apps: vec![],
            fido2: vec![],
            smartcards: vec![],
            methods: Default::default(),
        };
        let bytes = b.encode().unwrap();
        assert_eq!(Bundle::decode(&bytes).unwrap(), b);
        let mut v = b.clone();
        v.version = 2;
        assert!(Bundle::decode(&v.encode().unwrap()).is_err());
        let mut e = b.clone();
        e.not_after = 100;
        assert!(Bundle::decode(&e.encode().unwrap()).is_err());
        let extra = String::from_utf8(bytes)
            .unwrap()
            .replacen('{', "{\"x\":1,", 1);
        assert!(Bundle::decode(extra.as_bytes()).is_err());
        assert!(Bundle::decode(&vec![b' '; MAX_BUNDLE_BYTES + 1]).is_err());
    }
}
