//! An admin's lockout: failures older than the lock window stop counting, and an admin
//! locked out is unlocked by the API key (`latchkey admin unlock`).

use super::fx;
use crate::engine::admins::{LOCK_SECS, MAX_FAILURES};
use crate::engine::{Actor, AdminSignIn, EngineError};
use latchkey_crypto::otp::totp;
use latchkey_proto::admin::{AdminCreate, AdminCreated};
use latchkey_proto::{OtpAlgorithm, Secret};

const PASSWORD: &str = "correct horse battery";

async fn add(f: &super::Fx) -> AdminCreated {
    let req = AdminCreate {
        name: "root".into(),
        password: Secret::new(PASSWORD),
    };
    f.e.admin_add(&Actor::Admin, &req).await.unwrap()
}

async fn signin(f: &super::Fx, pw: &str, created: &AdminCreated) -> AdminSignIn {
    let secret = latchkey_crypto::base32_decode(&created.secret).unwrap();
    let now = crate::engine::now() as u64;
    let code = Secret::new(totp(&secret, now, 30, OtpAlgorithm::Sha1, 6));
    f.e.admin_signin("root", &Secret::new(pw), &code, "192.0.2.7")
        .await
        .unwrap()
}

async fn failures(f: &super::Fx) -> i64 {
    let r = crate::store::query("SELECT failures FROM admins WHERE name = 'root'")
        .fetch_one(f.e.store.pool())
        .await
        .unwrap();
    r.try_get("failures").unwrap()
}

#[tokio::test]
async fn failures_older_than_the_lock_window_stop_counting() {
    let f = fx().await;
    let created = add(&f).await;
    for _ in 0..MAX_FAILURES - 1 {
        assert_eq!(signin(&f, "wrong", &created).await, AdminSignIn::Refused);
    }
    assert_eq!(failures(&f).await, MAX_FAILURES - 1);
    // The last of them a lock window ago: the next failure starts the count over.
    crate::store::query("UPDATE admins SET failed_at = failed_at - $1")
        .bind(LOCK_SECS)
        .execute(f.e.store.writer())
        .await
        .unwrap();
    assert_eq!(signin(&f, "wrong", &created).await, AdminSignIn::Refused);
    assert_eq!(failures(&f).await, 1);
    assert!(f.e.admin_list().await.unwrap()[0].locked_until.is_none());
    // Within the window they add up: four more lock the account.
    for _ in 0..MAX_FAILURES - 1 {
        signin(&f, "wrong", &created).await;
    }
    assert!(f.e.admin_list().await.unwrap()[0].locked_until.is_some());
}

#[tokio::test]
async fn a_locked_admin_is_unlocked_by_the_api_key() {
    let f = fx().await;
    let created = add(&f).await;
    for _ in 0..MAX_FAILURES {
        signin(&f, "wrong", &created).await;
    }
    assert_eq!(signin(&f, PASSWORD, &created).await, AdminSignIn::Refused);
    let info = f.e.admin_unlock(&Actor::Admin, "root").await.unwrap();
    assert_eq!(info.locked_until, None);
    assert_eq!(failures(&f).await, 0);
    // The code above was refused before it was looked at (locked), so it is still good.
    assert_eq!(signin(&f, PASSWORD, &created).await, AdminSignIn::Ok);
    let log = f.e.audit_log(None, None, None).await.unwrap();
    assert!(
        log.iter()
            .any(|a| a.action == "admin.unlock" && a.actor == "admin"),
        "{log:?}"
    );
    let r = f.e.admin_unlock(&Actor::Admin, "nobody").await;
    assert!(matches!(r, Err(EngineError::NotFound(_))), "{r:?}");
}
