//! Web console admins: the password rule, sign-in with password and TOTP together, the
//! lockout counted atomically under parallel guesses, replayed codes refused.

use super::fx;
use crate::engine::{Actor, AdminSignIn};
use latchkey_crypto::otp::totp;
use latchkey_proto::admin::{AdminCreate, AdminCreated};
use latchkey_proto::{OtpAlgorithm, Secret};

const PASSWORD: &str = "correct horse battery";

async fn add(f: &super::Fx, name: &str) -> AdminCreated {
    f.e.admin_add(
        &Actor::Admin,
        &AdminCreate {
            name: name.into(),
            password: Secret::new(PASSWORD),
        },
    )
    .await
    .unwrap()
}

fn code_at(created: &AdminCreated, t: i64) -> Secret {
    let secret = latchkey_crypto::base32_decode(&created.secret).unwrap();
    Secret::new(totp(&secret, t as u64, 30, OtpAlgorithm::Sha1, 6))
}

fn code(created: &AdminCreated) -> Secret {
    code_at(created, crate::engine::now())
}

async fn signin(f: &super::Fx, name: &str, pw: &str, code: &Secret) -> AdminSignIn {
    f.e.admin_signin(name, &Secret::new(pw), code, "192.0.2.7")
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_admin_needs_a_long_password_and_gets_a_totp_secret_once() {
    let f = fx().await;
    let err =
        f.e.admin_add(
            &Actor::Admin,
            &AdminCreate {
                name: "root".into(),
                password: Secret::new("elevenchars"),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least 12"), "{err}");
    let created = add(&f, "root").await;
    assert!(
        created.otpauth_uri.starts_with("otpauth://totp/"),
        "{}",
        created.otpauth_uri
    );
    assert_eq!(
        latchkey_crypto::base32_decode(&created.secret)
            .unwrap()
            .len(),
        20
    );
    let listed = f.e.admin_list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "root");
    // Neither the password nor the secret is stored in the clear.
    let row: (String, String) = {
        let r = crate::store::query("SELECT password_hash, totp_sealed FROM admins")
            .fetch_one(f.e.store.pool())
            .await
            .unwrap();
        (
            r.try_get("password_hash").unwrap(),
            r.try_get("totp_sealed").unwrap(),
        )
    };
    assert!(row.0.starts_with("$argon2id$"), "{}", row.0);
    assert!(!row.0.contains(PASSWORD));
    assert!(!row.1.contains(&created.secret));
    // A second admin of the same name is refused.
    let again =
        f.e.admin_add(
            &Actor::Admin,
            &AdminCreate {
                name: "root".into(),
                password: Secret::new(PASSWORD),
            },
        )
        .await;
    assert!(again.is_err());
}

#[tokio::test]
async fn sign_in_takes_the_password_and_a_code_and_a_code_works_once() {
    let f = fx().await;
    let created = add(&f, "root").await;
    let now = crate::engine::now();
    assert_eq!(
        signin(&f, "root", "wrong password!", &code(&created)).await,
        AdminSignIn::Refused
    );
    assert_eq!(
        signin(&f, "root", PASSWORD, &Secret::new("000000")).await,
        AdminSignIn::Refused
    );
    let good = code_at(&created, now);
    assert_eq!(signin(&f, "root", PASSWORD, &good).await, AdminSignIn::Ok);
    // The same code again: replay, refused.
    assert_eq!(
        signin(&f, "root", PASSWORD, &good).await,
        AdminSignIn::Refused
    );
    // An older step than the one used: refused too.
    let older = code_at(&created, now - 30);
    if older.expose() != good.expose() {
        assert_eq!(
            signin(&f, "root", PASSWORD, &older).await,
            AdminSignIn::Refused
        );
    }
    // The success cleared the failures counted before it.
    let r = crate::store::query("SELECT failures FROM admins WHERE name = 'root'")
        .fetch_one(f.e.store.pool())
        .await
        .unwrap();
    assert!(r.try_get::<i64, _>("failures").unwrap() <= 2);
    // An unknown name is refused the same way.
    assert_eq!(
        signin(&f, "nobody", PASSWORD, &good).await,
        AdminSignIn::Refused
    );
    let log = f.e.audit_log(None, None, None).await.unwrap();
    let signins: Vec<_> = log.iter().filter(|a| a.action == "admin.signin").collect();
    assert!(
        signins
            .iter()
            .any(|a| a.result == "ok" && a.actor == "admin:root")
    );
    assert!(signins.iter().any(|a| a.detail.contains("already used")));
    assert!(signins.iter().any(|a| a.detail.contains("no such admin")));
    // Nothing secret in the log.
    assert!(
        log.iter()
            .all(|a| !a.detail.contains(PASSWORD) && !a.detail.contains(good.expose()))
    );
}

#[tokio::test]
async fn parallel_wrong_guesses_lock_after_five_and_the_lock_holds_for_the_right_password() {
    let f = fx().await;
    let created = add(&f, "root").await;
    let wrong = Secret::new("123456");
    let bad = Secret::new("not the password");
    let attempt = || f.e.admin_signin("root", &bad, &wrong, "192.0.2.7");
    let results = tokio::join!(
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
        attempt(),
    );
    for r in [
        results.0, results.1, results.2, results.3, results.4, results.5, results.6, results.7,
        results.8, results.9,
    ] {
        assert_eq!(r.unwrap(), AdminSignIn::Refused);
    }
    let log = f.e.audit_log(None, None, None).await.unwrap();
    let checked = log
        .iter()
        .filter(|a| a.action == "admin.signin" && a.detail.contains("wrong password"))
        .count();
    let locked = log
        .iter()
        .filter(|a| a.action == "admin.signin" && a.detail.contains("account locked"))
        .count();
    assert_eq!(
        (checked, locked),
        (5, 5),
        "exactly five guesses were checked"
    );
    let listed = f.e.admin_list().await.unwrap();
    assert!(listed[0].locked_until.is_some());
    // The right password and a fresh code: still refused while locked.
    assert_eq!(
        signin(&f, "root", PASSWORD, &code(&created)).await,
        AdminSignIn::Refused
    );
    // Once the lock has run out, the right sign-in works and the count starts over.
    crate::store::query("UPDATE admins SET locked_until = $1")
        .bind(crate::engine::now() - 1)
        .execute(f.e.store.writer())
        .await
        .unwrap();
    assert_eq!(
        signin(&f, "root", PASSWORD, &code(&created)).await,
        AdminSignIn::Ok
    );
    assert!(f.e.admin_list().await.unwrap()[0].locked_until.is_none());
}

#[tokio::test]
async fn removing_an_admin_ends_their_sessions() {
    let f = fx().await;
    add(&f, "root").await;
    let (cookie, _) =
        f.e.web_session_open(crate::engine::Subject::Admin("root".into()), "192.0.2.7")
            .await
            .unwrap();
    assert!(f.e.web_session(&cookie).await.unwrap().is_some());
    f.e.admin_remove(&Actor::WebAdmin("other".into()), "root")
        .await
        .unwrap();
    assert!(f.e.web_session(&cookie).await.unwrap().is_none());
    assert!(f.e.admin_remove(&Actor::Admin, "root").await.is_err());
    let log = f.e.audit_log(None, None, None).await.unwrap();
    assert!(
        log.iter()
            .any(|a| a.action == "admin.remove" && a.actor == "admin:other")
    );
}

/// A flood of sign-ins cannot take every core: at most half of them hash at once (one on
/// a one- or two-core server), the rest stay with logins.
#[tokio::test]
async fn argon2_takes_at_most_half_the_cores() {
    let f = fx().await;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let permits = f.e.argon2_permits.available_permits();
    assert_eq!(permits, (cores / 2).max(1));
    assert!(permits == 1 || permits * 2 <= cores, "{permits} of {cores}");
}
