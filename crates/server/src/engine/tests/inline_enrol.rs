//! Inline enrolment against a real store: one pending enrolment per user however many
//! logins race for it, a method chosen once, a first code accepted once, grace logins
//! counted exactly under parallel skips.

use super::*;
use latchkey_crypto::otp::totp;
use latchkey_proto::enroll::{EnrollBegin, EnrollBegun, EnrollMethod};
use latchkey_proto::login::LoginStepResult;
use std::sync::Arc;

impl Fx {
    async fn start_enrol(&self, user: &str, client_id: &str) -> LoginStartResult {
        let req = LoginStart {
            user: user.parse().unwrap(),
            client_id: client_id.parse().unwrap(),
            rhost: None,
            tty: None,
            enroll: true,
        };
        self.e.login_start(&self.machine, &req).await.unwrap().inner
    }
}

fn pending(r: &LoginStartResult) -> String {
    match r {
        LoginStartResult::Enroll { pending_id, .. } => pending_id.to_string(),
        other => panic!("expected an enrolment offer, got {other:?}"),
    }
}

fn seed_of(begun: &EnrollBegun) -> Vec<u8> {
    match begun {
        EnrollBegun::Totp { secret, .. } => {
            latchkey_crypto::base32_decode(secret.expose()).unwrap()
        }
        other => panic!("expected a totp enrolment, got {other:?}"),
    }
}

fn code_now(seed: &[u8]) -> String {
    totp(seed, now() as u64, 30, OtpAlgorithm::Sha1, 6)
}

#[tokio::test]
async fn only_a_shell_that_asks_gets_an_offer_and_only_a_user_with_no_token() {
    let fx = fx().await;
    fx.set("*", &[("enroll.inline", "totp")]).await;
    fx.user("alice").await;
    fx.user_with_totp("bob").await;
    assert!(matches!(
        fx.start("alice").await,
        LoginStartResult::Deny { .. }
    ));
    pending(&fx.start_enrol("alice", "login").await);
    assert!(matches!(
        fx.start_enrol("bob", "login").await,
        LoginStartResult::Challenge { .. }
    ));
    // Unknown users get the same refusal as before, never an offer.
    assert!(matches!(
        fx.start_enrol("nobody", "login").await,
        LoginStartResult::Deny { .. }
    ));
    // After the rollout window, no offer.
    fx.set(
        "*",
        &[("enroll.inline", "totp"), ("enroll.until", "2020-01-01")],
    )
    .await;
    fx.user("carol").await;
    assert!(matches!(
        fx.start_enrol("carol", "login").await,
        LoginStartResult::Deny { .. }
    ));
}

#[tokio::test]
async fn parallel_logins_open_one_enrolment_per_user() {
    let fx = Arc::new(fx().await);
    fx.set("*", &[("enroll.inline", "totp")]).await;
    fx.user("alice").await;
    let starts = (0..8).map(|_| {
        let fx = fx.clone();
        tokio::spawn(async move { fx.start_enrol("alice", "login").await })
    });
    let results = futures_join(starts).await;
    let offers = results
        .iter()
        .filter(|r| matches!(r, LoginStartResult::Enroll { .. }))
        .count();
    assert_eq!(offers, 1, "{results:?}");
}

async fn futures_join<T: Send + 'static>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_method_is_chosen_once_and_a_first_code_confirms_once() {
    let fx = fx().await;
    fx.set("*", &[("enroll.inline", "totp,app")]).await;
    fx.user("alice").await;
    let tx = pending(&fx.start_enrol("alice", "login").await);
    let begin = |method| EnrollBegin { method };
    let begun =
        fx.e.enroll_begin(&fx.machine, &tx, &begin(EnrollMethod::Totp), None)
            .await
            .unwrap();
    let seed = seed_of(&begun);
    assert_eq!(seed.len(), 20);
    // A second choice (another method, or the same again) is refused.
    for m in [EnrollMethod::App, EnrollMethod::Totp] {
        let again =
            fx.e.enroll_begin(&fx.machine, &tx, &begin(m), None)
                .await
                .unwrap();
        assert!(matches!(again, EnrollBegun::Deny { .. }), "{again:?}");
    }
    let code = code_now(&seed);
    let first = fx.e.enroll_confirm(&fx.machine, &tx, &code).await.unwrap();
    assert!(
        matches!(first.inner, LoginStepResult::Success { .. }),
        "{first:?}"
    );
    let again = fx.e.enroll_confirm(&fx.machine, &tx, &code).await.unwrap();
    assert!(
        matches!(again.inner, LoginStepResult::Deny { .. }),
        "{again:?}"
    );
    let tokens = fx.e.token_list("alice").await.unwrap();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    // The confirming code is used up for logins too.
    let tx = fx.challenge("alice").await;
    let replay = fx.e.login_otp(&fx.machine, &tx, &code).await.unwrap();
    assert!(
        matches!(replay.inner, LoginStepResult::Retry { .. }),
        "{replay:?}"
    );
}

#[tokio::test]
async fn another_machine_cannot_answer_an_enrolment() {
    let fx = fx().await;
    fx.set("*", &[("enroll.inline", "totp")]).await;
    fx.user("alice").await;
    let tx = pending(&fx.start_enrol("alice", "login").await);
    let other = "not-this-machine";
    let begun =
        fx.e.enroll_begin(
            other,
            &tx,
            &EnrollBegin {
                method: EnrollMethod::Totp,
            },
            None,
        )
        .await
        .unwrap();
    assert!(matches!(begun, EnrollBegun::Deny { .. }), "{begun:?}");
    let skip = fx.e.enroll_skip(other, &tx).await.unwrap();
    assert!(
        matches!(skip.inner, LoginStepResult::Deny { .. }),
        "{skip:?}"
    );
}

#[tokio::test]
async fn parallel_skips_spend_each_grace_login_once() {
    let fx = Arc::new(fx().await);
    fx.set(
        "*",
        &[("enroll.inline", "totp"), ("enroll.grace_logins", "1")],
    )
    .await;
    fx.user("alice").await;
    let tx = pending(&fx.start_enrol("alice", "login").await);
    let skips = (0..6).map(|_| {
        let (fx, tx) = (fx.clone(), tx.clone());
        tokio::spawn(async move { fx.e.enroll_skip(&fx.machine, &tx).await.unwrap().inner })
    });
    let results = futures_join(skips).await;
    let passed = results
        .iter()
        .filter(|r| matches!(r, LoginStepResult::Success { .. }))
        .count();
    assert_eq!(passed, 1, "{results:?}");
    // The one grace login is spent: the next enrolment offers none.
    match fx.start_enrol("alice", "login").await {
        LoginStartResult::Enroll { grace_left, .. } => assert_eq!(grace_left, 0),
        other => panic!("{other:?}"),
    }
}
