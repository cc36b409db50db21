//! Offline login: the signed bundles the servers hand out, kept in the state database, and
//! the token-app QR challenge used when no server answers. See docs/offline.md.
//!
//! Nothing here is secret: a bundle holds public keys only, and a challenge's code is drawn
//! at random per login and kept in memory for that one conversation.

mod challenge;
mod db;
mod hw;

#[cfg(test)]
pub(crate) mod tests;

pub use challenge::{CODE_LABEL, OfflineChallenge, PROMPT_TEXT, Refused, Verdict};
pub use db::StoredBundle;
pub use hw::{Hw, HwNext, OfflineCard, OfflineKey};

use crate::agent_db::AgentDb;
use crate::config::AgentConfig;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use challenge::no_bundle;
use latchkey_proto::offline::{Bundle, OfflineAttachment, SignedBundle};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// The agent's clock. Production reads the system clock; the offset exists so end-to-end
/// tests (which run the agent in-process) can move an agent's time. Only Rust code holding
/// the `Arc` can change it: no configuration, variable or socket request reaches it.
#[derive(Debug, Default)]
pub struct Clock {
    offset: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> i64 {
        let sys = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        sys.saturating_add(self.offset.load(Ordering::Relaxed))
    }

    /// [`Clock::now`] in milliseconds, for the events of offline outcomes.
    pub fn now_ms(&self) -> i64 {
        let sys = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        sys.saturating_add(self.offset.load(Ordering::Relaxed).saturating_mul(1000))
    }

    /// Moves this agent's clock by `secs` from the system clock (tests).
    pub fn set_offset(&self, secs: i64) {
        self.offset.store(secs, Ordering::Relaxed);
    }
}

/// Why a bundle from a server was not stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("bundle signature is not valid for the pinned server key")]
    Signature,
    #[error("bundle is malformed: {0}")]
    Malformed(String),
    #[error("bundle is for user {0:?}")]
    OtherUser(String),
    #[error("bundle is for machine {0:?}")]
    OtherMachine(String),
    #[error("bundle expired")]
    Expired,
}

/// How far the guard may lag behind a server's time before an answer moves it up (one write
/// a minute at most for a machine whose clock is right).
const GUARD_BEHIND_SECS: i64 = 60;

pub struct Offline {
    pub(crate) db: Arc<AgentDb>,
    pub(crate) machine_id: String,
    server_key: Vec<u8>,
    pub(crate) host: String,
    pub(crate) clock: Arc<Clock>,
    pub(crate) digits: u8,
    pub(crate) ttl_secs: i64,
    pub(crate) skew_secs: i64,
}

impl Offline {
    pub fn new(cfg: &AgentConfig, db: Arc<AgentDb>, clock: Arc<Clock>) -> crate::Result<Offline> {
        let server_key = B64
            .decode(cfg.server_signing_key.trim())
            .ok()
            .filter(|k| k.len() == 32)
            .ok_or_else(|| {
                crate::AgentError::Config(
                    "server_signing_key in agent.toml is not a base64 Ed25519 public key".into(),
                )
            })?;
        // The challenge carries the short host name (at most 64 bytes).
        let full = crate::sys::hostname();
        let mut host: String = full.split('.').next().unwrap_or("host").to_string();
        while host.len() > 64 {
            host.pop();
        }
        Ok(Offline {
            db,
            machine_id: cfg.machine_id.clone(),
            server_key,
            host,
            clock,
            digits: cfg.offline.code_digits,
            ttl_secs: cfg.offline.challenge_ttl.as_secs() as i64,
            skew_secs: cfg.offline.clock_skew.as_secs() as i64,
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Moves the clock guard on to this machine's time (at start and every minute): time
    /// that passed while the agent ran counts even with no offline attempt, so a clock set
    /// back later cannot revive a bundle that expired meanwhile.
    pub fn tick(&self) {
        if let Err(e) = self.db.observe_time(self.now()) {
            tracing::error!(error = %e, "clock guard not updated");
        }
    }

    /// Runs [`Offline::tick`] every minute until shutdown.
    pub async fn run_guard(
        self: std::sync::Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = every.tick() => {}
            }
            let o = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || o.tick()).await {
                tracing::error!(error = %e, "clock guard task failed");
            }
        }
    }

