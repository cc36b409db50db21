//! The offline path: the one place where "no server answered" leads, and the offline
//! steps that follow. The offline store decides each answer against the signed bundle; the
//! outcomes it decides go to the engine's recorder with the step (`Login::recorded`).

use super::{Login, LoginEngine, Progress, Server, UNREACHABLE, fail};
use crate::offline::{Attempt, Hw, HwNext, Verdict};
use latchkey_proto::agent::Step;

impl Login {
    pub(super) async fn unreachable<S: Server>(
        &mut self,
        engine: &LoginEngine<S>,
        why: &str,
    ) -> Step {
        // The one place where "no server answered" is decided: the offline flow (a signed
        // bundle of this user's public keys), never a password-only pass. A definite answer
        // (deny, disabled, locked, 4xx) and a local error never come here.
        tracing::warn!(user = %self.req.user, client_id = %self.req.client_id, error = why, "no MFA server answered: offline login");
        let Some(store) = engine.offline.as_deref() else {
            return self.finish(fail(UNREACHABLE));
        };
        // From here the offline store decides; its outcomes are recorded as it decides them.
        self.online = false;
        let attempt = store.attempt();
        let step = self.offline_begin(&attempt).await;
        self.offline_outcomes.extend(attempt.take_outcomes());
        step
    }

    async fn offline_begin(&mut self, offline: &Attempt<'_>) -> Step {
        // A card or a security key first (as online), else the token app's QR challenge.
        let module = self.smartcard_module.as_deref();
        let (user, client_id) = (self.req.user.as_str(), self.req.client_id.as_str());
        match offline
            .begin_hw(user, client_id, &self.fido2_settings, module)
            .await
        {
            Hw::Key(k, step) => {
                self.progress = Progress::OfflineKey(k);
                return step;
            }
            Hw::Card(c, step) => {
                self.progress = Progress::OfflineCard(c);
                return step;
            }
            Hw::Fail(reason) => return self.finish(fail(reason)),
            Hw::Qr => {}
        }
        match offline.begin(user, client_id) {
            Ok(challenge) => {
                let step = Step::Qr {
                    payload: challenge.payload.clone(),
                    text: challenge.text.clone(),
                    copy: None,
                };
                self.progress = Progress::Offline {
                    challenge,
                    prompted: false,
                };
                step
            }
            Err(crate::offline::Refused(reason)) => self.finish(fail(reason)),
        }
    }

    pub(super) async fn offline_answer<S: Server>(
        &mut self,
        engine: &LoginEngine<S>,
        text: &str,
    ) -> Step {
        let Progress::Offline {
            challenge,
            prompted: true,
        } = &self.progress
        else {
            return self.finish(fail("Login refused: protocol error (unexpected answer)"));
        };
        let verdict = match engine.offline.as_deref() {
            Some(store) => {
                let attempt = store.attempt();
                let v = attempt.answer(challenge, text);
                self.offline_outcomes.extend(attempt.take_outcomes());
                v
            }
            None => Verdict::Failed(UNREACHABLE.into()),
        };
        self.verdict(verdict)
    }

    fn verdict(&mut self, v: Verdict) -> Step {
        match v {
            Verdict::Passed(message) => self.finish(Step::Success { message }),
            Verdict::Failed(reason) => self.finish(fail(reason)),
        }
    }

    /// An answer or Continue in an offline security-key or smartcard step.
    pub(super) async fn offline_hw<S: Server>(
        &mut self,
        engine: &LoginEngine<S>,
        text: Option<&str>,
    ) -> Step {
        let Some(store) = engine.offline.as_deref() else {
            return self.finish(fail(UNREACHABLE));
        };
        let offline = store.attempt();
        let next = match (self.progress.clone(), text) {
            (Progress::OfflineKey(mut k), Some(pin)) => {
                let next = offline.key_pin(&mut k, pin);
                self.progress = Progress::OfflineKey(k);
                next
            }
            (Progress::OfflineKey(k), None) => HwNext::Done(offline.key_continue(&k).await),
            (Progress::OfflineCard(mut c), Some(pin)) => {
                let next = offline.card_answer(&mut c, pin).await;
                self.progress = Progress::OfflineCard(c);
                next
            }
            (Progress::OfflineCard(c), None) => return c.prompt(),
            _ => return self.finish(fail("Login refused: protocol error (unexpected step)")),
        };
        self.offline_outcomes.extend(offline.take_outcomes());
        match next {
            HwNext::Step(step) => step,
            HwNext::Done(v) => self.verdict(v),
        }
    }
}
