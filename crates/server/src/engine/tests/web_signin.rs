//! Portal sign-ins against a real store: a code then a push approval (a code alone opens
//! nothing; an approval opens one Strong session), and browser security keys (registered
//! under `web_rp_id` with `web_origin`, signed in with user verification, the challenge
//! used once, the clone rule).

use super::*;
use crate::engine::{CodeSignin, EngineError, Me, PORTAL_SIGNIN_REFUSED, PushSignin, Strength};
use latchkey_crypto::webauthn::{self, CoseKey, FLAG_AT, FLAG_UP, FLAG_UV, b64url, b64url_decode};
use latchkey_proto::app::{Decision, PushResponse, push_signing_bytes};
use latchkey_proto::fido2::LoginFido2;
use std::time::Duration;

const RP: &str = "mfa.example.com";
const ORIGIN: &str = "https://mfa.example.com:8443";

async fn web_fx() -> Fx {
    fx_with(|c| {
        c.web_rp_id = Some(RP.into());
        c.web_origin = Some(ORIGIN.into());
    })
    .await
}

/// Whether a key sign-in's answer is refused (an error of the engine fails the test).
async fn key_refused(fx: &Fx, ceremony: &str, answer: &LoginFido2) -> bool {
    fx.e.key_signin_finish(ceremony, answer)
        .await
        .unwrap()
        .is_err()
}

#[tokio::test]
async fn a_code_then_a_push_approval_opens_one_strong_session() {
    let fx = fx().await;
    fx.user_with_totp("alice").await;
    let (app_key, signer) = fx.app("alice").await;
    let app = fx.e.app_caller(&app_key).await.unwrap();
    // A wrong code: refused, and no push goes out.
    let r =
        fx.e.signin_code("alice", &wrong_code(), "10.0.0.7")
            .await
            .unwrap();
    assert!(matches!(r, CodeSignin::Refused(_)), "{r:?}");
    assert!(
        fx.e.app_pending(&app, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    // Unknown names hear the same as a wrong code.
    let CodeSignin::Refused(unknown) = fx.e.signin_code("ghost", "123456", "ip").await.unwrap()
    else {
        panic!()
    };
    let CodeSignin::Refused(wrong) =
        fx.e.signin_code("alice", &wrong_code(), "ip")
            .await
            .unwrap()
    else {
        panic!()
    };
    assert_eq!(unknown, wrong);
    let CodeSignin::Push {
        ceremony, number, ..
    } =
        fx.e.signin_code("alice", &code_now(), "10.0.0.7")
            .await
            .unwrap()
    else {
        panic!("a right code sends a push")
    };
    assert_eq!(
        fx.e.signin_push_number(&ceremony).await.unwrap(),
        Some(number)
    );
    assert_eq!(
        fx.e.signin_push_wait(&ceremony, Duration::ZERO)
            .await
            .unwrap(),
        PushSignin::Waiting
    );
    let pending = fx.e.app_pending(&app, Duration::ZERO).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].host, "self-service portal");
    let nonce = pending[0].nonce.clone();
    let signed = push_signing_bytes(&ceremony, Decision::Approve, Some(number), &nonce);
    let verdict =
        fx.e.app_respond(
            &app,
            &PushResponse {
                tx: ceremony.parse().unwrap(),
                decision: Decision::Approve,
                number: Some(number),
                nonce,
                signature: B64.encode(signer.sign(&signed)),
                reason: None,
            },
        )
        .await
        .unwrap();
    assert!(verdict.ok, "{verdict:?}");
    match fx
        .e
        .signin_push_wait(&ceremony, Duration::ZERO)
        .await
        .unwrap()
    {
        PushSignin::SignedIn(s) => {
            assert_eq!(s.user.as_str(), "alice");
            assert_eq!(s.strength, Strength::Strong);
        }
        other => panic!("{other:?}"),
    }
    // Once: the same approval opens nothing more.
    let again =
        fx.e.signin_push_wait(&ceremony, Duration::ZERO)
            .await
            .unwrap();
    assert!(matches!(again, PushSignin::Refused(_)), "{again:?}");
    // A login transaction of a machine is not a portal ceremony.
    let tx = fx.challenge("alice").await;
    let r = fx.e.signin_push_wait(&tx, Duration::ZERO).await.unwrap();
    assert!(matches!(r, PushSignin::Refused(_)), "{r:?}");
}

