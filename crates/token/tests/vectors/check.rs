//! The checks of the committed file, with latchkey-token's own code: `offline::open` with an
//! account list, `Account`'s signatures and TOTP codes, ed25519-dalek, latchkey_crypto.

use super::generate::{NOW, SEED_SHA1, totp_code, totp_uri};
use super::*;
use ed25519_dalek::{SigningKey, VerifyingKey};
use latchkey_crypto::hpke;
use latchkey_proto::app::{BadgeState, Decision, badge_signing_bytes, push_signing_bytes};
use latchkey_token::Account;
use latchkey_token::account::{Secret32, SecretString};
use latchkey_token::offline::Unanswerable;

fn account(user: &str, x25519_secret: [u8; 32]) -> Account {
    Account {
        name: format!("{user}@mfa.example"),
        server: "https://mfa.example:8443".into(),
        pin: format!("sha256:{}", "00".repeat(32)),
        user: user.into(),
        app_id: "q4m2x7vk9bfa3tce".into(),
        device_name: "vectors".into(),
        registered_at: NOW,
        app_key: SecretString::new("lkp_vectors".into()),
        x25519_secret: Secret32::new(x25519_secret),
        ed25519_seed: Secret32::new(fixed("ed25519 alice")),
        otpauth_uri: SecretString::new(totp_uri(SEED_SHA1, "SHA1", 6, 30)),
    }
}

pub(crate) fn challenge(v: &ChallengeVector) {
    let secret = unhex32(&v.x25519_secret);
    assert_eq!(
        hex(&hpke::public_key(&secret)),
        v.x25519_public,
        "{}",
        v.name
    );
    let accounts = [account(&v.account_user, secret)];
    let got = latchkey_token::offline::open(&accounts, &v.text, v.now);
    match (&v.expect, got) {
        (
            Expect::Opened {
                code,
                user,
                host,
                client_id,
                expires_at,
            },
            Ok(o),
        ) => {
            assert_eq!(o.code.expose(), code, "{}", v.name);
            assert_eq!(
                (&o.user, &o.host, &o.client_id, o.expires_at),
                (user, host, client_id, *expires_at),
                "{}",
                v.name
            );
        }
        (Expect::Refused { error }, Err(latchkey_token::Error::Challenge { kind, .. })) => {
            assert_eq!(kind.as_str(), error, "{}", v.name);
        }
        (expect, got) => panic!("{}: expected {expect:?}, got {got:?}", v.name),
    }
}

fn decision(s: &str) -> Decision {
    match s {
        "approve" => Decision::Approve,
        "deny" => Decision::Deny,
        other => panic!("decision {other}"),
    }
}

pub(crate) fn verifies(public_hex: &str, msg: &[u8], signature_b64: &str) -> bool {
    let public = VerifyingKey::from_bytes(&unhex32(public_hex)).unwrap();
    // The server's decoding: standard alphabet, canonical padding.
    let sig: [u8; 64] = B64.decode(signature_b64).unwrap().try_into().unwrap();
    public
        .verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig))
        .is_ok()
}

pub(crate) fn push(v: &PushVector) {
    let d = decision(&v.decision);
    let msg = push_signing_bytes(&v.tx, d, v.number, &v.nonce);
    assert_eq!(v.signing_bytes.as_bytes(), msg.as_slice());
    assert_eq!(v.number.is_none(), d == Decision::Deny, "{v:?}");
    let seed = unhex32(&v.ed25519_seed);
    let key = SigningKey::from_bytes(&seed);
    assert_eq!(hex(key.verifying_key().as_bytes()), v.ed25519_public);
    assert!(verifies(&v.ed25519_public, &msg, &v.signature), "{v:?}");
    let mut a = account("alice", [1; 32]);
    a.ed25519_seed = Secret32::new(seed);
    assert_eq!(a.sign_push(&v.tx, d, v.number, &v.nonce), v.signature);
    // Another number or decision does not verify.
    let other = push_signing_bytes(&v.tx, d, v.number.map(|n| n + 1).or(Some(42)), &v.nonce);
    assert!(!verifies(&v.ed25519_public, &other, &v.signature));
}

