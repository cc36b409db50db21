//! The login engine: one conversation per shell connection. It turns server answers into
//! steps and decides, in one place each, what happens when no server answers
//! ([`Login::unreachable`]), what the offline store keeps from an answer
//! ([`LoginEngine::settle`]) and which authentication outcomes are recorded
//! ([`Login::recorded`]). Every path ends in `Success` only after a server, or the offline
//! store's check of a signed bundle, said so.

use crate::events::{AuthRecord, Events};
use crate::offline::{Offline, OfflineOutcome};
use crate::smartcard::login::CardLogin;
use latchkey_proto::ErrorCode;
use latchkey_proto::agent::{AgentReply, Step};
use latchkey_proto::{ClientId, Method, UserName};
use std::sync::Arc;
use std::time::Instant;

mod conversation;
mod enrol;
// The FIDO2 part of the conversation lives with the rest of the FIDO2 code.
#[path = "../fido2/flow.rs"]
mod fido2_flow;
mod offline;
pub mod server;
pub(crate) mod settle;
#[cfg(test)]
mod tests;

pub use server::{Answered, LOCAL_ERROR, Outcome, Reply, Server};

pub const UNREACHABLE: &str = "MFA server unreachable; no offline login prepared on this machine";

/// What the engine holds for every conversation: the servers, the offline store, and the
/// one recorder every authentication outcome goes through.
pub struct LoginEngine<S> {
    server: S,
    offline: Option<Arc<Offline>>,
    events: Arc<Events>,
}

impl<S: Server> LoginEngine<S> {
    pub fn new(server: S, offline: Option<Arc<Offline>>, events: Arc<Events>) -> LoginEngine<S> {
        LoginEngine {
            server,
            offline,
            events,
        }
    }

    pub fn server(&self) -> &S {
        &self.server
    }

    /// The offline store, shared (for tasks of its own such as the clock guard's tick).
    pub fn offline_shared(&self) -> Option<Arc<Offline>> {
        self.offline.clone()
    }

    /// PAM account management. A definite answer from a server decides; when no server
    /// answers the account is allowed (authentication already enforced MFA or refused, and
    /// refusing here would block every offline login) and the fact is logged.
    pub async fn account_check(&self, user: &UserName, client_id: &ClientId) -> AgentReply {
        // The answer to an account check is no second factor: its bundle is never stored.
        match self
            .settle(
                user,
                self.server.account_check(user, client_id).await,
                |_| false,
            )
            .await
        {
            Outcome::Answer(s) => {
                if !s.allowed {
                    tracing::warn!(%user, %client_id, message = %s.message, "account refused by the server");
                }
                AgentReply::Account {
                    allowed: s.allowed,
                    message: s.message,
                }
            }
            Outcome::Unreachable(why) => {
                tracing::warn!(%user, %client_id, error = %why, "account check: no server answered; allowing");
                AgentReply::Account {
                    allowed: true,
                    message: String::new(),
                }
            }
            Outcome::Refused { code, message } => {
                tracing::error!(%user, %client_id, code, %message, "account check refused by the server");
                AgentReply::Account {
                    allowed: false,
                    message: format!("Login refused: {message}"),
                }
            }
        }
    }
}

/// Where a conversation stands: which step is out and what answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Progress {
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
    /// A user without a token is enrolling one (`enrol.rs`).
    Enroll(Box<(enrol::Pending, enrol::Enrolling)>),
    Done,
}

/// Who logs in, where from, and through which context: what a shell's `Begin` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    pub user: UserName,
    pub client_id: ClientId,
    /// The PAM service (or the shell's name for itself), for the event.
    pub service: Option<String>,
    pub rhost: Option<String>,
    pub tty: Option<String>,
    /// The shell may enrol a user without a token (its first factor was verified:
    /// `first_factor.rs`).
    pub enroll: bool,
}

pub struct Login {
    req: LoginRequest,
    progress: Progress,
    /// The challenge's FIDO2 request, when it offered a security key.
    fido2: Option<latchkey_proto::fido2::Fido2Request>,
    fido2_settings: crate::fido2::Settings,
    smartcard_module: Option<std::path::PathBuf>,
    /// The method that was tried last, for the authentication event.
    method: Option<Method>,
    /// False once the offline path decides: its outcomes are recorded as the offline store
    /// decides them (`offline_outcomes`), not from the final step.
    online: bool,
    /// Outcomes the offline store decided during the current call, not yet recorded.
    offline_outcomes: Vec<OfflineOutcome>,
    /// The login finished without a second factor, on a grace login of inline enrolment.
    grace: bool,
}

