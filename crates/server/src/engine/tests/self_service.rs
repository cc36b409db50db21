//! The self-service engine against a real store: owner checks (another user's ids are not
//! found and change nothing), the last factor kept under racing removals, what an invite
//! session may not do, an authenticator enrolled by its first code, a token test under the
//! replay rule, own logins and "this wasn't me".

use super::*;
use crate::engine::{EngineError, Forbidden, Me, Strength, TotpConfirmed};
use latchkey_crypto::otp::totp;
use latchkey_proto::events::{Event, EventKind};
use std::sync::Arc;

fn me(name: &str, strength: Strength) -> Me {
    Me {
        name: name.into(),
        strength,
    }
}

fn strong(name: &str) -> Me {
    me(name, Strength::Strong)
}

async fn token_ids(fx: &Fx, name: &str) -> Vec<String> {
    fx.e.own_tokens(&strong(name))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect()
}

/// A second TOTP token for `name` (another seed).
async fn second_token(fx: &Fx, name: &str) -> String {
    let spec = OtpTokenCreate {
        kind: TokenKind::Totp,
        algorithm: None,
        digits: None,
        period: None,
        label: Some("spare".into()),
        secret: None,
    };
    fx.e.token_add(&crate::engine::Actor::Admin, name, &spec)
        .await
        .unwrap()
        .token
        .id
}

