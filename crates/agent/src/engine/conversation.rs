//! The online conversation: a login's start, its code and push steps, and where each
//! answer of the shell leads. The security key's and the smartcard's steps are in
//! `fido2/flow.rs` and `smartcard/login.rs`; the offline path in `offline.rs`.

use super::settle::{mfa_passed, push_passed};
use super::{Login, LoginEngine, Outcome, Progress, Server, fail, fido2_flow};
use crate::smartcard::login as card;
use latchkey_proto::Method;
use latchkey_proto::agent::Step;
use latchkey_proto::app::PushStartResult;
use latchkey_proto::login::{LoginStart, LoginStartResult, LoginStepResult};
use std::time::{Duration, Instant};

impl Login {
    pub(super) async fn begin_step<S: Server>(&mut self, engine: &LoginEngine<S>) -> Step {
        if self.progress != Progress::Idle {
            return self.finish(fail("Login refused: protocol error (Begin twice)"));
        }
        let req = LoginStart {
            user: self.req.user.clone(),
            client_id: self.req.client_id.clone(),
            rhost: self.req.rhost.clone(),
            tty: self.req.tty.clone(),
            enroll: self.req.enroll,
        };
        let reply = engine.server.login_start(&req).await;
        // A login start decides no second factor: a bundle never rides on it.
        match engine.settle(&req.user, reply, |_| false).await {
            Outcome::Answer(LoginStartResult::Allow { message }) => {
                self.finish(Step::Success { message })
            }
            Outcome::Answer(LoginStartResult::Deny { reason }) => self.finish(fail(reason)),
            Outcome::Answer(LoginStartResult::Enroll {
                pending_id,
                methods,
                message,
                expires_in,
                grace_left,
            }) => self.enroll_offered(
                pending_id.into_string(),
                methods,
                &message,
                expires_in,
                grace_left,
            ),
            Outcome::Answer(LoginStartResult::Challenge {
                tx,
                message,
                methods,
                fido2,
                smartcard,
                ..
            }) => {
                let tx = tx.into_string();
                self.fido2 = fido2.filter(|_| methods.contains(&Method::Fido2));
                let push = methods.contains(&Method::Push);
                if let Some(req) = smartcard.filter(|_| methods.contains(&Method::Smartcard)) {
                    let others = methods.contains(&Method::Otp) || push || self.fido2.is_some();
                    let fallback = others.then(|| (message.clone(), push));
                    let module = self.smartcard_module.as_deref();
                    match card::begin(module, &tx, &req, fallback).await {
                        card::Begin::Ask(c, step) => {
                            self.progress = Progress::Card(c);
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
                self.progress = Progress::AwaitCode {
                    tx,
                    label: message.clone(),
                    push,
                };
                Step::Prompt {
                    label: message,
                    echo: false,
                }
            }
            Outcome::Unreachable(why) => self.unreachable(engine, &why).await,
            Outcome::Refused { code, message } => self.refused(&code, &message),
        }
    }

    pub(super) async fn answer_step<S: Server>(
        &mut self,
        engine: &LoginEngine<S>,
        text: &str,
    ) -> Step {
        if matches!(self.progress, Progress::Offline { .. }) {
            return self.offline_answer(engine, text).await;
        }
        if matches!(self.progress, Progress::Enroll(_)) {
            return self.enroll_answer(engine, text).await;
        }
        if matches!(
            self.progress,
            Progress::OfflineKey(_) | Progress::OfflineCard(_)
        ) {
            return self.offline_hw(engine, Some(text)).await;
        }
        if let Progress::Fido2 { tx, flow } = self.progress.clone() {
            return self.fido2_answer(tx, flow, text).await;
        }
        if let Progress::Card(mut c) = self.progress.clone() {
            return match card::answer(&mut c, engine, &self.req.user, text).await {
                card::Next::Step(step) => {
                    self.progress = Progress::Card(c);
                    step
                }
                card::Next::Fallback => {
                    let (label, push) = c.fallback.clone().unwrap_or_default();
                    self.progress = Progress::AwaitCode {
                        tx: c.tx.clone(),
                        label: label.clone(),
                        push,
                    };
                    Step::Prompt { label, echo: false }
                }
                card::Next::Done(step) => self.finish(step),
                card::Next::Unreachable(why) => self.unreachable(engine, &why).await,
                card::Next::Refused { code, message } => self.refused(&code, &message),
            };
        }
        let Progress::AwaitCode { tx, label, push } = self.progress.clone() else {
            return self.finish(fail("Login refused: protocol error (unexpected answer)"));
        };
        if self.fido2.is_some() && fido2_flow::picks_key(text) {
            return self.fido2_start(tx, Some((label, push))).await;
        }
        if push && text.trim().eq_ignore_ascii_case("push") {
            return self.send_push(engine, tx).await;
        }
        if text.trim().is_empty() {
            if push {
                return self.send_push(engine, tx).await;
            }
            self.progress = Progress::InfoThenPrompt { tx, label, push };
            return Step::Info {
                text: "No code typed.".into(),
            };
        }
        self.method = Some(Method::Otp);
        let reply = engine.server.login_otp(&tx, &self.req.user, text).await;
        match engine.settle(&self.req.user, reply, mfa_passed).await {
            Outcome::Answer(LoginStepResult::Success { message }) => {
                self.finish(Step::Success { message })
            }
            Outcome::Answer(LoginStepResult::Deny { reason }) => self.finish(fail(reason)),
            Outcome::Answer(LoginStepResult::Retry { message, .. }) => {
                self.progress = Progress::InfoThenPrompt { tx, label, push };
                Step::Info { text: message }
            }
            Outcome::Answer(LoginStepResult::Pending { .. }) => self.finish(fail(
                "Login refused: protocol error (pending answer to a code)",
            )),
            Outcome::Unreachable(why) => self.unreachable(engine, &why).await,
            Outcome::Refused { code, message } => self.refused(&code, &message),
        }
    }

    pub(super) async fn send_push<S: Server>(
        &mut self,
        engine: &LoginEngine<S>,
        tx: String,
    ) -> Step {
        self.method = Some(Method::Push);
        let reply = engine.server.push_start(&tx, &self.req.user).await;
        match engine.settle(&self.req.user, reply, push_passed).await {
            Outcome::Answer(PushStartResult::Started(p)) => {
                // A little past the push's own expiry: the server answers "expired" itself.
                let until = Instant::now() + Duration::from_secs(p.expires_in + 5);
                self.progress = Progress::AwaitPush { tx, until };
                Step::Wait { text: p.message }
            }
            Outcome::Answer(PushStartResult::Step(LoginStepResult::Deny { reason })) => {
                self.finish(fail(reason))
            }
            Outcome::Answer(PushStartResult::Step(other)) => self.finish(fail(format!(
                "Login refused: unexpected answer to a push ({other:?})"
            ))),
            Outcome::Unreachable(why) => self.unreachable(engine, &why).await,
            Outcome::Refused { code, message } => self.refused(&code, &message),
        }
    }

    async fn wait_push<S: Server>(
        &mut self,
        engine: &LoginEngine<S>,
        tx: String,
        until: Instant,
    ) -> Step {
        while Instant::now() < until {
            let reply = engine.server.push_wait(&tx, &self.req.user).await;
            match engine.settle(&self.req.user, reply, mfa_passed).await {
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
                Outcome::Unreachable(why) => return self.unreachable(engine, &why).await,
                Outcome::Refused { code, message } => return self.refused(&code, &message),
            }
        }
        self.finish(fail("Push expired: nobody answered in time"))
    }

    pub(super) async fn continue_step<S: Server>(&mut self, engine: &LoginEngine<S>) -> Step {
        match self.progress.clone() {
            Progress::InfoThenPrompt { tx, label, push } => {
                self.progress = Progress::AwaitCode {
                    tx,
                    label: label.clone(),
                    push,
                };
                Step::Prompt { label, echo: false }
            }
            Progress::AwaitPush { tx, until } => self.wait_push(engine, tx, until).await,
            Progress::Offline {
                challenge,
                prompted: false,
            } => {
                self.progress = Progress::Offline {
                    challenge,
                    prompted: true,
                };
                Step::Prompt {
                    label: crate::offline::CODE_LABEL.into(),
                    echo: false,
                }
            }
            Progress::Fido2 { tx, flow } => self.fido2_continue(engine, tx, flow).await,
            Progress::Enroll(_) => self.enroll_continue(engine).await,
            Progress::Card(c) => c.prompt(),
            Progress::OfflineKey(_) | Progress::OfflineCard(_) => {
                self.offline_hw(engine, None).await
            }
            _ => self.finish(fail("Login refused: protocol error (unexpected continue)")),
        }
    }
}
