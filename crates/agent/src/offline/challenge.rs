//! One offline login with the token app: draw a code, seal it to the app's X25519 key, show
//! it as a QR code, compare the typed answer. Every refusal is one line for the person and a
//! recorded event; every path ends in an explicit verdict.

use super::{Attempt, utc_date};
use crate::AgentError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::challenge::{self, Context};
use latchkey_proto::offline::SignedBundle;
use zeroize::Zeroizing;

pub const PROMPT_TEXT: &str =
    "Offline: scan the QR code with the latchkey token app and type the code";
pub const CODE_LABEL: &str = "Offline code:";

/// A challenge out for one conversation. The code stays in memory only, for this login.
#[derive(Clone, PartialEq, Eq)]
pub struct OfflineChallenge {
    user: String,
    client_id: String,
    code: Zeroizing<String>,
    expires_at: i64,
    /// The bundle payload the challenge was made from: counters only apply to that bundle.
    bundle_payload: String,
    max_logins: u32,
    max_failures: u32,
    /// `LK1:…` text.
    pub payload: String,
    /// The message and the QR picture.
    pub text: String,
}

impl std::fmt::Debug for OfflineChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineChallenge")
            .field("user", &self.user)
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// How an offline answer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed(String),
    Failed(String),
}

/// An offline login refused before any answer: the line for the person (the reason for
/// the event is recorded where the refusal is decided).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// A stored bundle that passed [`Attempt::check`].
pub(crate) struct Checked {
    pub stored: super::StoredBundle,
    pub bundle: latchkey_proto::offline::Bundle,
    pub now: i64,
}

pub(crate) fn no_bundle(user: &str) -> String {
    format!("No offline login is prepared for {user} on this machine: log in once while connected")
}

/// A uniform random code of `digits` digits (rejection sampling: no modulo bias).
fn random_code(digits: u8) -> crate::Result<u32> {
    let limit = 10u32.pow(u32::from(digits));
    let zone = u32::MAX - u32::MAX % limit;
    loop {
        let b = latchkey_crypto::random_bytes(4).map_err(|e| AgentError::Local(e.to_string()))?;
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if n < zone {
            return Ok(n % limit);
        }
    }
}

