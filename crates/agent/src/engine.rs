//! The login engine: one conversation per shell connection. It turns server answers into
//! steps and decides, in one place, what happens when no server answers. Every path ends in
//! `Success` only after a server said so.

use crate::smartcard::login::{self as card, CardLogin};
use crate::upstream::{Outcome, Upstream};
use latchkey_proto::Method;
use latchkey_proto::agent::Step;
use latchkey_proto::app::PushStartResult;
use latchkey_proto::login::{LoginStart, LoginStartResult, LoginStepResult};
use std::time::{Duration, Instant};

// The FIDO2 part of the conversation lives with the rest of the FIDO2 code.
#[path = "fido2/flow.rs"]
mod fido2_flow;

pub const UNREACHABLE: &str = "MFA server unreachable; no offline login prepared on this machine";

/// Where a conversation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    /// A code prompt is out for this transaction.
    AwaitCode {
        tx: String,
        label: String,
        push: bool,
    },
    /// An Info step is out; the prompt follows on Continue.
    InfoThenPrompt {
        tx: String,
        label: String,
        push: bool,
    },
    /// A push is out; on Continue the engine waits for its outcome until `until`.
    AwaitPush {
        tx: String,
        until: Instant,
    },
    /// No server answered: an offline QR challenge is out (Qr step, then its prompt).
    Offline {
        challenge: crate::offline::OfflineChallenge,
        prompted: bool,
    },
    /// A security-key step (PIN prompt or "touch your key") is out.
    Fido2 {
        tx: String,
        flow: fido2_flow::Flow,
    },
    /// A smartcard PIN prompt (or a message before it) is out.
    Card(Box<CardLogin>),
    /// No server answered: an offline security-key step is out.
    OfflineKey(Box<crate::offline::OfflineKey>),
    /// No server answered: an offline smartcard PIN prompt (or a message before it) is out.
    OfflineCard(Box<crate::offline::OfflineCard>),
    Done,
}

pub struct Login {
    user: String,
    client_id: String,
    state: State,
    /// The challenge's FIDO2 request, when it offered a security key.
    fido2: Option<latchkey_proto::fido2::Fido2Request>,
    fido2_settings: crate::fido2::Settings,
    smartcard_module: Option<std::path::PathBuf>,
    /// The method that was tried last, for the authentication event.
    method: Option<Method>,
    /// False once the offline path decides (events record which side decided).
    online: bool,
}

fn fail(reason: impl Into<String>) -> Step {
    Step::Failure {
        reason: reason.into(),
    }
}

impl Login {
    pub fn new(user: &str, client_id: &str) -> Login {
        Login {
            user: user.to_string(),
            client_id: client_id.to_string(),
            state: State::Idle,
            fido2: None,
            fido2_settings: Default::default(),
            smartcard_module: None,
            method: None,
            online: true,
        }
    }

    /// Which security keys to use and how long to wait for them.
    pub fn with_fido2(mut self, settings: crate::fido2::Settings) -> Login {
        self.fido2_settings = settings;
        self
    }

    /// The PKCS#11 module used when the server offers a smartcard.
    pub fn with_smartcard_module(mut self, module: Option<std::path::PathBuf>) -> Login {
        self.smartcard_module = module;
        self
    }

