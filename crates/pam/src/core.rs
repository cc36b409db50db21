//! What the module does, over any [`PamHandle`]: libpam in production (`ffi`), a fake in
//! the unit tests. Every function returns an explicit verdict; only `Step::Success` from the
//! agent yields `PamCode::Success` in `authenticate`.

use crate::agent::AgentConn;
use crate::code::{Flags, Item, LogLevel, MsgStyle, PamCode};
use crate::error::{Error, Result};
use crate::options::Options;
use latchkey_proto::UserName;
use latchkey_proto::agent::{
    AGENT_PROTOCOL_VERSION, AgentReply, AgentRequest, FirstFactor, SessionEvent, Step,
};
use std::borrow::Cow;
use std::time::Duration;
use zeroize::Zeroizing;

/// The PAM services the logic needs; implemented over `pam_handle_t` in `ffi`.
pub trait PamHandle {
    /// The user being authenticated (`pam_get_user`, which may prompt for it). Fails when
    /// unset, empty or not UTF-8.
    fn user(&self) -> Result<String>;
    /// A string item; `None` when unset, empty or not UTF-8.
    fn item(&self, item: Item) -> Option<String>;
    /// A variable of the PAM environment (`pam_getenv`).
    fn getenv(&self, name: &str) -> Option<String>;
    /// Sends one message on the application's conversation. Prompts return the answer
    /// (`None`: the application gave none); other styles return `None`.
    fn converse(&self, style: MsgStyle, text: &str) -> Result<Option<Zeroizing<String>>>;
    /// Logs to syslog (LOG_AUTHPRIV). Never called with an answer.
    fn syslog(&self, level: LogLevel, msg: &str);
}

/// Shown when the agent cannot be asked: the person should know MFA, not their password,
/// is what failed.
const MSG_UNAVAILABLE: &str = "MFA agent unavailable: login refused";
const MSG_MISCONFIGURED: &str = "MFA module misconfigured: login refused";
const MSG_NO_USER: &str = "MFA cannot tell who is logging in: login refused";
const MSG_FAILED: &str = "MFA failed: login refused";
const MSG_ACCOUNT_DENIED: &str = "Login not allowed now by the MFA policy";

/// A well-behaved agent ends a login in a handful of steps; a loop is a bug, not a login.
const MAX_STEPS: usize = 64;
/// Session reports are fire-and-forget; a slow agent must not hold up a login or logout.
const SESSION_TIMEOUT: Duration = Duration::from_secs(5);

/// `pam_sm_authenticate`.
pub fn authenticate<S: AsRef<str>>(h: &dyn PamHandle, flags: Flags, args: &[S]) -> PamCode {
    let opts = match Options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            h.syslog(LogLevel::Err, &format!("login refused: {e}"));
            tell(h, flags, MSG_MISCONFIGURED);
            return PamCode::ServiceErr;
        }
    };
    let user = match user_name(h) {
        Ok(u) => u,
        Err(e) => {
            h.syslog(LogLevel::Err, &format!("login refused: {e}"));
            tell(h, flags, MSG_NO_USER);
            return PamCode::AuthErr;
        }
    };
    match run_login(h, &opts, &user) {
        Ok(Verdict::Passed { message }) => {
            h.syslog(LogLevel::Info, &format!("user {user:?}: MFA passed"));
            if opts.debug && !message.is_empty() {
                h.syslog(LogLevel::Debug, &format!("success message: {message}"));
            }
            PamCode::Success
        }
        Ok(Verdict::Failed { reason }) => {
            h.syslog(
                LogLevel::Notice,
                &format!("user {user:?}: MFA failed: {reason}"),
            );
            tell(h, flags, nonempty(&reason, MSG_FAILED));
            PamCode::AuthErr
        }
        Err(e) => {
            h.syslog(LogLevel::Err, &format!("user {user:?}: login refused: {e}"));
            match &e {
                Error::Refused(message) => tell(h, flags, message),
                // The conversation itself is broken (or the person aborted): nothing to show.
                Error::Conversation(_) => {}
                _ => tell(h, flags, MSG_UNAVAILABLE),
            }
            PamCode::AuthErr
        }
    }
}

enum Verdict {
    Passed { message: String },
    Failed { reason: String },
}