pub(crate) fn badge(v: &BadgeVector) {
    let state = match v.state.as_str() {
        "in" => BadgeState::In,
        "out" => BadgeState::Out,
        other => panic!("state {other}"),
    };
    let msg = badge_signing_bytes(&v.app_id, state, v.time);
    assert_eq!(v.signing_bytes.as_bytes(), msg.as_slice());
    let seed = unhex32(&v.ed25519_seed);
    assert_eq!(
        hex(SigningKey::from_bytes(&seed).verifying_key().as_bytes()),
        v.ed25519_public
    );
    assert!(verifies(&v.ed25519_public, &msg, &v.signature), "{v:?}");
    let mut a = account("alice", [1; 32]);
    a.app_id = v.app_id.clone();
    a.ed25519_seed = Secret32::new(seed);
    assert_eq!(a.sign_badge(state, v.time), v.signature);
}

pub(crate) fn totp(v: &TotpVector) {
    assert_eq!(totp_code(&v.otpauth_uri, v.time), v.code, "{v:?}");
    let mut a = account("alice", [1; 32]);
    a.otpauth_uri = SecretString::new(v.otpauth_uri.clone());
    assert_eq!(a.totp_code(v.time).unwrap(), v.code, "{v:?}");
}

pub(crate) fn hpke_a21(v: &HpkeVector) {
    assert_eq!(hex(&hpke::public_key(&unhex32(&v.sk_r))), v.pk_r);
    let pt = hpke::open(
        &unhex32(&v.sk_r),
        &unhex32(&v.enc),
        &unhex(&v.info),
        &unhex(&v.aad),
        &unhex(&v.ct),
    )
    .unwrap();
    assert_eq!(hex(&pt), v.pt);
}

/// What the web app's test relies on: every kind of case is there.
pub(crate) fn coverage(v: &Vectors) {
    let mut errors: Vec<&str> = Vec::new();
    let mut digits = Vec::new();
    let mut clients = Vec::new();
    for c in &v.challenges {
        match &c.expect {
            Expect::Refused { error } => errors.push(error),
            Expect::Opened {
                code, client_id, ..
            } => {
                digits.push(code.len());
                clients.push(client_id.as_str());
            }
        }
    }
    for kind in [
        Unanswerable::Expired,
        Unanswerable::UnknownKey,
        Unanswerable::WrongUser,
        Unanswerable::Damaged,
        Unanswerable::NotAChallenge,
    ] {
        assert!(errors.contains(&kind.as_str()), "no {} case", kind.as_str());
    }
    for d in [6, 8, 9] {
        assert!(digits.contains(&d), "no {d}-digit code");
    }
    for c in ["login", "unlock", "elevation", "remote"] {
        assert!(clients.contains(&c), "no {c} challenge");
    }
    assert!(v.challenges.iter().any(|c| match &c.expect {
        Expect::Opened { host, code, .. } => !host.is_ascii() && !code.is_empty(),
        _ => false,
    }));
    assert!(
        v.push
            .iter()
            .any(|p| p.decision == "deny" && p.number.is_none())
    );
    assert!(
        v.push
            .iter()
            .any(|p| p.decision == "approve" && p.number.is_some())
    );
    assert!(v.badge.iter().any(|b| b.state == "in") && v.badge.iter().any(|b| b.state == "out"));
    for alg in ["SHA1", "SHA256", "SHA512"] {
        for (d, p) in [(6, 30), (8, 30), (6, 60), (8, 60)] {
            let part = format!("algorithm={alg}&digits={d}&period={p}");
            assert!(
                v.totp.iter().any(|t| t.otpauth_uri.ends_with(&part)),
                "no TOTP {part}"
            );
        }
    }
}
