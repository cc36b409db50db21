//! Admin accounts of the web console (issue 23, docs/web.md "Admin accounts"): a name, a
//! password (Argon2id, PHC string) and a TOTP second factor whose secret the server makes
//! and seals with the master key, like an OATH token's. Signing in takes all three in one
//! step.
//!
//! The guesses an attacker gets: 5 failures lock the account for 15 minutes, counted before
//! the password is looked at, in one store step (`Store::admin_attempt`), so parallel
//! guesses cannot slip past the count. A name that does not exist, or a locked account,
//! costs the same Argon2 time against a dummy hash and is answered the same sentence, so
//! names cannot be probed by timing or wording. At most [`argon2_at_once`] hashes (half the
//! cores) run at a time, on the blocking pool, so sign-in floods cannot starve logins of CPU.

use super::{Actor, Engine, EngineError, Result, now, validate_user_name};
use crate::store::{AdminRow, Attempt};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::otp::OtpParams;
use latchkey_crypto::otpauth::OtpAuthUri;
use latchkey_proto::admin::{AdminCreate, AdminCreated, AdminInfo};
use latchkey_proto::{OtpAlgorithm, Secret, TokenKind};
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// Failed sign-ins that lock an admin account, and for how long.
pub const MAX_FAILURES: i64 = 5;
pub const LOCK_SECS: i64 = 15 * 60;
/// Argon2 hashes computed at once (each takes ~19 MiB and tens of milliseconds): half the
/// cores, at least one, so a flood of sign-ins leaves the other half to logins.
pub fn argon2_at_once() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cores / 2).max(1)
}
pub const MIN_PASSWORD: usize = 12;
/// Longer passwords are refused: hashing a megabyte is work an attacker should not get free.
pub const MAX_PASSWORD: usize = 1024;

const TOTP: OtpParams = OtpParams {
    algorithm: OtpAlgorithm::Sha1,
    digits: 6,
    period: 30,
};

/// What a sign-in attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminSignIn {
    Ok,
    /// Wrong name, password or code, a code used before, or a locked account: one answer
    /// for all (the reason is in the audit log).
    Refused,
}

/// The sentence a refused sign-in shows.
pub const SIGNIN_REFUSED: &str = "Sign-in refused: the name, password or code is wrong. After 5 failures the account is locked for 15 minutes.";

fn aad(name: &str) -> Vec<u8> {
    format!("admin:{name}").into_bytes()
}

fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

fn hash_password(password: &str) -> Result<String> {
    let salt_bytes = latchkey_crypto::random_bytes(16).map_err(internal)?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(internal)?;
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(internal)?
        .to_string())
}

/// A hash of a password nobody knows, with the same parameters: what an unknown name or a
/// locked account is checked against, so their answer takes as long as a real one.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = latchkey_crypto::random_bytes(24).unwrap_or_default();
        hash_password(&latchkey_crypto::base32_encode(&random)).unwrap_or_default()
    })
}

