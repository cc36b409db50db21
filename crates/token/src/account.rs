//! One registered account (a server × user pair) and what the app does with its keys: sign
//! push answers and badges, compute TOTP codes.
//!
//! The X25519 secret is kept although nothing here uses it yet: the offline login flow seals
//! its QR challenges to the matching public key, and the `offline answer` command will open
//! them with it.

use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey};
use latchkey_crypto::otpauth::OtpAuthUri;
use latchkey_proto::TokenKind;
use latchkey_proto::app::{BadgeState, Decision, badge_signing_bytes, push_signing_bytes};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// 32 secret bytes (an X25519 secret or an Ed25519 seed), wiped on drop, base64 in the
/// (encrypted) plaintext, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret32(Zeroizing<[u8; 32]>);

impl Secret32 {
    pub fn new(bytes: [u8; 32]) -> Self {
        Secret32(Zeroizing::new(bytes))
    }

    /// 32 bytes from the OS random generator.
    pub fn random() -> Result<Self> {
        let bytes = Zeroizing::new(latchkey_crypto::random_bytes(32)?);
        let mut arr = Zeroizing::new([0u8; 32]);
        arr.copy_from_slice(&bytes);
        Ok(Secret32(arr))
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret32(<redacted>)")
    }
}

impl Serialize for Secret32 {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let text = Zeroizing::new(B64.encode(*self.0));
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Secret32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        let bytes = Zeroizing::new(
            B64.decode(text.as_bytes())
                .map_err(|_| serde::de::Error::custom("secret is not base64"))?,
        );
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| serde::de::Error::custom("secret must be 32 bytes"))?;
        Ok(Secret32::new(arr))
    }
}

/// A secret string (the app key, the otpauth URI), wiped on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(s: String) -> Self {
        SecretString(Zeroizing::new(s))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(SecretString::new(String::deserialize(d)?))
    }
}

/// One registration: which server, which user, and the app's keys for it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Local name, `user@host` unless chosen with `--name`.
    pub name: String,
    /// Server base URL (`https://host:port[/prefix]`).
    pub server: String,
    /// `sha256:HEX` of the server's TLS certificate, from the registration link.
    pub pin: String,
    pub user: String,
    pub app_id: String,
    pub device_name: String,
    /// Unix seconds.
    pub registered_at: i64,
    /// Bearer credential for the app's own calls.
    pub app_key: SecretString,
    /// Offline challenges are sealed to the matching public key.
    pub x25519_secret: Secret32,
    /// Push answers and badges are signed with this key.
    pub ed25519_seed: Secret32,
    /// TOTP seed for plain codes.
    pub otpauth_uri: SecretString,
}

/// Fresh key pairs for a registration.
pub struct NewKeys {
    pub x25519_secret: Secret32,
    pub ed25519_seed: Secret32,
}

impl NewKeys {
    pub fn generate() -> Result<Self> {
        Ok(NewKeys {
            x25519_secret: Secret32::random()?,
            ed25519_seed: Secret32::random()?,
        })
    }

    pub fn x25519_public(&self) -> [u8; 32] {
        x25519_public(&self.x25519_secret)
    }

    pub fn ed25519_public(&self) -> [u8; 32] {
        SigningKey::from_bytes(self.ed25519_seed.expose())
            .verifying_key()
            .to_bytes()
    }
}

fn x25519_public(secret: &Secret32) -> [u8; 32] {
    let secret = x25519_dalek::StaticSecret::from(*secret.expose());
    x25519_dalek::PublicKey::from(&secret).to_bytes()
}

impl Account {
    fn signing_key(&self) -> SigningKey {
        SigningKey::from_bytes(self.ed25519_seed.expose())
    }

    pub fn ed25519_public(&self) -> [u8; 32] {
        self.signing_key().verifying_key().to_bytes()
    }

    pub fn x25519_public(&self) -> [u8; 32] {
        x25519_public(&self.x25519_secret)
    }

    /// Base64 Ed25519 signature over [`push_signing_bytes`].
    pub fn sign_push(
        &self,
        tx: &str,
        decision: Decision,
        number: Option<u32>,
        nonce: &str,
    ) -> String {
        let msg = push_signing_bytes(tx, decision, number, nonce);
        B64.encode(self.signing_key().sign(&msg).to_bytes())
    }

    /// Base64 Ed25519 signature over [`badge_signing_bytes`].
    pub fn sign_badge(&self, state: BadgeState, time: i64) -> String {
        let msg = badge_signing_bytes(&self.app_id, state, time);
        B64.encode(self.signing_key().sign(&msg).to_bytes())
    }

    /// The TOTP code at `unix_time`.
    pub fn totp_code(&self, unix_time: u64) -> Result<String> {
        let uri = OtpAuthUri::parse(self.otpauth_uri.expose())?;
        if uri.kind != TokenKind::Totp {
            return Err(Error::Crypto(format!(
                "account {} has a {} seed; only TOTP codes are supported",
                self.name, uri.kind
            )));
        }
        Ok(latchkey_crypto::otp::totp(
            &uri.secret,
            unix_time,
            uri.period,
            uri.algorithm,
            uri.digits,
        ))
    }
}