fn run_login(h: &dyn PamHandle, opts: &Options, user: &UserName) -> Result<Verdict> {
    let service = h.item(Item::Service).ok_or(Error::Item("PAM_SERVICE"))?;
    let mut agent = AgentConn::connect(&opts.socket, opts.timeout)?;
    let mut reply = agent.call(&AgentRequest::Begin {
        version: AGENT_PROTOCOL_VERSION,
        user: user.clone(),
        service,
        client_id: opts.client_id.clone(),
        rhost: h.item(Item::Rhost),
        tty: h.item(Item::Tty),
        enroll: opts.enroll.then_some(FirstFactor::Verified),
    })?;
    for _ in 0..MAX_STEPS {
        let step = match reply {
            AgentReply::Step(step) => step,
            AgentReply::Error { message } => return Err(Error::Refused(message)),
            other => return Err(unexpected(&other)),
        };
        if opts.debug {
            h.syslog(LogLevel::Debug, &describe(&step));
        }
        reply = match step {
            Step::Success { message } => return Ok(Verdict::Passed { message }),
            Step::Failure { reason } => return Ok(Verdict::Failed { reason }),
            Step::Info { text } | Step::Wait { text } => {
                show(h, &text)?;
                agent.call(&AgentRequest::Continue)?
            }
            Step::Qr {
                payload,
                text,
                copy,
            } => {
                show(h, &text)?;
                show(h, copy.as_deref().unwrap_or(&payload))?;
                agent.call(&AgentRequest::Continue)?
            }
            Step::Enroll {
                text,
                methods,
                label,
                skip,
            } => {
                if methods.len() == 1 && skip.is_none() {
                    // Nothing to choose: go on with the one method (its QR code says what
                    // to do; the offer's line would push it off an 80×24 screen).
                    agent.call(&AgentRequest::Continue)?
                } else {
                    show(h, &text)?;
                    let answer = h
                        .converse(MsgStyle::PromptEchoOn, &printable(&label))?
                        .ok_or_else(|| Error::Conversation("no answer to the prompt".into()))?;
                    agent.answer(answer)?
                }
            }
            Step::Prompt { label, echo } => {
                let style = if echo {
                    MsgStyle::PromptEchoOn
                } else {
                    MsgStyle::PromptEchoOff
                };
                let answer = h
                    .converse(style, &printable(&label))?
                    .ok_or_else(|| Error::Conversation("no answer to the prompt".into()))?;
                agent.answer(answer)?
            }
        };
    }
    Err(Error::Protocol(format!(
        "no verdict after {MAX_STEPS} steps"
    )))
}

/// `pam_sm_acct_mgmt`: the agent says whether this account may log in now (e.g. not
/// locked out after too many failures). Anything but `allowed` is `PAM_PERM_DENIED`.
pub fn acct_mgmt<S: AsRef<str>>(h: &dyn PamHandle, flags: Flags, args: &[S]) -> PamCode {
    let opts = match Options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            h.syslog(LogLevel::Err, &format!("account refused: {e}"));
            tell(h, flags, MSG_MISCONFIGURED);
            return PamCode::ServiceErr;
        }
    };
    let user = match user_name(h) {
        Ok(u) => u,
        Err(e) => {
            h.syslog(LogLevel::Err, &format!("account refused: {e}"));
            tell(h, flags, MSG_NO_USER);
            return PamCode::PermDenied;
        }
    };
    let asked = h
        .item(Item::Service)
        .ok_or(Error::Item("PAM_SERVICE"))
        .and_then(|service| {
            AgentConn::connect(&opts.socket, opts.timeout)?.call(&AgentRequest::AccountCheck {
                user: user.clone(),
                service,
                client_id: opts.client_id.clone(),
            })
        });
    match asked {
        Ok(AgentReply::Account { allowed: true, .. }) => {
            if opts.debug {
                h.syslog(LogLevel::Debug, &format!("user {user:?}: account allowed"));
            }
            PamCode::Success
        }
        Ok(AgentReply::Account {
            allowed: false,
            message,
        }) => {
            h.syslog(
                LogLevel::Notice,
                &format!("user {user:?}: account refused: {message}"),
            );
            tell(h, flags, nonempty(&message, MSG_ACCOUNT_DENIED));
            PamCode::PermDenied
        }
        Ok(AgentReply::Error { message }) => {
            h.syslog(
                LogLevel::Err,
                &format!("user {user:?}: account refused: agent refused: {message}"),
            );
            tell(h, flags, &message);
            PamCode::PermDenied
        }
        Ok(other) => {
            let e = unexpected(&other);
            h.syslog(
                LogLevel::Err,
                &format!("user {user:?}: account refused: {e}"),
            );
            tell(h, flags, MSG_UNAVAILABLE);
            PamCode::PermDenied
        }
        Err(e) => {
            h.syslog(
                LogLevel::Err,
                &format!("user {user:?}: account refused: {e}"),
            );
            tell(h, flags, MSG_UNAVAILABLE);
            PamCode::PermDenied
        }
    }
}

