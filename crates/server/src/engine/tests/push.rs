//! Push: the app's signed answer settles the request; the waiting login hears approve,
//! wrong number, deny or expiry as typed outcomes.

use super::*;
use crate::engine::{PushOutcome, Said};
use crate::store::{PushRow, PushState};
use latchkey_proto::app::{Decision, PushResponse, PushStartResult, push_signing_bytes};
use latchkey_proto::login::LoginStepResult;
use std::time::Duration;

/// A login of `user` with a push sent: (transaction, number shown, app row, app key).
async fn pushed(fx: &Fx, user: &str) -> (String, u32, crate::store::AppRow, SigningKeyPair) {
    let (app_key, signer) = fx.app(user).await;
    let tx = fx.challenge(user).await;
    let number = match fx.e.push_start(&fx.machine, "ws1", &tx).await.unwrap() {
        PushStartResult::Started(p) => p.number,
        other => panic!("push not started: {other:?}"),
    };
    let app = fx.e.app_caller(&app_key).await.unwrap();
    (tx, number, app, signer)
}

/// The app's signed answer to the pending request of `tx`.
async fn answer(
    fx: &Fx,
    app: &crate::store::AppRow,
    signer: &SigningKeyPair,
    tx: &str,
    decision: Decision,
    number: Option<u32>,
) -> bool {
    let pending = fx.e.app_pending(app, Duration::ZERO).await.unwrap();
    let req = pending
        .iter()
        .find(|p| p.tx == tx)
        .expect("request pending");
    let signed = push_signing_bytes(tx, decision, number, &req.nonce);
    let verdict =
        fx.e.app_respond(
            app,
            &PushResponse {
                tx: tx.parse().unwrap(),
                decision,
                number,
                nonce: req.nonce.clone(),
                signature: B64.encode(signer.sign(&signed)),
                reason: None,
            },
        )
        .await
        .unwrap();
    verdict.ok
}

#[tokio::test]
async fn an_approval_with_the_right_number_succeeds_with_a_bundle() {
    let fx = fx().await;
    fx.user("alice").await;
    let (tx, number, app, signer) = pushed(&fx, "alice").await;
    assert!(answer(&fx, &app, &signer, &tx, Decision::Approve, Some(number)).await);
    let done =
        fx.e.push_wait(&fx.machine, &tx, Duration::ZERO)
            .await
            .unwrap();
    assert_eq!(done.inner, Said::PushApproved.success());
    assert!(done.offline.offline_bundle.is_some());
}

#[tokio::test]
async fn a_wrong_number_refuses_the_login() {
    let fx = fx().await;
    fx.user("bob").await;
    let (tx, number, app, signer) = pushed(&fx, "bob").await;
    let wrong = if number == 99 { 10 } else { number + 1 };
    assert!(!answer(&fx, &app, &signer, &tx, Decision::Approve, Some(wrong)).await);
    let done =
        fx.e.push_wait(&fx.machine, &tx, Duration::ZERO)
            .await
            .unwrap();
    assert_eq!(done.inner, Said::PushWrongNumber.deny());
    assert!(done.offline.is_empty());
}

#[tokio::test]
async fn a_denial_refuses_the_login() {
    let fx = fx().await;
    fx.user("carol").await;
    let (tx, _, app, signer) = pushed(&fx, "carol").await;
    assert!(answer(&fx, &app, &signer, &tx, Decision::Deny, None).await);
    let done =
        fx.e.push_wait(&fx.machine, &tx, Duration::ZERO)
            .await
            .unwrap();
    assert_eq!(done.inner, Said::PushDenied.deny());
}

#[tokio::test]
async fn an_unanswered_push_waits_then_expires() {
    let fx = fx().await;
    fx.user("dave").await;
    // The push lives no longer than its transaction.
    fx.set("login", &[("tx_ttl", "2s")]).await;
    let (tx, _, _, _) = pushed(&fx, "dave").await;
    let waiting =
        fx.e.push_wait(&fx.machine, &tx, Duration::ZERO)
            .await
            .unwrap();
    assert!(matches!(waiting.inner, LoginStepResult::Pending { .. }));
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let done =
        fx.e.push_wait(&fx.machine, &tx, Duration::ZERO)
            .await
            .unwrap();
    assert_eq!(done.inner, Said::PushExpired.deny());
}

#[test]
fn the_outcome_of_each_stored_state() {
    let row = |state, expires_at| PushRow {
        tx_id: "t".into(),
        user_name: "u".into(),
        host: "h".into(),
        client_id: "login".into(),
        rhost: None,
        number: 42,
        nonce: "n".into(),
        expires_at,
        state,
        detail: None,
    };
    assert_eq!(
        PushOutcome::of(&row(PushState::Pending, 11), 10),
        PushOutcome::Waiting
    );
    assert_eq!(
        PushOutcome::of(&row(PushState::Pending, 10), 10),
        PushOutcome::Expired
    );
    assert_eq!(
        PushOutcome::of(&row(PushState::Approved, 10), 20),
        PushOutcome::Approved
    );
    assert_eq!(
        PushOutcome::of(&row(PushState::Denied, 30), 20),
        PushOutcome::Denied
    );
    assert_eq!(
        PushOutcome::of(&row(PushState::WrongNumber, 30), 20),
        PushOutcome::WrongNumber
    );
}
