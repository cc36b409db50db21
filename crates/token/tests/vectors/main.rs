//! The test vectors both token apps are held to: `token-app-vectors.json` beside this file,
//! read by latchkey-token here and by the web token app's tests (`crates/server/web/app`).
//!
//! One generator makes the file from fixed keys, fixed HPKE ephemeral secrets and fixed
//! inputs (`LATCHKEY_WRITE_VECTORS=1` rewrites it). Without the variable the test checks that
//! the committed file is exactly what the generator makes, and then checks every entry of
//! the file with latchkey-token's own code: challenges open (or are refused for the stated
//! reason) through `latchkey_token::offline::open`, signatures verify with ed25519-dalek and
//! are what `Account` signs, TOTP codes are latchkey_crypto's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod check;
mod generate;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use data_encoding::HEXLOWER;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

const FILE: &str = "token-app-vectors.json";
const WRITE_VAR: &str = "LATCHKEY_WRITE_VECTORS";

const ABOUT: &str = "Shared test vectors of latchkey's two token apps (latchkey-token and the web app at /app/), made by crates/token/tests/vectors/ (regenerate: LATCHKEY_WRITE_VECTORS=1 cargo test -p latchkey-token --test vectors; never edit by hand). Keys and binary values are lowercase hex; signatures are standard base64 with = padding (RFC 4648 section 4), which the server decodes strictly. A challenge is opened with the one account given (x25519_secret, account_user) at time now, and its checks run in this order: not_a_challenge (no LK1: prefix after trimming CR, LF and tab at both ends and whitespace at the start; bad base45; wrong layout), expired (now > expires_at), unknown_key (key_id = first 4 bytes of SHA-256 of the account's X25519 public key differs), wrong_user (challenge user differs from account_user), damaged (HPKE open fails, or the plaintext, a digits byte and a big-endian u32, is not a code of 6 to 9 digits).";

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vectors {
    about: String,
    hpke_rfc9180_a21: HpkeVector,
    challenges: Vec<ChallengeVector>,
    push: Vec<PushVector>,
    badge: Vec<BadgeVector>,
    totp: Vec<TotpVector>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HpkeVector {
    sk_r: String,
    pk_r: String,
    enc: String,
    info: String,
    aad: String,
    ct: String,
    pt: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeVector {
    name: String,
    /// The account's key (for `unknown_key`, not the one the challenge was sealed to).
    x25519_secret: String,
    x25519_public: String,
    account_user: String,
    now: i64,
    text: String,
    expect: Expect,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Expect {
    Opened {
        code: String,
        user: String,
        host: String,
        client_id: String,
        expires_at: i64,
    },
    Refused {
        error: String,
    },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushVector {
    ed25519_seed: String,
    ed25519_public: String,
    tx: String,
    decision: String,
    /// Absent for a denial (the signing bytes then say `-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    number: Option<u32>,
    nonce: String,
    signing_bytes: String,
    signature: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BadgeVector {
    ed25519_seed: String,
    ed25519_public: String,
    app_id: String,
    state: String,
    time: i64,
    signing_bytes: String,
    signature: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TotpVector {
    otpauth_uri: String,
    time: u64,
    code: String,
}

pub(crate) fn hex(b: &[u8]) -> String {
    HEXLOWER.encode(b)
}

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    HEXLOWER.decode(s.as_bytes()).unwrap()
}

pub(crate) fn unhex32(s: &str) -> [u8; 32] {
    unhex(s).try_into().unwrap()
}

/// A fixed 32-byte value named by `label` (SHA-256 of it), so the keys look like keys.
pub(crate) fn fixed(label: &str) -> [u8; 32] {
    unhex32(&latchkey_crypto::sha256_hex(label.as_bytes()))
}

fn render(v: &Vectors) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s
}

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(FILE)
}

#[test]
fn the_shared_vectors_are_committed_and_hold_for_latchkey_token() {
    let generated = render(&generate::all());
    if std::env::var_os(WRITE_VAR).is_some_and(|v| v == "1") {
        std::fs::write(path(), &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path())
        .unwrap_or_else(|e| panic!("{}: {e} (make it with {WRITE_VAR}=1)", path().display()));
    assert!(
        committed == generated,
        "{FILE} is not what tests/vectors/ makes: regenerate it with {WRITE_VAR}=1 cargo test -p latchkey-token --test vectors and review the diff"
    );

    let v: Vectors = serde_json::from_str(&committed).unwrap();
    check::hpke_a21(&v.hpke_rfc9180_a21);
    for c in &v.challenges {
        check::challenge(c);
    }
    for p in &v.push {
        check::push(p);
    }
    for b in &v.badge {
        check::badge(b);
    }
    for t in &v.totp {
        check::totp(t);
    }
    check::coverage(&v);
}

/// The checks can fail: a wrong expectation or a changed signature is caught.
#[test]
fn a_changed_vector_fails_its_check() {
    let v = generate::all();
    let c = &v.challenges[0];
    let mut wrong = ChallengeVector {
        name: c.name.clone(),
        x25519_secret: c.x25519_secret.clone(),
        x25519_public: c.x25519_public.clone(),
        account_user: c.account_user.clone(),
        now: c.now,
        text: c.text.clone(),
        expect: Expect::Refused {
            error: "expired".into(),
        },
    };
    assert!(std::panic::catch_unwind(|| check::challenge(&wrong)).is_err());
    wrong.expect = Expect::Opened {
        code: "01234568".into(),
        user: "alice".into(),
        host: "laptop".into(),
        client_id: "login".into(),
        expires_at: generate::NOW + generate::TTL,
    };
    assert!(std::panic::catch_unwind(|| check::challenge(&wrong)).is_err());
    let p = &v.push[0];
    let mut sig = B64.decode(&p.signature).unwrap();
    sig[0] ^= 1;
    assert!(!check::verifies(
        &p.ed25519_public,
        p.signing_bytes.as_bytes(),
        &B64.encode(sig)
    ));
}
