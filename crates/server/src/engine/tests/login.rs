//! Code logins: a code is accepted once, its replay refused, wrong codes lock the user out.

use super::*;
use crate::engine::Said;
use latchkey_proto::login::LoginStepResult;

#[tokio::test]
async fn a_code_is_accepted_once_and_its_replay_refused() {
    let fx = fx().await;
    fx.user_with_totp("alice").await;
    let code = code_now();
    let tx = fx.challenge("alice").await;
    let first = fx.e.login_otp(&fx.machine, &tx, &code).await.unwrap();
    assert_eq!(first.inner, Said::CodeVerified.success());
    // The same transaction is finished: answering it again is not judged.
    let again = fx.e.login_otp(&fx.machine, &tx, &code).await.unwrap();
    assert_eq!(again.inner, Said::TxGone.deny());
    // A new login with the used code is a replay: counted, refused, retry allowed.
    let tx = fx.challenge("alice").await;
    let replay = fx.e.login_otp(&fx.machine, &tx, &code).await.unwrap();
    assert_eq!(
        replay.inner,
        LoginStepResult::Retry {
            attempts_left: 2,
            message: Said::CodeReplayed { left: 2 }.text(),
        }
    );
}

#[tokio::test]
async fn wrong_codes_lock_the_user_out_at_the_threshold() {
    let fx = fx().await;
    fx.user_with_totp("bob").await;
    fx.set(
        "login",
        &[("lockout_threshold", "2"), ("max_attempts", "5")],
    )
    .await;
    let tx = fx.challenge("bob").await;
    let wrong = wrong_code();
    let first = fx.e.login_otp(&fx.machine, &tx, &wrong).await.unwrap();
    assert_eq!(first.inner, Said::CodeRejected { left: 4 }.retry(4));
    let second = fx.e.login_otp(&fx.machine, &tx, &wrong).await.unwrap();
    match second.inner {
        LoginStepResult::Deny { reason } => {
            assert!(
                reason.starts_with("Too many failures: try again in"),
                "{reason}"
            )
        }
        other => panic!("expected a lockout, got {other:?}"),
    }
    // Locked: even the right code on a new login is refused before it is asked for.
    match fx.start("bob").await {
        LoginStartResult::Deny { reason } => {
            assert!(reason.starts_with("Too many failures"), "{reason}")
        }
        other => panic!("a locked user must be refused at start, got {other:?}"),
    }
}

#[tokio::test]
async fn the_last_attempt_ends_the_login() {
    let fx = fx().await;
    fx.user_with_totp("carol").await;
    fx.set("login", &[("max_attempts", "2")]).await;
    let tx = fx.challenge("carol").await;
    let wrong = wrong_code();
    let first = fx.e.login_otp(&fx.machine, &tx, &wrong).await.unwrap();
    assert_eq!(first.inner, Said::CodeRejected { left: 1 }.retry(1));
    let second = fx.e.login_otp(&fx.machine, &tx, &wrong).await.unwrap();
    assert_eq!(second.inner, Said::CodesExhausted.deny());
    // Even the right code is not judged any more on this transaction.
    let late = fx.e.login_otp(&fx.machine, &tx, &code_now()).await.unwrap();
    assert!(matches!(late.inner, LoginStepResult::Deny { .. }));
}

#[tokio::test]
async fn unknown_and_token_less_users_hear_the_same_refusal() {
    let fx = fx().await;
    fx.user("dave").await;
    let unknown = fx.start("nobody").await;
    let token_less = fx.start("dave").await;
    assert_eq!(unknown, Said::NoMethod.start_deny());
    assert_eq!(token_less, unknown);
}