fn password_matches(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

fn info(a: &AdminRow, now: i64) -> AdminInfo {
    AdminInfo {
        name: a.name.clone(),
        created_at: a.created_at,
        last_signin_at: a.last_signin_at,
        locked_until: (a.locked_until > now).then_some(a.locked_until),
    }
}

impl Engine {
    /// Runs Argon2 work on the blocking pool, at most [`argon2_at_once`] at a time.
    async fn argon2<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R> {
        let _permit = self.argon2_permits.acquire().await.map_err(internal)?;
        tokio::task::spawn_blocking(f).await.map_err(internal)
    }

    /// `POST /v1/admin/admins` and `latchkey admin add`: the answer carries the TOTP secret,
    /// the only time it leaves the server.
    pub async fn admin_add(&self, actor: &Actor, req: &AdminCreate) -> Result<AdminCreated> {
        validate_user_name(&req.name)?;
        let pw = req.password.expose();
        let chars = pw.chars().count();
        if chars < MIN_PASSWORD {
            return Err(EngineError::Invalid(format!(
                "the password must be at least {MIN_PASSWORD} characters"
            )));
        }
        if pw.len() > MAX_PASSWORD {
            return Err(EngineError::Invalid(format!(
                "the password must be at most {MAX_PASSWORD} bytes"
            )));
        }
        let password = Zeroizing::new(pw.to_string());
        let password_hash = self.argon2(move || hash_password(&password)).await??;
        let secret = Zeroizing::new(latchkey_crypto::random_bytes(20).map_err(internal)?);
        let sealed = self
            .master
            .seal(&secret, &aad(&req.name))
            .map_err(internal)?;
        let row = AdminRow {
            name: req.name.clone(),
            password_hash,
            totp_sealed: B64.encode(sealed),
            totp_last_step: 0,
            failures: 0,
            locked_until: 0,
            created_at: now(),
            last_signin_at: None,
        };
        self.store.admin_insert(&row).await?;
        self.audit(
            actor,
            "admin.add",
            None,
            None,
            "ok",
            format!("web admin {}", row.name),
        )
        .await;
        let uri = OtpAuthUri {
            kind: TokenKind::Totp,
            issuer: format!("{} console", self.cfg.issuer),
            account: row.name.clone(),
            secret: secret.clone(),
            algorithm: TOTP.algorithm,
            digits: TOTP.digits,
            period: TOTP.period,
            counter: 0,
        };
        Ok(AdminCreated {
            name: row.name,
            otpauth_uri: uri.to_uri(),
            secret: latchkey_crypto::base32_encode(&secret),
        })
    }

    pub async fn admin_list(&self) -> Result<Vec<AdminInfo>> {
        let now = now();
        Ok(self
            .store
            .admin_list()
            .await?
            .iter()
            .map(|a| info(a, now))
            .collect())
    }

    /// Removes an admin and ends their sessions. The last one may go too: the bootstrap API
    /// key (`admin.token`) still reaches the CLI, which can add another (docs/decisions.md).
    pub async fn admin_remove(&self, actor: &Actor, name: &str) -> Result<()> {
        if !self.store.admin_delete(name).await? {
            return Err(EngineError::NotFound(format!("admin {name:?} not found")));
        }
        self.audit(
            actor,
            "admin.remove",
            None,
            None,
            "ok",
            format!("web admin {name}"),
        )
        .await;
        Ok(())
    }

    /// One sign-in: name, password and TOTP code together. See the module's comment for the
    /// lockout and the timing.
    pub async fn admin_signin(
        &self,
        name: &str,
        password: &Secret,
        code: &Secret,
        ip: &str,
    ) -> Result<AdminSignIn> {
        let now = now();
        let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        let password = Zeroizing::new(
            password
                .expose()
                .chars()
                .take(MAX_PASSWORD)
                .collect::<String>(),
        );
        let row = match self
            .store
            .admin_attempt(name, now, MAX_FAILURES, LOCK_SECS)
            .await?
        {
            Attempt::Counted(row) => row,
            other => {
                // The same Argon2 work as a real check, then the same answer.
                self.argon2(move || password_matches(dummy_hash(), &password))
                    .await?;
                let why = match other {
                    Attempt::Locked(_) => "account locked",
                    _ => "no such admin",
                };
                self.audit(
                    &Actor::Anonymous,
                    "admin.signin",
                    None,
                    None,
                    "refused",
                    format!("{shown} from {ip}: {why}"),
                )
                .await;
                return Ok(AdminSignIn::Refused);
            }
        };
        let phc = row.password_hash.clone();
        let password_ok = self
            .argon2(move || password_matches(&phc, &password))
            .await?;
        let step = self.admin_totp_step(&row, code, now)?;
        let why = match (password_ok, step) {
            (true, Some(step)) => {
                let step = i64::try_from(step).unwrap_or(i64::MAX);
                if self.store.admin_signed_in(&row.name, step, now).await? {
                    self.audit(
                        &Actor::WebAdmin(row.name.clone()),
                        "admin.signin",
                        None,
                        None,
                        "ok",
                        format!("from {ip}"),
                    )
                    .await;
                    return Ok(AdminSignIn::Ok);
                }
                "code already used"
            }
            (false, _) => "wrong password",
            (true, None) => "wrong or already used code",
        };
        let locked = if row.failures >= MAX_FAILURES {
            "; locked for 15 minutes"
        } else {
            ""
        };
        self.audit(
            &Actor::Anonymous,
            "admin.signin",
            None,
            None,
            "refused",
            format!(
                "{shown} from {ip}: {why} (failure {} of {MAX_FAILURES}{locked})",
                row.failures
            ),
        )
        .await;
        Ok(AdminSignIn::Refused)
    }

    /// The TOTP step `code` matches for this admin, later than the last one used.
    fn admin_totp_step(&self, row: &AdminRow, code: &Secret, now: i64) -> Result<Option<u64>> {
        let sealed = B64
            .decode(&row.totp_sealed)
            .map_err(|e| EngineError::Internal(format!("admin TOTP secret: {e}")))?;
        let secret = self
            .master
            .open(&sealed, &aad(&row.name))
            .map_err(internal)?;
        Ok(latchkey_crypto::otp::verify_totp(
            &secret,
            code.expose(),
            u64::try_from(now).unwrap_or(0),
            TOTP,
            self.cfg.totp_window,
            Some(u64::try_from(row.totp_last_step).unwrap_or(0)),
        ))
    }
}

impl Engine {
    /// `POST /v1/admin/admins/{name}/unlock` and `latchkey admin unlock`: clears the
    /// admin's failures and lock.
    pub async fn admin_unlock(&self, actor: &Actor, name: &str) -> Result<AdminInfo> {
        if !self.store.admin_unlock(name).await? {
            return Err(EngineError::NotFound(format!("admin {name:?} not found")));
        }
        self.audit(
            actor,
            "admin.unlock",
            None,
            None,
            "ok",
            format!("web admin {name}: lockout reset"),
        )
        .await;
        let now = now();
        self.store
            .admin_list()
            .await?
            .iter()
            .find(|a| a.name == name)
            .map(|a| info(a, now))
            .ok_or_else(|| EngineError::NotFound(format!("admin {name:?} not found")))
    }

    /// The console's overview figures (users, tokens by kind, machines seen in the last
    /// day, failed authentications in the last hour, machines holding offline bundles).
    pub async fn admin_overview(&self) -> Result<crate::store::OverviewRow> {
        Ok(self.store.overview(now()).await?)
    }
}