#[tokio::test]
async fn another_users_token_is_not_found_and_unchanged() {
    let fx = fx().await;
    fx.user_with_totp("alice").await;
    fx.user_with_totp("bob").await;
    second_token(&fx, "bob").await;
    let bobs = token_ids(&fx, "bob").await;
    let alice = strong("alice");
    for id in &bobs {
        let r = fx.e.own_token_rename(&alice, id, "mine now").await;
        assert!(matches!(r, Err(EngineError::NotFound(_))), "{r:?}");
        let r = fx.e.own_token_remove(&alice, id).await;
        assert!(matches!(r, Err(EngineError::NotFound(_))), "{r:?}");
        let r = fx.e.own_token_test(&alice, id, &code_now(), "ip").await;
        assert!(matches!(r, Err(EngineError::NotFound(_))), "{r:?}");
    }
    let after = fx.e.own_tokens(&strong("bob")).await.unwrap();
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|t| t.label != "mine now"), "{after:?}");
    // Bob's code was not used up by alice's test: it still logs bob in.
    let tx = fx.challenge("bob").await;
    let r = fx.e.login_otp(&fx.machine, &tx, &code_now()).await.unwrap();
    assert!(
        matches!(
            r.inner,
            latchkey_proto::login::LoginStepResult::Success { .. }
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn the_last_factor_is_kept_even_when_two_removals_race() {
    let fx = Arc::new(fx().await);
    fx.user_with_totp("alice").await;
    second_token(&fx, "alice").await;
    let ids = token_ids(&fx, "alice").await;
    assert_eq!(ids.len(), 2);
    let races = ids.iter().map(|id| {
        let (fx, id) = (fx.clone(), id.clone());
        tokio::spawn(async move { fx.e.own_token_remove(&strong("alice"), &id).await })
    });
    let mut ok = 0;
    for r in races {
        match r.await.unwrap() {
            Ok(()) => ok += 1,
            Err(EngineError::Invalid(m)) => assert!(m.contains("last second factor"), "{m}"),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(token_ids(&fx, "alice").await.len(), 1);
    // An admin can still remove it.
    let last = &token_ids(&fx, "alice").await[0];
    fx.e.token_remove(&crate::engine::Actor::Admin, last)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_invite_session_adds_and_lists_but_does_not_remove_or_report() {
    let fx = fx().await;
    fx.user_with_totp("alice").await;
    second_token(&fx, "alice").await;
    let invite = me("alice", Strength::Invite);
    let ids = token_ids(&fx, "alice").await;
    assert_eq!(fx.e.own_tokens(&invite).await.unwrap().len(), 2);
    fx.e.own_token_rename(&invite, &ids[0], "phone")
        .await
        .unwrap();
    let r = fx.e.own_token_remove(&invite, &ids[0]).await;
    assert!(
        matches!(r, Err(EngineError::Forbidden(Forbidden::NeedsStrongSignin))),
        "{r:?}"
    );
    let r = fx.e.own_login_report(&invite, "any").await;
    assert!(
        matches!(r, Err(EngineError::Forbidden(Forbidden::NeedsStrongSignin))),
        "{r:?}"
    );
    fx.e.own_totp_start(&invite).await.unwrap();
    assert_eq!(token_ids(&fx, "alice").await.len(), 2);
}

#[tokio::test]
async fn an_authenticator_is_enrolled_by_its_first_code_which_is_then_used_up() {
    let fx = fx().await;
    fx.user("alice").await;
    let me = me("alice", Strength::Invite);
    let started = fx.e.own_totp_start(&me).await.unwrap();
    assert!(started.otpauth_uri.expose().starts_with("otpauth://totp/"));
    let seed = latchkey_crypto::base32_decode(started.secret.expose()).unwrap();
    let code = totp(&seed, now() as u64, 30, OtpAlgorithm::Sha1, 6);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(
        fx.e.own_totp_confirm(&me, &started.id, wrong)
            .await
            .unwrap(),
        TotpConfirmed::Wrong { left: 4 }
    );
    // Another user cannot confirm alice's pending one.
    fx.user("bob").await;
    let bob = strong("bob");
    assert_eq!(
        fx.e.own_totp_confirm(&bob, &started.id, &code)
            .await
            .unwrap(),
        TotpConfirmed::Gone
    );
    let done =
        fx.e.own_totp_confirm(&me, &started.id, &code)
            .await
            .unwrap();
    assert!(matches!(done, TotpConfirmed::Enrolled { .. }), "{done:?}");
    assert_eq!(
        fx.e.own_totp_confirm(&me, &started.id, &code)
            .await
            .unwrap(),
        TotpConfirmed::Gone
    );
    assert_eq!(token_ids(&fx, "alice").await.len(), 1);
    // The confirming code cannot log in: the next login needs the next code.
    let tx = fx.challenge("alice").await;
    let r = fx.e.login_otp(&fx.machine, &tx, &code).await.unwrap();
    assert!(
        matches!(
            r.inner,
            latchkey_proto::login::LoginStepResult::Retry { .. }
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn pending_authenticators_take_five_wrong_codes_then_end() {
    let fx = fx().await;
    fx.user("alice").await;
    let me = strong("alice");
    let started = fx.e.own_totp_start(&me).await.unwrap();
    let seed = latchkey_crypto::base32_decode(started.secret.expose()).unwrap();
    let code = totp(&seed, now() as u64, 30, OtpAlgorithm::Sha1, 6);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (1..5).rev() {
        assert_eq!(
            fx.e.own_totp_confirm(&me, &started.id, wrong)
                .await
                .unwrap(),
            TotpConfirmed::Wrong { left }
        );
    }
    assert_eq!(
        fx.e.own_totp_confirm(&me, &started.id, wrong)
            .await
            .unwrap(),
        TotpConfirmed::Gone
    );
    assert_eq!(
        fx.e.own_totp_confirm(&me, &started.id, &code)
            .await
            .unwrap(),
        TotpConfirmed::Gone
    );
}

#[tokio::test]
async fn a_token_test_uses_the_code_up_and_counts_wrong_codes_toward_the_portal_lockout() {
    let fx = fx().await;
    fx.set("*", &[("lockout_threshold", "2")]).await;
    fx.user_with_totp("alice").await;
    let id = token_ids(&fx, "alice").await.remove(0);
    let me = strong("alice");
    let t =
        fx.e.own_token_test(&me, &id, &code_now(), "ip")
            .await
            .unwrap();
    assert!(t.ok, "{t:?}");
    let again =
        fx.e.own_token_test(&me, &id, &code_now(), "ip")
            .await
            .unwrap();
    assert!(!again.ok, "a code works once: {again:?}");
    // With the replay, five failures: the portal's lock, whatever the login policy says.
    for _ in 0..super::super::web_signin::PORTAL_MAX_FAILURES - 1 {
        let wrong =
            fx.e.own_token_test(&me, &id, &wrong_code(), "ip")
                .await
                .unwrap();
        assert!(!wrong.ok);
    }
    // The next step's code, unused and right: refused unjudged.
    let next = latchkey_crypto::otp::totp(
        super::SEED,
        now() as u64 + 30,
        30,
        latchkey_proto::OtpAlgorithm::Sha1,
        6,
    );
    let locked = fx.e.own_token_test(&me, &id, &next, "ip").await.unwrap();
    assert!(!locked.ok, "the portal is locked: {locked:?}");
    // The login screens' lockout (threshold 2) was never moved.
    let user = fx.e.store.user_get("alice").await.unwrap().unwrap();
    assert_eq!((user.failures, user.locked_until), (0, 0), "{user:?}");
}

fn auth_event(id: &str, user: &str, ok: bool) -> Event {
    let mut e = Event::new(
        id.into(),
        now() * 1000,
        if ok {
            EventKind::AuthSuccess
        } else {
            EventKind::AuthFailure
        },
    );
    e.user = Some(user.into());
    e.client_id = Some("login".into());
    e.rhost = Some("10.0.0.9".into());
    e.method = Some("otp".into());
    e.online = Some(true);
    e
}

#[tokio::test]
async fn own_logins_are_listed_and_a_report_disables_the_user_when_the_policy_says_so() {
    let fx = fx().await;
    fx.user_with_totp("alice").await;
    fx.user_with_totp("bob").await;
    let ids = [
        "0190a0a0-0000-7000-8000-000000000001",
        "0190a0a0-0000-7000-8000-000000000002",
        "0190a0a0-0000-7000-8000-000000000003",
    ];
    let events = vec![
        auth_event(ids[0], "alice", true),
        auth_event(ids[1], "alice", false),
        auth_event(ids[2], "bob", true),
    ];
    fx.e.events_ingest(&fx.machine, "ws1", events)
        .await
        .unwrap();
    let alice = strong("alice");
    let mine = fx.e.own_logins(&alice).await.unwrap();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(mine[0].id, ids[1], "newest first");
    assert!(!mine[0].success && mine[1].success);
    assert_eq!(mine[0].machine, "ws1");
    // Bob's event is not alice's to report.
    let r = fx.e.own_login_report(&alice, ids[2]).await;
    assert!(matches!(r, Err(EngineError::NotFound(_))), "{r:?}");
    // Default policy: audited, not disabled.
    assert!(!fx.e.own_login_report(&alice, ids[0]).await.unwrap());
    assert!(fx.e.user_show("alice").await.unwrap().enabled);
    fx.set("login", &[("report_locks_user", "true")]).await;
    let subject = crate::engine::Subject::User {
        name: "alice".into(),
        strength: crate::engine::Strength::Strong,
    };
    let (cookie, _) = fx.e.web_session_open(subject, "192.0.2.1").await.unwrap();
    assert!(fx.e.own_login_report(&alice, ids[1]).await.unwrap());
    assert!(!fx.e.user_show("alice").await.unwrap().enabled);
    // The disable ended the session: an admin's enable does not bring it back.
    let enable = latchkey_proto::admin::UserUpdate {
        enabled: Some(true),
        ..Default::default()
    };
    fx.e.user_update(&crate::engine::Actor::Admin, "alice", &enable)
        .await
        .unwrap();
    assert!(fx.e.web_session(&cookie).await.unwrap().is_none());
    let log = fx.e.audit_log(Some("alice"), None, None).await.unwrap();
    let reports: Vec<_> = log.iter().filter(|a| a.action == "user.report").collect();
    assert_eq!(reports.len(), 2, "{log:?}");
    assert!(
        reports.iter().any(|a| a.detail.contains("user disabled")),
        "{reports:?}"
    );
    assert!(
        reports.iter().all(|a| a.actor == "user:alice"),
        "{reports:?}"
    );
}
