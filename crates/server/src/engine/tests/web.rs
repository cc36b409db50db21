//! Web sessions: opened, found by cookie, ended by idleness, by their absolute expiry, by
//! their subject going away, and at sign-out.

use super::fx;
use crate::engine::{Strength, Subject, WebSession};
use crate::store::query;

/// Moves every web session's times back by `secs` (as if that long had passed).
async fn age_sessions(f: &super::Fx, secs: i64) {
    query(
        "UPDATE web_sessions SET created_at = created_at - $1, last_seen_at = last_seen_at - $1, \
         expires_at = expires_at - $1",
    )
    .bind(secs)
    .execute(f.e.store.writer())
    .await
    .unwrap();
}

fn user(name: &str, strength: Strength) -> Subject {
    Subject::User {
        name: name.into(),
        strength,
    }
}

/// A web session of the user `name`, opened from 192.0.2.1: its cookie and the session.
async fn open(f: &super::Fx, name: &str, strength: Strength) -> (String, WebSession) {
    f.e.web_session_open(user(name, strength), "192.0.2.1")
        .await
        .unwrap()
}

#[tokio::test]
async fn a_session_is_found_by_its_cookie_and_only_its_hash_is_stored() {
    let f = fx().await;
    f.user("alice").await;
    let (cookie, s) = open(&f, "alice", Strength::Strong).await;
    assert_eq!(cookie.len(), 52);
    assert_ne!(cookie, s.csrf);
    let found = f.e.web_session(&cookie).await.unwrap().unwrap();
    assert_eq!(found.subject, user("alice", Strength::Strong));
    assert_eq!(found.csrf, s.csrf);
    // A user session lives an hour at most, whatever web_session_max says.
    assert!(found.expires_at - found.created_at <= 3600);
    let stored: String = crate::store::query_scalar("SELECT cookie_hash FROM web_sessions")
        .fetch_one(f.e.store.pool())
        .await
        .unwrap();
    assert_ne!(stored, cookie);
    assert_eq!(stored, latchkey_crypto::sha256_hex(cookie.as_bytes()));
    // Another value, or a cookie of the wrong shape, opens nothing.
    let mut other = cookie.clone();
    other.replace_range(0..1, if cookie.starts_with('A') { "B" } else { "A" });
    assert!(f.e.web_session(&other).await.unwrap().is_none());
    assert!(f.e.web_session("short").await.unwrap().is_none());
    assert!(f.e.web_session(&stored).await.unwrap().is_none());
}

#[tokio::test]
async fn an_idle_session_ends_and_use_keeps_it_alive() {
    let f = fx().await;
    f.user("alice").await;
    let (cookie, _) = open(&f, "alice", Strength::Invite).await;
    let idle = f.e.cfg.web_session_idle.as_secs() as i64;
    // Just inside the idle time: still alive, and the use moves last_seen_at to now.
    age_sessions(&f, idle - 5).await;
    assert!(f.e.web_session(&cookie).await.unwrap().is_some());
    age_sessions(&f, idle - 5).await;
    assert!(f.e.web_session(&cookie).await.unwrap().is_some());
    // Past it: gone, and deleted.
    age_sessions(&f, idle + 1).await;
    assert!(f.e.web_session(&cookie).await.unwrap().is_none());
    let left: i64 = crate::store::query_scalar("SELECT COUNT(*) FROM web_sessions")
        .fetch_one(f.e.store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_used_session_still_ends_at_its_absolute_expiry() {
    let f = fx().await;
    f.user("alice").await;
    let (cookie, s) = open(&f, "alice", Strength::Strong).await;
    let life = s.expires_at - s.created_at;
    // Used every few minutes for its whole life: never idle, still ended.
    let step = 300;
    let mut passed = 0;
    while passed + step < life {
        age_sessions(&f, step).await;
        passed += step;
        assert!(
            f.e.web_session(&cookie).await.unwrap().is_some(),
            "{passed}"
        );
    }
    age_sessions(&f, life - passed).await;
    assert!(f.e.web_session(&cookie).await.unwrap().is_none());
}

#[tokio::test]
async fn a_disabled_or_removed_user_loses_their_sessions() {
    let f = fx().await;
    f.user("alice").await;
    f.user("bob").await;
    let (a, _) = open(&f, "alice", Strength::Strong).await;
    let (b, _) = open(&f, "bob", Strength::Strong).await;
    f.e.user_update(
        &crate::engine::Actor::Admin,
        "alice",
        &latchkey_proto::admin::UserUpdate {
            display_name: None,
            groups: None,
            enabled: Some(false),
        },
    )
    .await
    .unwrap();
    assert!(f.e.web_session(&a).await.unwrap().is_none());
    f.e.user_remove(&crate::engine::Actor::Admin, "bob")
        .await
        .unwrap();
    assert!(f.e.web_session(&b).await.unwrap().is_none());
}

#[tokio::test]
async fn sign_out_ends_the_session_and_the_flash_is_shown_once() {
    let f = fx().await;
    f.user("alice").await;
    let (cookie, _) = open(&f, "alice", Strength::Strong).await;
    f.e.web_flash_set(&cookie, "The token was removed.")
        .await
        .unwrap();
    assert_eq!(
        f.e.web_flash_take(&cookie).await.unwrap().as_deref(),
        Some("The token was removed.")
    );
    assert_eq!(f.e.web_flash_take(&cookie).await.unwrap(), None);
    f.e.web_session_close(&cookie).await.unwrap();
    assert!(f.e.web_session(&cookie).await.unwrap().is_none());
}
