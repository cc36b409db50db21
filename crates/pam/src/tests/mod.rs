//! The module's logic against a fake PAM handle and a scripted agent on a real Unix socket.

mod account_session;
mod authenticate;

use crate::code::{Flags, Item, LogLevel, MsgStyle, PamCode};
use crate::core::PamHandle;
use crate::error::{Error, Result};
use crate::options::{DEFAULT_TIMEOUT, Options};
use crate::{acct_mgmt, authenticate, session};
use latchkey_proto::agent::{AgentReply, AgentRequest, SessionEvent, Step, blocking};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

// ---- fake PAM handle ----

struct FakePam {
    user: Option<String>,
    items: Vec<(Item, String)>,
    env: Vec<(String, String)>,
    /// Answers to prompts in order; none left (or `None`) is a failed conversation.
    answers: RefCell<VecDeque<Option<String>>>,
    seen: RefCell<Vec<(MsgStyle, String)>>,
    logs: RefCell<Vec<(LogLevel, String)>>,
}

impl FakePam {
    fn new(user: &str) -> FakePam {
        FakePam {
            user: Some(user.into()),
            items: vec![(Item::Service, "sudo".into())],
            env: Vec::new(),
            answers: RefCell::default(),
            seen: RefCell::default(),
            logs: RefCell::default(),
        }
    }
    fn item(mut self, item: Item, value: &str) -> Self {
        self.items.push((item, value.into()));
        self
    }
    fn answer(self, text: &str) -> Self {
        self.answers.borrow_mut().push_back(Some(text.into()));
        self
    }
    fn seen(&self) -> Vec<(MsgStyle, String)> {
        self.seen.borrow().clone()
    }
    fn errors(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter(|(s, _)| *s == MsgStyle::ErrorMsg)
            .map(|(_, t)| t)
            .collect()
    }
    fn log_text(&self) -> String {
        self.logs
            .borrow()
            .iter()
            .map(|(_, l)| format!("{l}\n"))
            .collect()
    }
}

impl PamHandle for FakePam {
    fn user(&self) -> Result<String> {
        self.user
            .clone()
            .ok_or_else(|| Error::User("no user".into()))
    }
    fn item(&self, item: Item) -> Option<String> {
        self.items
            .iter()
            .rev()
            .find(|(i, _)| *i == item)
            .map(|(_, v)| v.clone())
    }
    fn getenv(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
    fn converse(&self, style: MsgStyle, text: &str) -> Result<Option<Zeroizing<String>>> {
        self.seen.borrow_mut().push((style, text.into()));
        if !style.is_prompt() {
            return Ok(None);
        }
        match self.answers.borrow_mut().pop_front().flatten() {
            Some(a) => Ok(Some(Zeroizing::new(a))),
            None => Err(Error::Conversation("PAM error 19".into())),
        }
    }
    fn syslog(&self, level: LogLevel, msg: &str) {
        self.logs.borrow_mut().push((level, msg.into()));
    }
}

// ---- scripted agent ----

enum Reply {
    Send(AgentReply),
    Raw(Vec<u8>),
    Hangup,
    Silence,
}

impl From<AgentReply> for Reply {
    fn from(r: AgentReply) -> Self {
        Reply::Send(r)
    }
}

fn step(s: Step) -> Reply {
    Reply::Send(AgentReply::Step(s))
}

struct FakeAgent {
    _dir: tempfile::TempDir,
    path: PathBuf,
    requests: Arc<Mutex<Vec<AgentRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeAgent {
    fn start(mut script: impl FnMut(&AgentRequest) -> Reply + Send + 'static) -> FakeAgent {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    return;
                }
                let mut conn = conn.unwrap();
                while let Ok(req) = blocking::read::<_, AgentRequest>(&mut conn) {
                    let reply = script(&req);
                    log.lock().unwrap().push(req);
                    match reply {
                        Reply::Send(r) => blocking::write(&mut conn, &r).unwrap(),
                        Reply::Raw(bytes) => conn.write_all(&bytes).unwrap(),
                        Reply::Hangup => break,
                        Reply::Silence => {}
                    }
                }
            }
        });
        FakeAgent {
            _dir: dir,
            path,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn socket_arg(&self) -> String {
        format!("socket={}", self.path.display())
    }

    fn requests(&self) -> Vec<AgentRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Begin → prompt; the right code passes, anything else fails.
fn totp_agent(code: &'static str, echo: bool) -> FakeAgent {
    FakeAgent::start(move |req| match req {
        AgentRequest::Begin { user, .. } => step(Step::Prompt {
            label: format!("One-time code for {user}:"),
            echo,
        }),
        AgentRequest::Answer { text } if text.ct_eq(code) => step(Step::Success {
            message: String::new(),
        }),
        AgentRequest::Answer { .. } => step(Step::Failure {
            reason: "Code rejected, 2 attempts left".into(),
        }),
        _ => Reply::Hangup,
    })
}

fn args(agent: &FakeAgent, extra: &[&str]) -> Vec<String> {
    let mut v = vec![agent.socket_arg()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}