/// Picks the account a command acts on: the named one, or the only one.
pub fn select<'a>(accounts: &'a [Account], name: Option<&str>) -> Result<&'a Account> {
    let names = || {
        accounts
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (name, accounts) {
        (Some(n), _) => accounts.iter().find(|a| a.name == n).ok_or_else(|| {
            if accounts.is_empty() {
                Error::Usage(format!("no account named {n:?}: the token file has none"))
            } else {
                Error::Usage(format!("no account named {n:?}; accounts: {}", names()))
            }
        }),
        (None, [only]) => Ok(only),
        (None, []) => Err(Error::Usage(
            "no accounts yet: register one with `latchkey-token register LINK`".into(),
        )),
        (None, _) => Err(Error::Usage(format!(
            "several accounts: name one of: {}",
            names()
        ))),
    }
}

/// The default local name for a new account: `user@host`, with `-2`, `-3` … appended when that
/// name is taken (the same user registered twice on one server).
pub fn default_name(accounts: &[Account], user: &str, host: &str) -> String {
    let base = format!("{user}@{host}");
    let taken = |n: &str| accounts.iter().any(|a| a.name == n);
    if !taken(&base) {
        return base;
    }
    (2u32..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !taken(n))
        .unwrap_or(base)
}

/// Server-controlled text made safe for a terminal: control characters (escape sequences)
/// dropped, length bounded.
pub fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use latchkey_crypto::keys::ed25519_verify;

    pub(crate) fn sample(name: &str) -> Account {
        let keys = NewKeys::generate().unwrap();
        Account {
            name: name.into(),
            server: "https://mfa.example:8443".into(),
            pin: format!("sha256:{}", "ab".repeat(32)),
            user: "alice".into(),
            app_id: "app_1".into(),
            device_name: "test phone".into(),
            registered_at: 1_700_000_000,
            app_key: SecretString::new("lka_secretappkeyvalue0123456789".into()),
            x25519_secret: keys.x25519_secret,
            ed25519_seed: keys.ed25519_seed,
            otpauth_uri: SecretString::new(
                "otpauth://totp/latchkey:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=latchkey&algorithm=SHA1&digits=6&period=30".into(),
            ),
        }
    }

    #[test]
    fn push_signature_verifies_with_the_public_key() {
        let a = sample("a");
        let sig = a.sign_push("tx1", Decision::Approve, Some(42), "nonce1");
        let sig = B64.decode(sig).unwrap();
        let public = a.ed25519_public();
        let msg = push_signing_bytes("tx1", Decision::Approve, Some(42), "nonce1");
        assert!(ed25519_verify(&public, &msg, &sig));
        // Any other number, decision, transaction or nonce does not verify.
        for other in [
            push_signing_bytes("tx1", Decision::Approve, Some(43), "nonce1"),
            push_signing_bytes("tx1", Decision::Deny, None, "nonce1"),
            push_signing_bytes("tx2", Decision::Approve, Some(42), "nonce1"),
            push_signing_bytes("tx1", Decision::Approve, Some(42), "nonce2"),
        ] {
            assert!(!ed25519_verify(&public, &other, &sig));
        }
        // Another account's key does not verify it either.
        assert!(!ed25519_verify(&sample("b").ed25519_public(), &msg, &sig));
    }

    #[test]
    fn badge_signature_verifies_with_the_public_key() {
        let a = sample("a");
        let sig = B64.decode(a.sign_badge(BadgeState::Out, 1234)).unwrap();
        let msg = badge_signing_bytes("app_1", BadgeState::Out, 1234);
        assert!(ed25519_verify(&a.ed25519_public(), &msg, &sig));
        let msg = badge_signing_bytes("app_1", BadgeState::In, 1234);
        assert!(!ed25519_verify(&a.ed25519_public(), &msg, &sig));
    }

    #[test]
    fn x25519_public_matches_the_secret() {
        let a = sample("a");
        let secret = x25519_dalek::StaticSecret::from(*a.x25519_secret.expose());
        assert_eq!(
            x25519_dalek::PublicKey::from(&secret).to_bytes(),
            a.x25519_public()
        );
        assert_ne!(a.x25519_public(), sample("b").x25519_public());
    }

    #[test]
    fn totp_code_follows_rfc_6238() {
        // RFC 6238 appendix B, SHA-1, T = 59 → 94287082 (8 digits); 6 digits → 287082.
        assert_eq!(sample("a").totp_code(59).unwrap(), "287082");
    }

    #[test]
    fn selection_by_name_or_the_only_one() {
        let one = vec![sample("a@h")];
        assert_eq!(select(&one, None).unwrap().name, "a@h");
        let two = vec![sample("a@h"), sample("b@h")];
        assert_eq!(select(&two, Some("b@h")).unwrap().name, "b@h");
        let e = select(&two, None).unwrap_err();
        assert_eq!(e.to_string(), "several accounts: name one of: a@h, b@h");
        assert_eq!(e.exit_code(), 2);
        let e = select(&two, Some("c@h")).unwrap_err();
        assert!(e.to_string().contains("a@h, b@h"), "{e}");
        assert!(
            select(&[], None)
                .unwrap_err()
                .to_string()
                .contains("register")
        );
    }

    #[test]
    fn default_names_do_not_collide() {
        let accounts = vec![sample("alice@h"), sample("alice@h-2")];
        assert_eq!(default_name(&accounts, "bob", "h"), "bob@h");
        assert_eq!(default_name(&accounts, "alice", "h"), "alice@h-3");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let a = sample("a");
        let shown = format!("{a:?}");
        assert!(!shown.contains("lka_secret"), "{shown}");
        assert!(!shown.contains("GEZDG"), "{shown}");
        assert!(!shown.contains(&B64.encode(a.ed25519_seed.expose())));
    }

    #[test]
    fn printable_drops_escape_sequences() {
        assert_eq!(printable("host\u{1b}[2Jname\n"), "host[2Jname");
    }
}