    /// False when the guard needs re-anchoring to `server_unix` ([`Offline::anchor`]).
    pub fn guard_fits(&self, server_unix: i64) -> bool {
        self.db
            .guard_fits(server_unix, self.skew_secs, GUARD_BEHIND_SECS)
    }

    /// Re-anchors the clock guard to a server's time (the `Date` of an answer over the
    /// pinned connection). After an offline attempt with the clock set days ahead, the guard
    /// stood in the future and refused every offline login until that date; the next online
    /// contact now brings it back to the server's time.
    pub fn anchor(&self, server_unix: i64) {
        match self
            .db
            .anchor_time(server_unix, self.skew_secs, GUARD_BEHIND_SECS)
        {
            Ok(Some(prev)) if prev > server_unix + self.skew_secs => {
                let local = self.now();
                tracing::warn!(
                    guard = prev,
                    server = server_unix,
                    local,
                    "clock guard was ahead of the server's time: re-anchored to the server"
                );
                if (local - server_unix).abs() > self.skew_secs {
                    tracing::warn!(
                        off_by_secs = local - server_unix,
                        "this machine's clock differs from the server's: correct it"
                    );
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "clock guard not re-anchored"),
        }
    }

    /// Checks a signed bundle: the pinned server key signed exactly these bytes, and they
    /// describe a bundle for `user` on this machine. Expiry is checked by the caller (a
    /// stored bundle past `not_after` still says when it expired).
    pub fn verify(&self, signed: &SignedBundle, user: &str) -> Result<Bundle, BundleError> {
        let payload = B64
            .decode(signed.payload.as_bytes())
            .map_err(|_| BundleError::Malformed("payload is not base64".into()))?;
        let sig = B64
            .decode(signed.signature.as_bytes())
            .map_err(|_| BundleError::Malformed("signature is not base64".into()))?;
        if !latchkey_crypto::bundle::verify(&self.server_key, &payload, &sig) {
            return Err(BundleError::Signature);
        }
        let b = Bundle::decode(&payload).map_err(|e| BundleError::Malformed(e.0))?;
        if b.user != user {
            return Err(BundleError::OtherUser(b.user));
        }
        if b.machine_id != self.machine_id {
            return Err(BundleError::OtherMachine(b.machine_id));
        }
        Ok(b)
    }

    /// Verifies and stores a bundle a server sent for `user`, replacing the previous one.
    pub fn store(&self, signed: &SignedBundle, user: &str) -> Result<Bundle, BundleError> {
        let b = self.verify(signed, user)?;
        let now = self.now();
        if b.not_after <= now {
            return Err(BundleError::Expired);
        }
        // An online contact is a good moment to advance the clock guard.
        if let Err(e) = self.db.observe_time(now) {
            tracing::error!(error = %e, "clock guard not updated");
        }
        self.db
            .bundle_put(user, &signed.payload, &signed.signature, b.not_after, now)
            .map_err(|e| BundleError::Malformed(format!("not stored: {e}")))?;
        Ok(b)
    }

    /// Applies what rode along a server answer about `user`: wipes first, then stores.
    pub fn absorb(&self, user: &str, att: &OfflineAttachment) {
        for u in &att.offline_forget {
            match self.db.bundle_delete(u) {
                Ok(true) => {
                    tracing::info!(user = %u, "offline bundle wiped at the server's request")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(user = %u, error = %e, "offline bundle could not be wiped")
                }
            }
        }
        if let Some(signed) = &att.offline_bundle {
            match self.store(signed, user) {
                Ok(b) => tracing::info!(
                    user,
                    bundle = %b.id,
                    not_after = b.not_after,
                    client_ids = %b.client_ids.join(","),
                    "offline bundle stored"
                ),
                Err(e) => tracing::error!(user, error = %e, "offline bundle refused"),
            }
        }
    }

    /// Starts one offline login's view of the store.
    pub fn attempt(&self) -> Attempt<'_> {
        Attempt {
            store: self,
            outcomes: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn wipe(&self, user: &str, why: &str) {
        match self.db.bundle_delete(user) {
            Ok(_) => tracing::warn!(user, why, "offline bundle wiped"),
            Err(e) => tracing::error!(user, error = %e, "offline bundle could not be wiped"),
        }
    }
}

/// One outcome an offline login decided (a refusal, a wrong answer, a pass), for the login
/// engine to record as an authentication event. The store records nothing itself: every
/// outcome, online or offline, reaches the spool through the engine's one recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineOutcome {
    /// `app_qr`, `fido2` or `smartcard`.
    pub method: String,
    pub success: bool,
    /// What happened, for the event (not the text shown to the person).
    pub reason: String,
    /// When, on the agent's clock (the one the offline checks used).
    pub at_ms: i64,
}

/// One offline login's calls on the store, collecting the outcomes they decide. A wrong
/// smartcard PIN is an outcome without the end of the login, so outcomes are collected per
/// call rather than read off the final step.
pub struct Attempt<'a> {
    store: &'a Offline,
    outcomes: Mutex<Vec<OfflineOutcome>>,
}