impl Attempt<'_> {
    /// Refuses (recording why) with `reason` for the person.
    fn refuse(
        &self,
        user: &str,
        client_id: &str,
        reason: String,
        log: &str,
    ) -> Result<OfflineChallenge, Refused> {
        self.refuse_with(user, client_id, reason, log)
    }

    /// [`Offline::refuse`] for checks that return no challenge.
    pub(crate) fn refuse_with<T>(
        &self,
        user: &str,
        client_id: &str,
        reason: String,
        log: &str,
    ) -> Result<T, Refused> {
        tracing::warn!(user, client_id, why = log, "offline login refused");
        self.record(user, client_id, "failure", log);
        Err(Refused(reason))
    }

    /// The checks every offline login starts with: a stored bundle that verifies, a clock
    /// that did not go back, not expired, the client_id covered, limits not reached.
    pub(crate) fn check(&self, user: &str, client_id: &str) -> Result<Checked, Refused> {
        let stored = match self.db.bundle_get(user) {
            Ok(Some(s)) => s,
            Ok(None) => return self.refuse_with(user, client_id, no_bundle(user), "no bundle"),
            Err(e) => {
                tracing::error!(error = %e, "state database unreadable");
                return self.refuse_with(
                    user,
                    client_id,
                    "Offline login refused: the agent's state database is unreadable".into(),
                    "state database error",
                );
            }
        };
        let signed = SignedBundle {
            payload: stored.payload.clone(),
            signature: stored.signature.clone(),
        };
        let bundle = match self.verify(&signed, user) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(user, error = %e, "stored offline bundle does not verify");
                self.wipe(user, "stored bundle does not verify");
                return self.refuse_with(
                    user,
                    client_id,
                    format!("The offline login data for {user} on this machine is not valid: log in once while connected"),
                    &format!("stored bundle invalid: {e}"),
                );
            }
        };
        let now = self.now();
        let latest = match self.db.observe_time(now) {
            Ok(l) => l.unwrap_or(now),
            Err(e) => {
                tracing::error!(error = %e, "clock guard unreadable");
                return self.refuse_with(
                    user,
                    client_id,
                    "Offline login refused: the agent's state database is unreadable".into(),
                    "clock guard error",
                );
            }
        };
        if latest > now + self.skew_secs || bundle.issued_at > now + self.skew_secs {
            return self.refuse_with(
                user,
                client_id,
                "Offline login refused: the clock of this machine went back; correct the time or connect to the network".into(),
                &format!("clock went back: now {now}, latest seen {latest}, bundle issued {}", bundle.issued_at),
            );
        }
        // Expiry against the guard as well: time the agent saw pass counts even if the
        // clock was set back since (within the skew, or the check above refused).
        if now.max(latest) >= bundle.not_after {
            return self.refuse_with(
                user,
                client_id,
                format!(
                    "Offline login for {user} expired on {}",
                    utc_date(bundle.not_after)
                ),
                "bundle expired",
            );
        }
        if !bundle.client_ids.iter().any(|c| c == client_id) {
            return self.refuse_with(
                user,
                client_id,
                format!("Offline login is not allowed for {client_id} on this machine"),
                "client_id not in bundle",
            );
        }
        if stored.logins_used >= bundle.max_logins {
            self.wipe(user, "offline logins used up");
            return self.refuse_with(user, client_id, no_bundle(user), "offline logins used up");
        }
        if stored.failures >= bundle.max_failures {
            self.wipe(user, "too many offline failures");
            return self.refuse_with(
                user,
                client_id,
                no_bundle(user),
                "too many offline failures",
            );
        }
        Ok(Checked {
            stored,
            bundle,
            now,
        })
    }

    /// Starts an offline login, or says why there is none.
    pub fn begin(&self, user: &str, client_id: &str) -> Result<OfflineChallenge, Refused> {
        let Checked {
            stored,
            bundle,
            now,
        } = self.check(user, client_id)?;
        if !bundle.allows(client_id, latchkey_proto::Method::Push) {
            return self.refuse(
                user,
                client_id,
                "Offline login refused: insert your security key or smartcard".into(),
                "token app not allowed offline for this client_id",
            );
        }
        let Some(app) = bundle.apps.first() else {
            return self.refuse(user, client_id, no_bundle(user), "bundle has no token app");
        };
        let Some(app_key) = B64
            .decode(app.x25519_public.as_bytes())
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
        else {
            return self.refuse(user, client_id, no_bundle(user), "token app key malformed");
        };
        let made = (|| -> crate::Result<(u32, String)> {
            let local = |e: String| AgentError::Local(e);
            let code = random_code(self.digits)?;
            let nonce: [u8; 8] = latchkey_crypto::random_bytes(8)
                .map_err(|e| local(e.to_string()))?
                .try_into()
                .map_err(|_| local("nonce".into()))?;
            let ctx = Context {
                user,
                host: &self.host,
                client_id,
                expires_at: u32::try_from(now + self.ttl_secs).unwrap_or(u32::MAX),
                nonce,
            };
            let c = challenge::seal(&app_key, &ctx, self.digits, code)
                .map_err(|e| local(e.to_string()))?;
            Ok((
                code,
                challenge::to_text(&c).map_err(|e| local(e.to_string()))?,
            ))
        })();
        let (code, payload) = match made {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "offline challenge not made");
                return self.refuse(
                    user,
                    client_id,
                    "Offline login refused: the challenge could not be made".into(),
                    "challenge error",
                );
            }
        };
        let picture = match crate::qr::render(&payload) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "offline QR code not drawn");
                return self.refuse(
                    user,
                    client_id,
                    "Offline login refused: the QR code could not be drawn".into(),
                    "qr error",
                );
            }
        };
        tracing::info!(user, client_id, app = %app.id, "offline challenge shown");
        Ok(OfflineChallenge {
            user: user.to_string(),
            client_id: client_id.to_string(),
            code: Zeroizing::new(format!("{code:0width$}", width = usize::from(self.digits))),
            expires_at: now + self.ttl_secs,
            bundle_payload: stored.payload,
            max_logins: bundle.max_logins,
            max_failures: bundle.max_failures,
            payload,
            text: format!("{PROMPT_TEXT}\n{picture}"),
        })
    }

    /// Decides one answer to `ch` (single use: the caller ends the conversation).
    pub fn answer(&self, ch: &OfflineChallenge, text: &str) -> Verdict {
        let (user, cid) = (ch.user.as_str(), ch.client_id.as_str());
        if self.now() > ch.expires_at {
            self.record(user, cid, "failure", "challenge expired");
            return Verdict::Failed("Offline code expired: start the login again".into());
        }
        let typed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if latchkey_crypto::ct_eq(typed.as_bytes(), ch.code.as_bytes()) {
            return self.count_login(user, cid, &ch.bundle_payload, ch.max_logins, "app_qr");
        }
        let max = ch.max_failures;
        let counted = self.db.bundle_count_failure(user, &ch.bundle_payload);
        if let Ok(f) = &counted {
            let reason = match f {
                Some(f) if *f >= max => format!("wrong code; {f} failures: bundle wiped"),
                Some(f) => format!("wrong code ({f} of {max})"),
                None => "wrong code; bundle gone".to_string(),
            };
            self.record(user, cid, "failure", &reason);
        }
        match counted {
            Ok(Some(f)) if f >= max => {
                self.wipe(user, "too many offline failures");
                Verdict::Failed(format!(
                    "Offline code rejected: too many wrong codes, offline login for {user} is disabled; log in once while connected"
                ))
            }
            Ok(Some(f)) => {
                let left = max - f;
                Verdict::Failed(format!(
                    "Offline code rejected ({left} more wrong code{} disable offline login)",
                    if left == 1 { "" } else { "s" }
                ))
            }
            Ok(None) => Verdict::Failed("Offline code rejected".into()),
            Err(e) => {
                tracing::error!(error = %e, "offline failure not counted");
                self.record(user, cid, "failure", "wrong code; state database error");
                Verdict::Failed("Offline code rejected".into())
            }
        }
    }
}
