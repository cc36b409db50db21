//! The login conversation with the agent, as the tile's Submit drives it. Nothing here
//! decides: the agent's `Success` is the only way to a credential, everything else (an
//! error, a broken pipe, an unexpected reply) ends without one.
//!
//! A tile has one code field, so a conversation pauses whenever the agent asks again: after
//! a wrong code (the agent says why in an `Info`, then prompts again) or after showing an
//! offline QR challenge (the person needs to see it before typing). The pipe stays open and
//! the next Submit answers the waiting prompt.

use latchkey_proto::agent::{AGENT_PROTOCOL_VERSION, AgentReply, AgentRequest, Step, blocking};
use latchkey_proto::{ClientId, Secret, UserName};
use std::io::{Read, Write};

/// Most steps one Submit may walk through before the shell gives up (a confused agent).
const MAX_STEPS: usize = 32;

pub trait Pipe: Read + Write {}
impl<T: Read + Write> Pipe for T {}

/// What a Submit ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// MFA passed: serialize the Windows credential.
    Success { message: String },
    /// MFA failed; `reason` is for the person.
    Failure { reason: String },
    /// The agent waits for another code: show `text` (and the QR, if any) and let the person
    /// type it.
    NeedCode { text: String, qr: Option<String> },
}

/// Who is logging in and in what context, as the tile and the registry give them; checked
/// against the agent protocol's validators only when a login starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begin {
    pub user: String,
    pub service: String,
    pub client_id: String,
}

struct Conversation {
    pipe: Box<dyn Pipe + Send>,
    begin: Begin,
}

#[derive(Default)]
pub struct Flow {
    /// A conversation paused at a prompt.
    paused: Option<Conversation>,
}

fn exchange(pipe: &mut Box<dyn Pipe + Send>, req: &AgentRequest) -> Result<AgentReply, String> {
    blocking::write(pipe, req).map_err(|e| format!("agent connection: {e}"))?;
    blocking::read(pipe).map_err(|e| format!("agent connection: {e}"))
}

impl Flow {
    pub fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    /// Forgets any paused conversation (the tile was deselected, the user name changed).
    pub fn reset(&mut self) {
        self.paused = None;
    }

    /// One Submit: answers a paused prompt of the same login with `code`, or starts a new
    /// login and answers its first prompt with `code` (empty: the agent may send a push).
    ///
    /// `show` gets each text the agent wants shown while the Submit is still running (an
    /// `Info`, or a push's `Wait` with the number to match on the phone), before the shell
    /// continues.
    pub fn submit<C>(
        &mut self,
        connect: C,
        begin: &Begin,
        code: &str,
        show: &mut dyn FnMut(&str),
    ) -> Outcome
    where
        C: Fn() -> Result<Box<dyn Pipe + Send>, String>,
    {
        if let Some(conv) = self.paused.take()
            && conv.begin == *begin
        {
            let mut conv = conv;
            let req = AgentRequest::Answer {
                text: Secret::from(code),
            };
            // An error: the agent forgot the login (idle timeout, restart): start it again.
            if let Ok(reply) = exchange(&mut conv.pipe, &req) {
                return self.walk(conv, reply, None, show);
            }
        }
        // A name or context the agent would refuse is refused here, before the pipe is
        // opened, with the validator's own sentence.
        let (user, client_id) = match (
            UserName::parse(&begin.user),
            ClientId::parse(&begin.client_id),
        ) {
            (Ok(u), Ok(c)) => (u, c),
            (Err(e), _) | (_, Err(e)) => {
                return Outcome::Failure {
                    reason: format!("Login refused: {e}"),
                };
            }
        };
        let mut pipe = match connect() {
            Ok(p) => p,
            Err(e) => {
                return Outcome::Failure {
                    reason: format!("The latchkey agent is not available ({e})"),
                };
            }
        };
        let req = AgentRequest::Begin {
            version: AGENT_PROTOCOL_VERSION,
            user,
            service: begin.service.clone(),
            client_id: Some(client_id),
            rhost: None,
            tty: None,
        };
        match exchange(&mut pipe, &req) {
            Ok(reply) => {
                let conv = Conversation {
                    pipe,
                    begin: begin.clone(),
                };
                self.walk(conv, reply, Some(code), show)
            }
            Err(e) => Outcome::Failure { reason: e },
        }
    }

    /// Follows the agent's steps. `code` is the typed code not yet given to a prompt.
    fn walk(
        &mut self,
        mut conv: Conversation,
        mut reply: AgentReply,
        code: Option<&str>,
        show: &mut dyn FnMut(&str),
    ) -> Outcome {
        let mut code = code;
        let mut text: Option<String> = None;
        let mut qr: Option<String> = None;
        for _ in 0..MAX_STEPS {
            let req = match reply {
                AgentReply::Step(Step::Success { message }) => return Outcome::Success { message },
                AgentReply::Step(Step::Failure { reason }) => return Outcome::Failure { reason },
                AgentReply::Error { message } => {
                    return Outcome::Failure {
                        reason: format!("The latchkey agent refused: {message}"),
                    };
                }
                AgentReply::Step(Step::Info { text: t })
                | AgentReply::Step(Step::Wait { text: t }) => {
                    show(&t);
                    text = Some(t);
                    AgentRequest::Continue
                }
                AgentReply::Step(Step::Qr { payload, text: t }) => {
                    qr = Some(payload);
                    // The text is the instruction and a terminal drawing of the QR; the tile
                    // draws the QR as its image, so only the instruction is shown.
                    text = Some(t.lines().next().unwrap_or_default().to_string());
                    // The code typed before the QR was shown cannot answer it.
                    code = None;
                    AgentRequest::Continue
                }
                AgentReply::Step(Step::Prompt { label, .. }) => match code.take() {
                    Some(c) => AgentRequest::Answer {
                        text: Secret::from(c),
                    },
                    None => {
                        let text = text.unwrap_or(label);
                        self.paused = Some(conv);
                        return Outcome::NeedCode { text, qr };
                    }
                },
                other => {
                    return Outcome::Failure {
                        reason: format!(
                            "The latchkey agent answered out of turn ({})",
                            kind(&other)
                        ),
                    };
                }
            };
            reply = match exchange(&mut conv.pipe, &req) {
                Ok(r) => r,
                Err(e) => return Outcome::Failure { reason: e },
            };
        }
        Outcome::Failure {
            reason: "The latchkey agent asked too many questions".into(),
        }
    }
}

fn kind(r: &AgentReply) -> &'static str {
    match r {
        AgentReply::Step(_) => "step",
        AgentReply::Account { .. } => "account",
        AgentReply::Ack => "ack",
        AgentReply::Status(_) => "status",
        AgentReply::Error { .. } => "error",
    }
}
