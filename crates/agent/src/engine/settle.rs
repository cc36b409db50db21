//! What the engine keeps from a server's answer: the offline store's decisions. A forget
//! list wipes whatever answer it rides on; a bundle is stored only with an MFA success (a
//! bundle on any other answer is ignored: holding one is the right to log in offline); the
//! server's time re-anchors the clock guard.

use super::{LoginEngine, Outcome, Reply};
use latchkey_proto::app::PushStartResult;
use latchkey_proto::login::LoginStepResult;

/// Whether a step answer is a passed second factor (the only answer a bundle is kept from).
pub(crate) fn mfa_passed(r: &LoginStepResult) -> bool {
    matches!(r, LoginStepResult::Success { .. })
}

pub(super) fn push_passed(r: &PushStartResult) -> bool {
    matches!(r, PushStartResult::Step(s) if mfa_passed(s))
}

impl<S> LoginEngine<S> {
    /// Applies what rode along `reply` to the offline store and hands on the answer itself.
    pub(crate) async fn settle<T>(
        &self,
        user: &str,
        reply: Reply<T>,
        mfa_success: impl FnOnce(&T) -> bool,
    ) -> Outcome<T> {
        let answered = match reply {
            Outcome::Answer(a) => a,
            Outcome::Unreachable(why) => return Outcome::Unreachable(why),
            Outcome::Refused { code, message } => return Outcome::Refused { code, message },
        };
        let Some(o) = &self.offline else {
            return Outcome::Answer(answered.value);
        };
        let mut att = answered.offline;
        if !mfa_success(&answered.value) && att.offline_bundle.take().is_some() {
            tracing::warn!(
                user,
                "an offline bundle came with an answer that is no MFA success: not stored"
            );
        }
        // Rarely a write: only when the guard left the window around the server's time.
        let anchor = answered.server_time.filter(|&t| !o.guard_fits(t));
        if anchor.is_some() || !att.is_empty() {
            // On the blocking pool: storing a bundle is a signature check and fsync'd
            // writes, which must not hold an async thread that other logins run on.
            let (o, user) = (o.clone(), user.to_string());
            let job = move || {
                if let Some(t) = anchor {
                    o.anchor(t);
                }
                if !att.is_empty() {
                    o.absorb(&user, &att);
                }
            };
            if let Err(e) = tokio::task::spawn_blocking(job).await {
                tracing::error!(error = %e, "offline store task failed; bundle not stored");
            }
        }
        Outcome::Answer(answered.value)
    }

    /// The server's time from an answer outside a login (event upload, session state):
    /// it re-anchors the clock guard as a login's answer would.
    pub async fn note_server_time(&self, server_time: Option<i64>) {
        let Some(o) = &self.offline else { return };
        let Some(t) = server_time.filter(|&t| !o.guard_fits(t)) else {
            return;
        };
        let o = o.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || o.anchor(t)).await {
            tracing::error!(error = %e, "clock guard task failed");
        }
    }
}
