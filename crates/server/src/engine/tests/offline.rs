//! The offline decision: a bundle after a verified factor of a user with something to use
//! offline, only the forget list otherwise, nothing after a wrong answer, and a refused user
//! whose bundle the machine holds is named in the forget list.

use super::*;
use crate::engine::{Answered, Attach};
use latchkey_proto::login::LoginStepResult;

#[test]
fn the_decision_per_answer() {
    let step = |success, has_offline| Answered::Step {
        success,
        has_offline,
    };
    assert_eq!(step(true, Some(true)).attach(), Attach::Bundle);
    assert_eq!(step(true, Some(false)).attach(), Attach::ForgetList);
    assert_eq!(step(true, None).attach(), Attach::Nothing);
    assert_eq!(step(false, Some(true)).attach(), Attach::Nothing);
    assert_eq!(
        Answered::Start { denied: true }.attach(),
        Attach::WipeIfGone
    );
    assert_eq!(
        Answered::Start { denied: false }.attach(),
        Attach::ForgetList
    );
    assert_eq!(
        Answered::Account { allowed: false }.attach(),
        Attach::WipeIfGone
    );
    assert_eq!(
        Answered::Account { allowed: true }.attach(),
        Attach::ForgetList
    );
}

#[tokio::test]
async fn a_code_login_of_an_oath_only_user_carries_no_bundle() {
    let fx = fx().await;
    fx.user_with_totp("alice").await;
    let tx = fx.challenge("alice").await;
    let ok = fx.e.login_otp(&fx.machine, &tx, &code_now()).await.unwrap();
    assert!(matches!(ok.inner, LoginStepResult::Success { .. }));
    assert!(ok.offline.offline_bundle.is_none());
    assert!(ok.offline.offline_forget.is_empty());
}

#[tokio::test]
async fn a_code_login_of_a_user_with_a_token_app_carries_a_bundle_a_wrong_code_none() {
    let fx = fx().await;
    fx.user_with_totp("bob").await;
    fx.app("bob").await;
    let tx = fx.challenge("bob").await;
    let wrong =
        fx.e.login_otp(&fx.machine, &tx, &wrong_code())
            .await
            .unwrap();
    assert!(matches!(wrong.inner, LoginStepResult::Retry { .. }));
    assert!(wrong.offline.is_empty());
    let ok = fx.e.login_otp(&fx.machine, &tx, &code_now()).await.unwrap();
    assert!(matches!(ok.inner, LoginStepResult::Success { .. }));
    assert!(
        ok.offline.offline_bundle.is_some(),
        "a bundle after success"
    );
}

#[tokio::test]
async fn a_disabled_user_whose_bundle_the_machine_holds_is_named_to_forget() {
    let fx = fx().await;
    fx.user_with_totp("carol").await;
    fx.app("carol").await;
    let tx = fx.challenge("carol").await;
    let ok = fx.e.login_otp(&fx.machine, &tx, &code_now()).await.unwrap();
    assert!(ok.offline.offline_bundle.is_some());
    let update = latchkey_proto::admin::UserUpdate {
        enabled: Some(false),
        ..Default::default()
    };
    fx.e.user_update(&crate::engine::Actor::Admin, "carol", &update)
        .await
        .unwrap();
    let req = LoginStart {
        user: "carol".parse().unwrap(),
        client_id: "login".parse().unwrap(),
        rhost: None,
        tty: None,
        enroll: false,
    };
    let refused = fx.e.login_start(&fx.machine, &req).await.unwrap();
    assert!(matches!(refused.inner, LoginStartResult::Deny { .. }));
    assert_eq!(refused.offline.offline_forget, vec!["carol".to_string()]);
    assert!(refused.offline.offline_bundle.is_none());
}

#[tokio::test]
async fn offline_disabled_by_policy_means_no_bundle() {
    let fx = fx().await;
    fx.user_with_totp("dave").await;
    fx.app("dave").await;
    for client_id in policy::BUILT_IN {
        fx.set(client_id, &[("offline.enabled", "false")]).await;
    }
    let tx = fx.challenge("dave").await;
    let ok = fx.e.login_otp(&fx.machine, &tx, &code_now()).await.unwrap();
    assert!(matches!(ok.inner, LoginStepResult::Success { .. }));
    assert!(ok.offline.offline_bundle.is_none());
}

#[tokio::test]
async fn offline_holders_name_the_valid_bundles_by_machine() {
    let fx = fx().await;
    let n = now();
    let s = &fx.e.store;
    s.offline_issued(&fx.machine, "bob", "b1", n, n + 3600)
        .await
        .unwrap();
    s.offline_issued(&fx.machine, "alice", "b2", n, n + 3600)
        .await
        .unwrap();
    s.offline_issued(&fx.machine, "old", "b3", n - 7200, n - 3600)
        .await
        .unwrap();
    let h = fx.e.offline_holders().await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[&fx.machine], vec!["alice".to_string(), "bob".to_string()]);
}