fn fail(reason: impl Into<String>) -> Step {
    Step::Failure {
        reason: reason.into(),
    }
}

impl Login {
    pub fn new(req: LoginRequest) -> Login {
        Login {
            req,
            progress: Progress::Idle,
            fido2: None,
            fido2_settings: Default::default(),
            smartcard_module: None,
            method: None,
            online: true,
            offline_outcomes: Vec::new(),
            grace: false,
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

    pub fn is_done(&self) -> bool {
        self.progress == Progress::Done
    }

    /// Starts the login (the shell's `Begin`).
    pub async fn begin<S: Server>(&mut self, engine: &LoginEngine<S>) -> Step {
        let step = self.begin_step(engine).await;
        self.recorded(engine, step).await
    }

    /// The shell's answer to a prompt.
    pub async fn answer<S: Server>(&mut self, engine: &LoginEngine<S>, text: &str) -> Step {
        let step = self.answer_step(engine, text).await;
        self.recorded(engine, step).await
    }

    /// The shell's Continue after an Info, Wait or Qr step.
    pub async fn on_continue<S: Server>(&mut self, engine: &LoginEngine<S>) -> Step {
        let step = self.continue_step(engine).await;
        self.recorded(engine, step).await
    }

    /// The one place authentication outcomes are recorded: what the offline store decided
    /// during this call, and the final step of a login the servers decided. Returns once
    /// they are on disk (a spool failure is logged, never turned into a login decision).
    async fn recorded<S>(&mut self, engine: &LoginEngine<S>, step: Step) -> Step {
        let mut records: Vec<AuthRecord> = std::mem::take(&mut self.offline_outcomes)
            .into_iter()
            .map(|o| AuthRecord {
                success: o.success,
                online: false,
                method: Some(o.method),
                reason: Some(o.reason).filter(|r| !r.is_empty()),
                at_ms: Some(o.at_ms),
                ..self.record_base()
            })
            .collect();
        if self.online && step.is_final() {
            records.push(AuthRecord {
                success: matches!(step, Step::Success { .. }),
                online: true,
                method: Some(if self.grace {
                    "grace".to_string()
                } else {
                    self.method.map_or("none", |m| m.as_str()).to_string()
                }),
                reason: match &step {
                    Step::Failure { reason } => Some(reason.clone()),
                    _ => None,
                },
                at_ms: None,
                ..self.record_base()
            });
        }
        if !records.is_empty() {
            engine.events.auth_all(&records).await;
        }
        step
    }

    fn record_base(&self) -> AuthRecord {
        AuthRecord {
            user: self.req.user.to_string(),
            client_id: self.req.client_id.to_string(),
            service: self.req.service.clone(),
            rhost: self.req.rhost.clone(),
            tty: self.req.tty.clone(),
            success: false,
            online: true,
            method: None,
            reason: None,
            at_ms: None,
        }
    }

    fn finish(&mut self, step: Step) -> Step {
        match &step {
            Step::Success { .. } => {
                tracing::info!(user = %self.req.user, client_id = %self.req.client_id, "login: MFA passed")
            }
            Step::Failure { reason } => {
                tracing::warn!(user = %self.req.user, client_id = %self.req.client_id, %reason, "login: MFA failed")
            }
            _ => {}
        }
        self.progress = Progress::Done;
        step
    }

    fn refused(&mut self, code: &str, message: &str) -> Step {
        tracing::error!(user = %self.req.user, client_id = %self.req.client_id, code, message, "server refused the login request");
        let reason = match (code, ErrorCode::parse(code)) {
            (_, Some(ErrorCode::Unauthorized | ErrorCode::Forbidden)) => {
                "Login refused: this machine is not accepted by the MFA server".to_string()
            }
            (LOCAL_ERROR, _) => format!(
                "Login refused: this machine is short of resources ({message}); try again in a moment"
            ),
            _ => format!("Login refused: {message}"),
        };
        self.finish(fail(reason))
    }
}