/// `pam_sm_open_session` / `pam_sm_close_session`: reports to the agent. Sessions are
/// reporting only, so every problem is logged and the session goes on (`PAM_SUCCESS`).
pub fn session<S: AsRef<str>>(h: &dyn PamHandle, event: SessionEvent, args: &[S]) -> PamCode {
    let what = match event {
        SessionEvent::Open => "open",
        SessionEvent::Close => "close",
    };
    if let Err(e) = report_session(h, event, args) {
        h.syslog(
            LogLevel::Warning,
            &format!("session {what} not reported to the agent: {e}"),
        );
    }
    PamCode::Success
}

fn report_session<S: AsRef<str>>(h: &dyn PamHandle, event: SessionEvent, args: &[S]) -> Result<()> {
    let opts = Options::parse(args)?;
    let req = AgentRequest::Session {
        event,
        user: user_name(h)?,
        service: h.item(Item::Service).ok_or(Error::Item("PAM_SERVICE"))?,
        tty: h.item(Item::Tty),
        rhost: h.item(Item::Rhost),
        session_id: h.getenv("XDG_SESSION_ID").filter(|s| !s.is_empty()),
        client_id: opts.client_id.clone(),
    };
    let mut agent = AgentConn::connect(&opts.socket, opts.timeout.min(SESSION_TIMEOUT))?;
    match agent.call(&req)? {
        AgentReply::Ack => Ok(()),
        AgentReply::Error { message } => Err(Error::Refused(message)),
        other => Err(unexpected(&other)),
    }
}

/// The user, refused here when the server would refuse the name anyway (the shared
/// validator of `latchkey_proto::UserName`): a name with a space or a `/` never reaches the
/// agent.
fn user_name(h: &dyn PamHandle) -> Result<UserName> {
    UserName::try_from(h.user()?).map_err(|e| Error::User(e.message))
}

/// Shows one line of an agent step (empty text is skipped, not shown as a blank line).
fn show(h: &dyn PamHandle, text: &str) -> Result<()> {
    if !text.is_empty() {
        h.converse(MsgStyle::TextInfo, &printable(text))?;
    }
    Ok(())
}

/// Shows a message of the module's own (a refusal): skipped under `PAM_SILENT`, and a
/// conversation that fails here changes nothing, the verdict is already a refusal.
fn tell(h: &dyn PamHandle, flags: Flags, text: &str) {
    if !flags.silent() {
        let _ = h.converse(MsgStyle::ErrorMsg, &printable(text));
    }
}

fn nonempty<'a>(text: &'a str, otherwise: &'a str) -> &'a str {
    if text.is_empty() { otherwise } else { text }
}

/// Text for the person's terminal: control characters other than newline and tab are
/// dropped, so agent-relayed text cannot move the cursor or retitle the terminal, and no
/// NUL can cut a C string short.
fn printable(text: &str) -> Cow<'_, str> {
    let keep = |c: char| !c.is_control() || c == '\n' || c == '\t';
    if text.chars().all(keep) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().filter(|&c| keep(c)).collect())
    }
}

fn unexpected(reply: &AgentReply) -> Error {
    let kind = match reply {
        AgentReply::Step(_) => "a login step",
        AgentReply::Account { .. } => "an account answer",
        AgentReply::Ack => "an acknowledgement",
        AgentReply::Status(_) => "a status",
        AgentReply::Error { .. } => "an error",
    };
    Error::Protocol(format!("got {kind} out of turn"))
}

/// The step's kind and prompt label for `debug`; never answers, never codes.
fn describe(step: &Step) -> String {
    match step {
        Step::Info { .. } => "agent step: info".into(),
        Step::Qr { .. } => "agent step: qr".into(),
        Step::Enroll { .. } => "agent step: enroll".into(),
        Step::Wait { .. } => "agent step: wait".into(),
        Step::Prompt { label, echo } => format!(
            "agent step: prompt {label:?} (echo {})",
            if *echo { "on" } else { "off" }
        ),
        Step::Success { .. } => "agent step: success".into(),
        Step::Failure { .. } => "agent step: failure".into(),
    }
}