/// Portal failures lock portal sign-ins (five in a row, the right code is then refused
/// unjudged) and never the login: a login right after passes; an admin's unlock ends the
/// portal's lock too.
#[tokio::test]
async fn portal_failures_have_their_own_lock() {
    let fx = fx().await;
    fx.user_with_totp("alice").await;
    fx.app("alice").await;
    for _ in 0..5 {
        let r =
            fx.e.signin_code("alice", &wrong_code(), "ip")
                .await
                .unwrap();
        assert_eq!(r, CodeSignin::Refused(PORTAL_SIGNIN_REFUSED.into()));
    }
    let r = fx.e.signin_code("alice", &code_now(), "ip").await.unwrap();
    assert_eq!(r, CodeSignin::Refused(PORTAL_SIGNIN_REFUSED.into()));
    let u = fx.e.store.user_get("alice").await.unwrap().unwrap();
    assert_eq!(
        (u.failures, u.locked_until),
        (0, 0),
        "the login lockout is untouched"
    );
    let tx = fx.challenge("alice").await;
    let r =
        fx.e.login_otp(&fx.machine, &tx, &code_now())
            .await
            .unwrap()
            .inner;
    assert!(
        matches!(r, latchkey_proto::login::LoginStepResult::Success { .. }),
        "{r:?}"
    );
    // Unlocked by an admin: a right code (of a second authenticator, the first one's was
    // used by the login) goes on to the push.
    fx.e.user_unlock(&crate::engine::Actor::Admin, "alice")
        .await
        .unwrap();
    let seed2 = [7u8; 20];
    fx.e.token_add(
        &crate::engine::Actor::Admin,
        "alice",
        &latchkey_proto::admin::OtpTokenCreate {
            kind: latchkey_proto::TokenKind::Totp,
            algorithm: None,
            digits: None,
            period: None,
            label: None,
            secret: Some(latchkey_crypto::base32_encode(&seed2)),
        },
    )
    .await
    .unwrap();
    let code2 = latchkey_crypto::otp::totp(
        &seed2,
        crate::engine::now() as u64,
        30,
        latchkey_proto::OtpAlgorithm::Sha1,
        6,
    );
    let r = fx.e.signin_code("alice", &code2, "ip").await.unwrap();
    assert!(matches!(r, CodeSignin::Push { .. }), "{r:?}");
}