impl std::ops::Deref for Attempt<'_> {
    type Target = Offline;
    fn deref(&self) -> &Offline {
        self.store
    }
}

impl Attempt<'_> {
    /// The outcomes decided so far (each handed out once).
    pub fn take_outcomes(&self) -> Vec<OfflineOutcome> {
        match self.outcomes.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    pub(crate) fn record(&self, user: &str, client_id: &str, outcome: &str, reason: &str) {
        self.record_m(user, client_id, "app_qr", outcome, reason)
    }

    /// Notes an offline outcome of `method` (`app_qr`, `fido2`, `smartcard`).
    pub(crate) fn record_m(
        &self,
        user: &str,
        client_id: &str,
        method: &str,
        outcome: &str,
        reason: &str,
    ) {
        tracing::info!(user, client_id, method, outcome, reason, "offline event");
        let o = OfflineOutcome {
            method: method.to_string(),
            success: outcome == "success",
            reason: reason.to_string(),
            at_ms: self.clock.now_ms(),
        };
        match self.outcomes.lock() {
            Ok(mut v) => v.push(o),
            Err(poisoned) => poisoned.into_inner().push(o),
        }
    }

    /// The agent's own state database failed during an offline login: refused, logged and
    /// recorded (`what` says which step).
    pub(crate) fn state_db_failed(
        &self,
        user: &str,
        client_id: &str,
        method: &str,
        what: &str,
        error: &dyn std::fmt::Display,
    ) -> Verdict {
        tracing::error!(error = %error, "{what}");
        self.record_m(user, client_id, method, "failure", "state database error");
        Verdict::Failed("Offline login refused: the agent's state database failed".into())
    }

    /// Counts one passed offline login of `method` against the bundle `payload` (at most
    /// `max`), records it, and wipes the bundle after the last one.
    pub(crate) fn count_login(
        &self,
        user: &str,
        client_id: &str,
        payload: &str,
        max: u32,
        method: &str,
    ) -> Verdict {
        match self.db.bundle_count_login(user, payload, max) {
            Ok(Some(n)) => {
                tracing::info!(user, client_id, method, n, max, "offline login: MFA passed");
                self.record_m(
                    user,
                    client_id,
                    method,
                    "success",
                    &format!("offline login {n} of {max}"),
                );
                if n >= max {
                    self.wipe(user, "last offline login used");
                    Verdict::Passed(
                        "Offline login accepted; that was the last one: log in once while connected"
                            .into(),
                    )
                } else {
                    Verdict::Passed(format!("Offline login accepted ({} left)", max - n))
                }
            }
            Ok(None) => {
                self.record_m(user, client_id, method, "failure", "bundle gone or used up");
                Verdict::Failed(no_bundle(user))
            }
            Err(e) => {
                self.state_db_failed(user, client_id, method, "offline login not counted", &e)
            }
        }
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time, for messages.
pub fn utc_date(unix: i64) -> String {
    // Civil-from-days (H. Hinnant's algorithm).
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_796_342_400), "2026-12-04");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
    }
}
