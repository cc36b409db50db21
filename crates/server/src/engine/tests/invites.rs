//! Invite links against a real store: one use however many redemptions race, one open
//! invite per user, one refusal for every unusable code, the link's base; and the inline
//! enrolment's `link` method.

use super::*;
use crate::engine::{Actor, EngineError, INVITE_PATH, Unauthorized};
use latchkey_proto::enroll::{EnrollBegin, EnrollBegun, EnrollMethod};
use std::sync::Arc;

fn code_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

fn refused(r: &std::result::Result<latchkey_proto::UserName, EngineError>) -> bool {
    matches!(r, Err(EngineError::Unauthorized(Unauthorized::InviteCode)))
}

#[tokio::test]
async fn an_invite_is_redeemed_once_even_when_redemptions_race() {
    let fx = Arc::new(fx().await);
    fx.user("alice").await;
    let invite =
        fx.e.user_invite(&Actor::Admin, "alice", None, Some("mfa.example:8443"))
            .await
            .unwrap();
    let url = invite.url.expose().to_string();
    assert!(
        url.starts_with(&format!("https://mfa.example:8443{INVITE_PATH}")),
        "{url}"
    );
    assert!(invite.expires_at >= now() + 86_399);
    let code = code_of(&url);
    let tries = (0..8).map(|_| {
        let (fx, code) = (fx.clone(), code.clone());
        tokio::spawn(async move { fx.e.invite_redeem(&code, "10.0.0.7").await })
    });
    let mut ok = 0;
    for t in tries {
        match t.await.unwrap() {
            Ok(user) => {
                assert_eq!(user.as_str(), "alice");
                ok += 1;
            }
            r => assert!(refused(&r), "{r:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert!(refused(&fx.e.invite_redeem(&code, "10.0.0.7").await));
}

#[tokio::test]
async fn a_new_invite_replaces_the_old_and_unusable_codes_are_one_refusal() {
    let fx = fx().await;
    fx.user("alice").await;
    let first =
        fx.e.user_invite(&Actor::Admin, "alice", None, None)
            .await
            .unwrap();
    let second =
        fx.e.user_invite(&Actor::Admin, "alice", None, None)
            .await
            .unwrap();
    assert!(refused(
        &fx.e.invite_redeem(&code_of(first.url.expose()), "ip").await
    ));
    for bad in ["", "nope", &"x".repeat(500)] {
        assert!(refused(&fx.e.invite_redeem(bad, "ip").await), "{bad}");
    }
    // A user disabled after the invite: the same refusal, and the code is spent.
    fx.e.user_update(
        &Actor::Admin,
        "alice",
        &latchkey_proto::admin::UserUpdate {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(refused(
        &fx.e
            .invite_redeem(&code_of(second.url.expose()), "ip")
            .await
    ));
    // Disabled and unknown users get no invite; lifetimes are bounded.
    assert!(
        fx.e.user_invite(&Actor::Admin, "alice", None, None)
            .await
            .is_err()
    );
    assert!(matches!(
        fx.e.user_invite(&Actor::Admin, "ghost", None, None).await,
        Err(EngineError::NotFound(_))
    ));
    fx.user("bob").await;
    for ttl in [0, 59, 8 * 86_400] {
        assert!(matches!(
            fx.e.user_invite(&Actor::Admin, "bob", Some(ttl), None)
                .await,
            Err(EngineError::Invalid(_))
        ));
    }
    // The listen address when no host is known; a host with a path is not used.
    let b =
        fx.e.user_invite(&Actor::Admin, "bob", None, Some("evil/x"))
            .await
            .unwrap();
    assert!(
        b.url
            .expose()
            .starts_with("https://127.0.0.1:8443/ui/invite/"),
        "{:?}",
        b.url.expose()
    );
}

#[tokio::test]
async fn the_audit_log_never_holds_the_code() {
    let fx = fx().await;
    fx.user("alice").await;
    let invite =
        fx.e.user_invite(&Actor::Admin, "alice", None, None)
            .await
            .unwrap();
    let code = code_of(invite.url.expose());
    fx.e.invite_redeem(&code, "10.0.0.7").await.unwrap();
    let log = fx.e.audit_log(None, None, None).await.unwrap();
    let text = format!("{log:?}");
    assert!(
        text.contains("invite.redeem") && text.contains("user:alice"),
        "{text}"
    );
    assert!(!text.contains(&code), "{text}");
}

#[tokio::test]
async fn inline_enrolment_link_hands_out_an_invite_once_and_ends_the_enrolment() {
    let fx = fx().await;
    fx.set("*", &[("enroll.inline", "link")]).await;
    fx.user("alice").await;
    let req = LoginStart {
        user: "alice".parse().unwrap(),
        client_id: "login".parse().unwrap(),
        rhost: None,
        tty: None,
        enroll: true,
    };
    let tx = match fx.e.login_start(&fx.machine, &req).await.unwrap().inner {
        LoginStartResult::Enroll {
            pending_id,
            methods,
            ..
        } => {
            assert_eq!(methods, [EnrollMethod::Link]);
            pending_id.to_string()
        }
        other => panic!("{other:?}"),
    };
    let begin = EnrollBegin {
        method: EnrollMethod::Link,
    };
    let url = match fx
        .e
        .enroll_begin(&fx.machine, &tx, &begin, Some("mfa.example"))
        .await
        .unwrap()
    {
        EnrollBegun::Link { url, reason, .. } => {
            assert!(reason.contains("Log in again"), "{reason}");
            url.expose().to_string()
        }
        other => panic!("{other:?}"),
    };
    assert!(url.starts_with("https://mfa.example/ui/invite/"), "{url}");
    let again =
        fx.e.enroll_begin(&fx.machine, &tx, &begin, None)
            .await
            .unwrap();
    assert!(matches!(again, EnrollBegun::Deny { .. }), "{again:?}");
    // The enrolment ended: a new login may open another one.
    assert!(matches!(
        fx.e.login_start(&fx.machine, &req).await.unwrap().inner,
        LoginStartResult::Enroll { .. }
    ));
    assert_eq!(
        fx.e.invite_redeem(&code_of(&url), "ip")
            .await
            .unwrap()
            .as_str(),
        "alice"
    );
}