    /// What the authentication event records: (user, client_id, method, online).
    pub fn facts(&self) -> (&str, &str, Option<Method>, bool) {
        (&self.user, &self.client_id, self.method, self.online)
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn finish(&mut self, step: Step) -> Step {
        match &step {
            Step::Success { .. } => {
                tracing::info!(user = %self.user, client_id = %self.client_id, "login: MFA passed")
            }
            Step::Failure { reason } => {
                tracing::warn!(user = %self.user, client_id = %self.client_id, %reason, "login: MFA failed")
            }
            _ => {}
        }
        self.state = State::Done;
        step
    }

    fn refused(&mut self, code: &str, message: &str) -> Step {
        tracing::error!(user = %self.user, client_id = %self.client_id, code, message, "server refused the login request");
        let reason = match code {
            "unauthorized" | "forbidden" => {
                "Login refused: this machine is not accepted by the MFA server".to_string()
            }
            crate::upstream::LOCAL_ERROR => format!(
                "Login refused: this machine is short of resources ({message}); try again in a moment"
            ),
            _ => format!("Login refused: {message}"),
        };
        self.finish(fail(reason))
    }

    async fn unreachable(&mut self, up: &Upstream, why: &str) -> Step {
        // The one place where "no server answered" is decided: the offline flow (a signed
        // bundle of this user's public keys), never a password-only pass. A definite answer
        // (deny, disabled, locked, 4xx) never comes here.
        tracing::warn!(user = %self.user, client_id = %self.client_id, error = why, "no MFA server answered: offline login");
        let Some(offline) = up.offline() else {
            return self.finish(fail(UNREACHABLE));
        };
        // From here the offline module decides and records the outcome itself (its
        // offline_events, which the uploader moves into the event spool).
        self.online = false;
        // A card or a security key first (as online), else the token app's QR challenge.
        let module = self.smartcard_module.as_deref();
        match offline
            .begin_hw(&self.user, &self.client_id, &self.fido2_settings, module)
            .await
        {
            crate::offline::Hw::Key(k, step) => {
                self.state = State::OfflineKey(k);
                return step;
            }
            crate::offline::Hw::Card(c, step) => {
                self.state = State::OfflineCard(c);
                return step;
            }
            crate::offline::Hw::Fail(reason) => return self.finish(fail(reason)),
            crate::offline::Hw::Qr => {}
        }
        match offline.begin(&self.user, &self.client_id) {
            Ok(challenge) => {
                let step = Step::Qr {
                    payload: challenge.payload.clone(),
                    text: challenge.text.clone(),
                };
                self.state = State::Offline {
                    challenge,
                    prompted: false,
                };
                step
            }
            Err(reason) => self.finish(fail(reason)),
        }
    }

    fn offline_answer(&mut self, up: &Upstream, text: &str) -> Step {
        let State::Offline {
            challenge,
            prompted: true,
        } = &self.state
        else {
            return self.finish(fail("Login refused: protocol error (unexpected answer)"));
        };
        let verdict = match up.offline() {
            Some(o) => o.answer(challenge, text),
            None => crate::offline::Verdict::Failed(UNREACHABLE.into()),
        };
        match verdict {
            crate::offline::Verdict::Passed(message) => self.finish(Step::Success { message }),
            crate::offline::Verdict::Failed(reason) => self.finish(fail(reason)),
        }
    }

    pub async fn begin(
        &mut self,
        up: &Upstream,
        rhost: Option<String>,
        tty: Option<String>,
    ) -> Step {
        if self.state != State::Idle {
            return self.finish(fail("Login refused: protocol error (Begin twice)"));
        }
        let req = LoginStart {
            user: self.user.clone(),
            client_id: self.client_id.clone(),
            rhost,
            tty,
        };
        match up.login_start(&req).await {
            Outcome::Answer(LoginStartResult::Allow { message }) => {
                self.finish(Step::Success { message })
            }
            Outcome::Answer(LoginStartResult::Deny { reason }) => self.finish(fail(reason)),
            Outcome::Answer(LoginStartResult::Challenge {
                tx,
                message,
                methods,
                fido2,
                smartcard,
                ..
            }) => {
                self.fido2 = fido2.filter(|_| methods.contains(&Method::Fido2));
                let push = methods.contains(&Method::Push);
                if let Some(req) = smartcard.filter(|_| methods.contains(&Method::Smartcard)) {
                    let others = methods.contains(&Method::Otp) || push || self.fido2.is_some();
                    let fallback = others.then(|| (message.clone(), push));
                    let module = self.smartcard_module.as_deref();
                    match card::begin(module, &tx, &req, fallback).await {
                        card::Begin::Ask(c, step) => {
                            self.state = State::Card(c);
                            return step;
                        }
                        card::Begin::Fail(reason) => return self.finish(fail(reason)),
                        card::Begin::Skip => {}
                    }
                }
                let only_key = methods
                    .iter()
                    .all(|m| *m == Method::Fido2 || *m == Method::Smartcard);
                if self.fido2.is_some() && only_key {
                    // The key is the only way left (no card answered): straight to it.
                    return self.fido2_start(tx, None).await;
                }
                self.state = State::AwaitCode {
                    tx,
                    label: message.clone(),
                    push,
                };
                Step::Prompt {
                    label: message,
                    echo: false,
                }
            }
            Outcome::Unreachable(why) => self.unreachable(up, &why).await,
            Outcome::Refused { code, message } => self.refused(&code, &message),
        }
    }

    fn verdict(&mut self, v: crate::offline::Verdict) -> Step {
        match v {
            crate::offline::Verdict::Passed(message) => self.finish(Step::Success { message }),
            crate::offline::Verdict::Failed(reason) => self.finish(fail(reason)),
        }
    }

    /// An answer or Continue in an offline security-key or smartcard step.
    async fn offline_hw(&mut self, up: &Upstream, text: Option<&str>) -> Step {
        let Some(offline) = up.offline() else {
            return self.finish(fail(UNREACHABLE));
        };
        let next = match (self.state.clone(), text) {
            (State::OfflineKey(mut k), Some(pin)) => {
                let next = offline.key_pin(&mut k, pin);
                self.state = State::OfflineKey(k);
                next
            }
            (State::OfflineKey(k), None) => {
                crate::offline::HwNext::Done(offline.key_continue(&k).await)
            }
            (State::OfflineCard(mut c), Some(pin)) => {
                let next = offline.card_answer(&mut c, pin).await;
                self.state = State::OfflineCard(c);
                next
            }
            (State::OfflineCard(c), None) => return c.prompt(),
            _ => return self.finish(fail("Login refused: protocol error (unexpected step)")),
        };
        match next {
            crate::offline::HwNext::Step(step) => step,
            crate::offline::HwNext::Done(v) => self.verdict(v),
        }
    }

    pub async fn answer(&mut self, up: &Upstream, text: &str) -> Step {
        if matches!(self.state, State::Offline { .. }) {
            return self.offline_answer(up, text);
        }
        if matches!(self.state, State::OfflineKey(_) | State::OfflineCard(_)) {
            return self.offline_hw(up, Some(text)).await;
        }
        if let State::Fido2 { tx, flow } = self.state.clone() {
            return self.fido2_answer(tx, flow, text).await;
        }
        if let State::Card(mut c) = self.state.clone() {
            return match card::answer(&mut c, up, &self.user, text).await {
                card::Next::Step(step) => {
                    self.state = State::Card(c);
                    step
                }
                card::Next::Fallback => {
                    let (label, push) = c.fallback.clone().unwrap_or_default();
                    self.state = State::AwaitCode {
                        tx: c.tx.clone(),
                        label: label.clone(),
                        push,
                    };
                    Step::Prompt { label, echo: false }
                }
                card::Next::Done(step) => self.finish(step),
                card::Next::Unreachable(why) => self.unreachable(up, &why).await,
                card::Next::Refused { code, message } => self.refused(&code, &message),
            };
        }
        let State::AwaitCode { tx, label, push } = self.state.clone() else {
            return self.finish(fail("Login refused: protocol error (unexpected answer)"));
        };
        if self.fido2.is_some() && fido2_flow::picks_key(text) {
            return self.fido2_start(tx, Some((label, push))).await;
        }
        if push && text.trim().eq_ignore_ascii_case("push") {
            return self.send_push(up, tx).await;
        }
        if text.trim().is_empty() {
            if push {
                return self.send_push(up, tx).await;
            }
            self.state = State::InfoThenPrompt { tx, label, push };
            return Step::Info {
                text: "No code typed.".into(),
            };
        }
        self.method = Some(Method::Otp);
        match up.login_otp(&tx, &self.user, text).await {
            Outcome::Answer(LoginStepResult::Success { message }) => {
                self.finish(Step::Success { message })
            }
            Outcome::Answer(LoginStepResult::Deny { reason }) => self.finish(fail(reason)),
            Outcome::Answer(LoginStepResult::Retry { message, .. }) => {
                self.state = State::InfoThenPrompt { tx, label, push };
                Step::Info { text: message }
            }
            Outcome::Answer(LoginStepResult::Pending { .. }) => self.finish(fail(
                "Login refused: protocol error (pending answer to a code)",
            )),
            Outcome::Unreachable(why) => self.unreachable(up, &why).await,
            Outcome::Refused { code, message } => self.refused(&code, &message),
        }
    }

    async fn send_push(&mut self, up: &Upstream, tx: String) -> Step {
        self.method = Some(Method::Push);
        match up.push_start(&tx, &self.user).await {
            Outcome::Answer(PushStartResult::Started(p)) => {
                // A little past the push's own expiry: the server answers "expired" itself.
                let until = Instant::now() + Duration::from_secs(p.expires_in + 5);
                self.state = State::AwaitPush { tx, until };
                Step::Wait { text: p.message }
            }
            Outcome::Answer(PushStartResult::Step(LoginStepResult::Deny { reason })) => {
                self.finish(fail(reason))
            }
            Outcome::Answer(PushStartResult::Step(other)) => self.finish(fail(format!(
                "Login refused: unexpected answer to a push ({other:?})"
            ))),
            Outcome::Unreachable(why) => self.unreachable(up, &why).await,
            Outcome::Refused { code, message } => self.refused(&code, &message),
        }
    }

    async fn wait_push(&mut self, up: &Upstream, tx: String, until: Instant) -> Step {
        while Instant::now() < until {
            match up.push_wait(&tx, &self.user).await {
                Outcome::Answer(LoginStepResult::Pending { .. }) => continue,
                Outcome::Answer(LoginStepResult::Success { message }) => {
                    return self.finish(Step::Success { message });
                }
                Outcome::Answer(LoginStepResult::Deny { reason }) => {
                    return self.finish(fail(reason));
                }
                Outcome::Answer(LoginStepResult::Retry { message, .. }) => {
                    return self.finish(fail(message));
                }
                Outcome::Unreachable(why) => return self.unreachable(up, &why).await,
                Outcome::Refused { code, message } => return self.refused(&code, &message),
            }
        }
        self.finish(fail("Push expired: nobody answered in time"))
    }

    pub async fn on_continue(&mut self, up: &Upstream) -> Step {
        match self.state.clone() {
            State::InfoThenPrompt { tx, label, push } => {
                self.state = State::AwaitCode {
                    tx,
                    label: label.clone(),
                    push,
                };
                Step::Prompt { label, echo: false }
            }
            State::AwaitPush { tx, until } => self.wait_push(up, tx, until).await,
            State::Offline {
                challenge,
                prompted: false,
            } => {
                self.state = State::Offline {
                    challenge,
                    prompted: true,
                };
                Step::Prompt {
                    label: crate::offline::CODE_LABEL.into(),
                    echo: false,
                }
            }
            State::Fido2 { tx, flow } => self.fido2_continue(up, tx, flow).await,
            State::Card(c) => c.prompt(),
            State::OfflineKey(_) | State::OfflineCard(_) => self.offline_hw(up, None).await,
            _ => self.finish(fail("Login refused: protocol error (unexpected continue)")),
        }
    }
}
