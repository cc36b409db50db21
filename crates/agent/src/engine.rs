//! The login engine: one conversation per shell connection. It turns server answers into
//! steps and decides, in one place, what happens when no server answers. Every path ends in
//! `Success` only after a server said so.

use crate::upstream::{Outcome, Upstream};
use latchkey_proto::agent::Step;
use latchkey_proto::login::{LoginStart, LoginStartResult, LoginStepResult};

pub const UNREACHABLE: &str = "MFA server unreachable; no offline login prepared on this machine";

/// Where a conversation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    /// A code prompt is out for this transaction.
    AwaitCode {
        tx: String,
        label: String,
    },
    /// An Info step is out; the prompt follows on Continue.
    InfoThenPrompt {
        tx: String,
        label: String,
    },
    Done,
}

pub struct Login {
    user: String,
    client_id: String,
    state: State,
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
        }
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
            _ => format!("Login refused: {message}"),
        };
        self.finish(fail(reason))
    }

    fn unreachable(&mut self, why: &str) -> Step {
        // The one place where "no server answered" is decided. Offline login (bundles) will
        // branch here; until then the answer is a refusal, never a password-only pass.
        tracing::warn!(user = %self.user, client_id = %self.client_id, error = why, "no MFA server answered");
        self.finish(fail(UNREACHABLE))
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
            Outcome::Answer(LoginStartResult::Challenge { tx, message, .. }) => {
                self.state = State::AwaitCode {
                    tx,
                    label: message.clone(),
                };
                Step::Prompt {
                    label: message,
                    echo: false,
                }
            }
            Outcome::Unreachable(why) => self.unreachable(&why),
            Outcome::Refused { code, message } => self.refused(&code, &message),
        }
    }

    pub async fn answer(&mut self, up: &Upstream, text: &str) -> Step {
        let State::AwaitCode { tx, label } = self.state.clone() else {
            return self.finish(fail("Login refused: protocol error (unexpected answer)"));
        };
        match up.login_otp(&tx, &self.user, text).await {
            Outcome::Answer(LoginStepResult::Success { message }) => {
                self.finish(Step::Success { message })
            }
            Outcome::Answer(LoginStepResult::Deny { reason }) => self.finish(fail(reason)),
            Outcome::Answer(LoginStepResult::Retry { message, .. }) => {
                self.state = State::InfoThenPrompt { tx, label };
                Step::Info { text: message }
            }
            Outcome::Unreachable(why) => self.unreachable(&why),
            Outcome::Refused { code, message } => self.refused(&code, &message),
        }
    }

    pub fn on_continue(&mut self) -> Step {
        match self.state.clone() {
            State::InfoThenPrompt { tx, label } => {
                self.state = State::AwaitCode {
                    tx,
                    label: label.clone(),
                };
                Step::Prompt { label, echo: false }
            }
            _ => self.finish(fail("Login refused: protocol error (unexpected continue)")),
        }
    }
}