#[tokio::test]
async fn a_right_code_without_a_token_app_opens_nothing() {
    let fx = fx().await;
    fx.user_with_totp("alice").await;
    let r = fx.e.signin_code("alice", &code_now(), "ip").await.unwrap();
    match r {
        CodeSignin::Refused(m) => assert!(m.contains("token app"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// A software authenticator: one Ed25519 credential and its counter.
struct SoftKey {
    key: SigningKeyPair,
    id: Vec<u8>,
    count: u32,
}

impl SoftKey {
    fn new() -> SoftKey {
        SoftKey {
            key: SigningKeyPair::generate().unwrap(),
            id: latchkey_crypto::random_bytes(16).unwrap(),
            count: 0,
        }
    }

    fn auth_data(&self, rp: &str, flags: u8, attested: bool) -> Vec<u8> {
        let mut v = webauthn::sha256(rp.as_bytes()).to_vec();
        v.push(flags | if attested { FLAG_AT } else { 0 });
        v.extend_from_slice(&self.count.to_be_bytes());
        if attested {
            v.extend_from_slice(&[0u8; 16]);
            v.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
            v.extend_from_slice(&self.id);
            let cose = CoseKey::Ed25519 {
                public: self.key.public_bytes(),
            };
            v.extend_from_slice(&cose.to_cbor());
        }
        v
    }

    /// `navigator.credentials.create`'s answer: (attestation object, client data), base64url.
    fn create(&self, challenge_b64: &str, origin: &str, flags: u8) -> (String, String) {
        let challenge = b64url_decode(challenge_b64).unwrap();
        let cd = webauthn::client_data_json(webauthn::TYPE_CREATE, &challenge, origin);
        let ad = self.auth_data(RP, flags, true);
        // {"fmt": "none", "attStmt": {}, "authData": bytes}
        let mut att = vec![0xa3, 0x63];
        att.extend_from_slice(b"fmt");
        att.push(0x64);
        att.extend_from_slice(b"none");
        att.push(0x67);
        att.extend_from_slice(b"attStmt");
        att.push(0xa0);
        att.push(0x68);
        att.extend_from_slice(b"authData");
        att.push(0x58);
        att.push(u8::try_from(ad.len()).unwrap());
        att.extend_from_slice(&ad);
        (b64url(&att), b64url(cd.as_bytes()))
    }

    /// `navigator.credentials.get`'s answer.
    fn get(&mut self, challenge_b64: &str, origin: &str, flags: u8) -> LoginFido2 {
        self.count += 1;
        let challenge = b64url_decode(challenge_b64).unwrap();
        let cd = webauthn::client_data_json(webauthn::TYPE_GET, &challenge, origin);
        let ad = self.auth_data(RP, flags, false);
        let mut msg = ad.clone();
        msg.extend_from_slice(&webauthn::sha256(cd.as_bytes()));
        LoginFido2 {
            credential_id: b64url(&self.id),
            authenticator_data: b64url(&ad),
            signature: b64url(&self.key.sign(&msg)),
            client_data_json: b64url(cd.as_bytes()),
        }
    }
}

fn me(name: &str) -> Me {
    Me {
        name: name.into(),
        strength: Strength::Invite,
    }
}

#[tokio::test]
async fn without_web_rp_id_the_browser_ceremonies_say_what_to_configure() {
    let fx = fx().await;
    fx.user("alice").await;
    let r = fx.e.own_key_start(&me("alice"), "key").await;
    assert!(
        matches!(&r, Err(EngineError::Invalid(m)) if m.contains("web_rp_id")),
        "{r:?}"
    );
    let r = fx.e.key_signin_start("alice", "ip").await;
    assert!(
        matches!(&r, Err(EngineError::Invalid(m)) if m.contains("web_rp_id")),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_key_registered_in_the_browser_signs_in_with_verification_once_per_challenge() {
    let fx = web_fx().await;
    fx.user("alice").await;
    fx.user("bob").await;
    let mut key = SoftKey::new();
    let opts = fx.e.own_key_start(&me("alice"), "blue key").await.unwrap();
    assert_eq!(opts.rp_id, RP);
    // Another origin, or another user finishing alice's ceremony: refused.
    let (att, cd) = key.create(
        &opts.challenge,
        "https://evil.example.com",
        FLAG_UP | FLAG_UV,
    );
    assert!(
        fx.e.own_key_finish(&me("alice"), &opts.ceremony, None, &att, &cd)
            .await
            .is_err()
    );
    let (att, cd) = key.create(&opts.challenge, ORIGIN, FLAG_UP | FLAG_UV);
    assert!(
        fx.e.own_key_finish(&me("bob"), &opts.ceremony, None, &att, &cd)
            .await
            .is_err()
    );
    // Without user verification: refused (the portal requires it).
    let (att_nouv, cd_nouv) = key.create(&opts.challenge, ORIGIN, FLAG_UP);
    assert!(
        fx.e.own_key_finish(&me("alice"), &opts.ceremony, None, &att_nouv, &cd_nouv)
            .await
            .is_err()
    );
    let token =
        fx.e.own_key_finish(&me("alice"), &opts.ceremony, None, &att, &cd)
            .await
            .unwrap();
    assert_eq!(token.label, "blue key");
    // The ceremony is spent.
    assert!(
        fx.e.own_key_finish(&me("alice"), &opts.ceremony, None, &att, &cd)
            .await
            .is_err()
    );

    // Sign-in: bob has no key, and is answered as a stranger is: a challenge like alice's
    // with ids of the same form, the same ones when asked again, and no answer to it works.
    let real = fx.e.key_signin_start("alice", "ip").await.unwrap();
    for name in ["ghost", "bob"] {
        let decoy = fx.e.key_signin_start(name, "ip").await.unwrap();
        assert_eq!(decoy.rp_id, real.rp_id);
        assert_eq!(decoy.timeout_ms, real.timeout_ms);
        assert_eq!(decoy.ceremony.len(), real.ceremony.len());
        assert_eq!(decoy.challenge.len(), real.challenge.len());
        assert!(matches!(decoy.allow_credentials.len(), 1 | 2));
        for id in &decoy.allow_credentials {
            let raw = b64url_decode(id).unwrap();
            assert!([16, 32, 48, 64].contains(&raw.len()), "{id}");
        }
        let again = fx.e.key_signin_start(name, "ip").await.unwrap();
        assert_eq!(again.allow_credentials, decoy.allow_credentials);
        assert_ne!(again.challenge, decoy.challenge);
        let mut junk = key.get(&decoy.challenge, ORIGIN, FLAG_UP | FLAG_UV);
        key.count -= 1;
        assert_eq!(
            fx.e.key_signin_finish(&decoy.ceremony, &junk)
                .await
                .unwrap()
                .unwrap_err(),
            PORTAL_SIGNIN_REFUSED
        );
        junk.credential_id = decoy.allow_credentials[0].clone();
        let ch = fx.e.key_signin_start(name, "ip").await.unwrap();
        assert!(key_refused(&fx, &ch.ceremony, &junk).await);
    }
    assert_ne!(
        fx.e.key_signin_start("ghost", "ip")
            .await
            .unwrap()
            .allow_credentials,
        fx.e.key_signin_start("bob", "ip")
            .await
            .unwrap()
            .allow_credentials
    );
    let ch = fx.e.key_signin_start("alice", "ip").await.unwrap();
    assert_eq!(ch.allow_credentials, [b64url(&key.id)]);
    // No user verification: refused, and the challenge is gone with it.
    let answer = key.get(&ch.challenge, ORIGIN, FLAG_UP);
    assert!(key_refused(&fx, &ch.ceremony, &answer).await);
    let answer = key.get(&ch.challenge, ORIGIN, FLAG_UP | FLAG_UV);
    assert!(key_refused(&fx, &ch.ceremony, &answer).await);
    // A fresh challenge, answered right: a Strong session for alice, once.
    let ch = fx.e.key_signin_start("alice", "ip").await.unwrap();
    let answer = key.get(&ch.challenge, ORIGIN, FLAG_UP | FLAG_UV);
    let signed =
        fx.e.key_signin_finish(&ch.ceremony, &answer)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        (signed.user.as_str(), signed.strength),
        ("alice", Strength::Strong)
    );
    assert!(key_refused(&fx, &ch.ceremony, &answer).await);
    // The agent's origin is not accepted in a browser ceremony.
    let ch = fx.e.key_signin_start("alice", "ip").await.unwrap();
    let answer = key.get(&ch.challenge, webauthn::ORIGIN_AGENT, FLAG_UP | FLAG_UV);
    assert!(key_refused(&fx, &ch.ceremony, &answer).await);
    // A counter that does not increase (a clone): refused.
    let ch = fx.e.key_signin_start("alice", "ip").await.unwrap();
    key.count = 0;
    let answer = key.get(&ch.challenge, ORIGIN, FLAG_UP | FLAG_UV);
    let r = fx.e.key_signin_finish(&ch.ceremony, &answer).await.unwrap();
    // One sentence for every refusal (the clone is in the audit log).
    assert_eq!(r.unwrap_err(), PORTAL_SIGNIN_REFUSED);
}
