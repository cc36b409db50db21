//! The login conversation with the agent, as the tile's Submit drives it. Nothing here
//! decides: the agent's `Success` is the only way to a credential, everything else (an
//! error, a broken pipe, an unexpected reply) ends without one.
//!
//! A tile has one code field, so a conversation pauses whenever the agent asks again: after
//! a wrong code (the agent says why in an `Info`, then prompts again), after showing an
//! offline QR challenge (the person needs to see it before typing), at an offer to enrol a
//! token (the "Enroll token" link answers it) and after an enrolment's QR code (the person
//! scans it; the next Submit carries the first code). The pipe stays open and the next
//! Submit (or the link) answers the waiting step.

use latchkey_proto::agent::{
    AGENT_PROTOCOL_VERSION, AgentReply, AgentRequest, FirstFactor, Step, blocking,
};
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
    /// The agent waits for another code: show `text` (and the QR, if any: `None` keeps what
    /// is shown) and let the person type it.
    NeedCode { text: String, qr: Option<Shown> },
    /// The user has no token and may enrol one now: show `text`, the "Enroll token" link
    /// (it calls [`Flow::enrol`]) and `skip` when set (a Submit with an empty code skips).
    Enroll { text: String, skip: Option<String> },
}

/// A QR code for the tile image. The payload may be secret (an enrolment's otpauth URI
/// carries the TOTP seed, `copy` the same seed as text), so neither prints in `Debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub payload: Secret,
    /// What to show as text besides the QR (the agent's `copy`).
    pub copy: Option<Secret>,
}

/// Who is logging in and in what context, as the tile and the registry give them; checked
/// against the agent protocol's validators only when a login starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begin {
    pub user: String,
    pub service: String,
    pub client_id: String,
    /// The password typed on the tile, for the agent to check before it lets the server
    /// offer enrolment (`None`: no enrolment at this tile). Part of the login's identity: a
    /// changed password starts a new login, so an enrolment always follows the password
    /// that was checked.
    pub enroll: Option<FirstFactor>,
}

/// The step a paused conversation waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// A prompt: the next Submit answers it with the code.
    Prompt,
    /// An enrolment offer: the link continues (enrol), a Submit answers it (an empty code
    /// skips when grace logins remain).
    Enroll,
    /// An enrolment's QR code was shown: the next Submit continues, its code answers the
    /// prompt that follows (the first code from the app).
    Qr,
}

struct Conversation {
    pipe: Box<dyn Pipe + Send>,
    begin: Begin,
    at: At,
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
            let (req, pending) = match conv.at {
                At::Prompt | At::Enroll => (
                    AgentRequest::Answer {
                        text: Secret::from(code),
                    },
                    None,
                ),
                At::Qr => (AgentRequest::Continue, Some(code)),
            };
            let enrolling = conv.at == At::Enroll;
            // An error: the agent forgot the login (idle timeout, restart): start it again.
            if let Ok(reply) = exchange(&mut conv.pipe, &req) {
                return self.walk(conv, reply, pending, enrolling, show);
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
            enroll: begin.enroll.clone(),
        };
        match exchange(&mut pipe, &req) {
            Ok(reply) => {
                let conv = Conversation {
                    pipe,
                    begin: begin.clone(),
                    at: At::Prompt,
                };
                self.walk(conv, reply, Some(code), false, show)
            }
            Err(e) => Outcome::Failure { reason: e },
        }
    }

    /// Is the paused conversation an enrolment offer (the "Enroll token" link applies)?
    pub fn offers_enrolment(&self) -> bool {
        self.paused.as_ref().is_some_and(|c| c.at == At::Enroll)
    }

    /// The "Enroll token" link: accepts the paused offer (`Continue`: the first method) and
    /// stops once the enrolment's QR code is out, for the person to scan it. `None` when no
    /// offer is paused (a stale click): nothing is sent.
    pub fn enrol(&mut self, show: &mut dyn FnMut(&str)) -> Option<Outcome> {
        let mut conv = self.paused.take_if(|c| c.at == At::Enroll)?;
        Some(match exchange(&mut conv.pipe, &AgentRequest::Continue) {
            Ok(reply) => self.walk(conv, reply, None, true, show),
            Err(e) => Outcome::Failure { reason: e },
        })
    }

    /// Follows the agent's steps. `code` is the typed code not yet given to a prompt;
    /// `enrolling`: an offer was just accepted, so the walk pauses after the enrolment's QR
    /// code (the person must scan it first; for the token app, what follows waits for the
    /// registration and must not run before the picture was seen).
    fn walk(
        &mut self,
        mut conv: Conversation,
        mut reply: AgentReply,
        code: Option<&str>,
        enrolling: bool,
        show: &mut dyn FnMut(&str),
    ) -> Outcome {
        let mut code = code;
        let mut text: Option<String> = None;
        let mut qr: Option<Shown> = None;
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
                AgentReply::Step(Step::Qr {
                    payload,
                    text: t,
                    copy,
                }) => {
                    let shown = Shown {
                        payload: Secret::from(payload),
                        copy: copy.map(Secret::from),
                    };
                    // The text is the instruction and a terminal drawing of the QR; the tile
                    // draws the QR as its image, so only the instruction is shown.
                    let t = t.lines().next().unwrap_or_default().to_string();
                    if enrolling {
                        conv.at = At::Qr;
                        self.paused = Some(conv);
                        return Outcome::NeedCode {
                            text: t,
                            qr: Some(shown),
                        };
                    }
                    qr = Some(shown);
                    text = Some(t);
                    // The code typed before the QR was shown cannot answer it.
                    code = None;
                    AgentRequest::Continue
                }
                AgentReply::Step(Step::Enroll { text: t, skip, .. }) => {
                    // Whatever was typed before the offer is not a choice of method.
                    conv.at = At::Enroll;
                    self.paused = Some(conv);
                    return Outcome::Enroll { text: t, skip };
                }
                AgentReply::Step(Step::Prompt { label, .. }) => match code.take() {
                    Some(c) => AgentRequest::Answer {
                        text: Secret::from(c),
                    },
                    None => {
                        let text = text.unwrap_or(label);
                        conv.at = At::Prompt;
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
