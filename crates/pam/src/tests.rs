//! The module's logic against a fake PAM handle and a scripted agent on a real Unix socket.

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
        AgentRequest::Answer { text } if text == code => step(Step::Success {
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

// ---- authenticate ----

#[test]
fn right_code_passes_and_begin_carries_the_pam_items() {
    let agent = totp_agent("123456", false);
    let pam = FakePam::new("alice")
        .item(Item::Rhost, "192.0.2.7")
        .item(Item::Tty, "/dev/pts/3")
        .answer("123456");
    let code = authenticate(&pam, Flags::default(), &args(&agent, &["client_id=remote"]));
    assert_eq!(code, PamCode::Success);
    assert_eq!(
        pam.seen(),
        vec![(MsgStyle::PromptEchoOff, "One-time code for alice:".into())]
    );
    let reqs = agent.requests();
    assert_eq!(
        reqs[0],
        AgentRequest::Begin {
            version: latchkey_proto::agent::AGENT_PROTOCOL_VERSION,
            user: "alice".into(),
            service: "sudo".into(),
            client_id: Some("remote".into()),
            rhost: Some("192.0.2.7".into()),
            tty: Some("/dev/pts/3".into()),
        }
    );
    assert_eq!(
        reqs[1],
        AgentRequest::Answer {
            text: "123456".into()
        }
    );
    assert!(
        pam.log_text().contains("user \"alice\": MFA passed"),
        "{}",
        pam.log_text()
    );
}

#[test]
fn success_message_is_not_shown() {
    let agent = FakeAgent::start(|_| {
        step(Step::Success {
            message: "Welcome back".into(),
        })
    });
    let pam = FakePam::new("alice");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &[])),
        PamCode::Success
    );
    assert!(pam.seen().is_empty());
}

#[test]
fn echo_on_prompt_uses_prompt_echo_on() {
    let agent = totp_agent("yes", true);
    let pam = FakePam::new("alice").answer("yes");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &[])),
        PamCode::Success
    );
    assert_eq!(pam.seen()[0].0, MsgStyle::PromptEchoOn);
}

#[test]
fn info_qr_and_wait_are_shown_as_text_and_continued() {
    let mut n = 0;
    let agent = FakeAgent::start(move |req| {
        n += 1;
        match (n, req) {
            (1, AgentRequest::Begin { .. }) => step(Step::Info {
                text: "Offline login".into(),
            }),
            (2, AgentRequest::Continue) => step(Step::Qr {
                payload: "LK1:ABC".into(),
                text: "Scan with the token app".into(),
            }),
            (3, AgentRequest::Continue) => step(Step::Wait {
                text: "Approve the push on your phone".into(),
            }),
            (4, AgentRequest::Continue) => step(Step::Info {
                text: String::new(),
            }),
            (5, AgentRequest::Continue) => step(Step::Success {
                message: String::new(),
            }),
            _ => step(Step::Failure {
                reason: format!("unexpected {req:?}"),
            }),
        }
    });
    let pam = FakePam::new("alice");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &[])),
        PamCode::Success
    );
    let info = |t: &str| (MsgStyle::TextInfo, t.to_string());
    assert_eq!(
        pam.seen(),
        vec![
            info("Offline login"),
            info("Scan with the token app"),
            info("LK1:ABC"),
            info("Approve the push on your phone"),
        ]
    );
}

#[test]
fn failure_shows_the_reason_and_refuses() {
    let agent = totp_agent("123456", false);
    let pam = FakePam::new("alice").answer("000000");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &[])),
        PamCode::AuthErr
    );
    assert_eq!(
        pam.errors(),
        vec!["Code rejected, 2 attempts left".to_string()]
    );
    assert!(pam.log_text().contains("MFA failed: Code rejected"));
}

#[test]
fn silent_flag_hides_the_failure_message_but_not_the_prompt() {
    let agent = totp_agent("123456", false);
    let pam = FakePam::new("alice").answer("000000");
    assert_eq!(
        authenticate(&pam, Flags(Flags::SILENT), &args(&agent, &[])),
        PamCode::AuthErr
    );
    assert_eq!(pam.seen().len(), 1);
    assert_eq!(pam.seen()[0].0, MsgStyle::PromptEchoOff);
}

#[test]
fn agent_down_refuses_with_a_message_and_a_syslog_line() {
    let dir = tempfile::tempdir().unwrap();
    let sock = format!("socket={}", dir.path().join("agent.sock").display());
    let pam = FakePam::new("alice");
    let start = Instant::now();
    assert_eq!(
        authenticate(&pam, Flags::default(), &[sock]),
        PamCode::AuthErr
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(
        pam.errors(),
        vec!["MFA agent unavailable: login refused".to_string()]
    );
    let logs = pam.logs.borrow();
    assert!(
        logs.iter()
            .any(|(l, m)| *l == LogLevel::Err && m.contains("cannot reach the agent")),
        "{logs:?}"
    );
}

#[test]
fn garbage_from_the_agent_refuses() {
    for raw in [
        b"\x00\x00\x00\x05hello".to_vec(),
        b"\xff\xff\xff\xff".to_vec(),
        b"\x00\x00\x00\x02{}".to_vec(),
    ] {
        let agent = FakeAgent::start(move |_| Reply::Raw(raw.clone()));
        let pam = FakePam::new("alice");
        assert_eq!(
            authenticate(&pam, Flags::default(), &args(&agent, &[])),
            PamCode::AuthErr
        );
        assert_eq!(
            pam.errors(),
            vec!["MFA agent unavailable: login refused".to_string()]
        );
    }
}

#[test]
fn agent_hanging_up_mid_login_refuses() {
    let agent = FakeAgent::start(|req| match req {
        AgentRequest::Begin { .. } => step(Step::Prompt {
            label: "Code:".into(),
            echo: false,
        }),
        _ => Reply::Hangup,
    });
    let pam = FakePam::new("alice").answer("123456");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &[])),
        PamCode::AuthErr
    );
    assert!(
        pam.log_text().contains("closed the connection"),
        "{}",
        pam.log_text()
    );
}

#[test]
fn replies_out_of_turn_refuse() {
    for reply in [
        AgentReply::Ack,
        AgentReply::Account {
            allowed: true,
            message: String::new(),
        },
    ] {
        let agent = FakeAgent::start(move |_| reply.clone().into());
        let pam = FakePam::new("alice");
        assert_eq!(
            authenticate(&pam, Flags::default(), &args(&agent, &[])),
            PamCode::AuthErr
        );
        assert!(pam.log_text().contains("out of turn"));
    }
}

#[test]
fn agent_error_reply_is_shown_and_refuses() {
    let agent = FakeAgent::start(|_| {
        AgentReply::Error {
            message: "not allowed: only root may act for another user (bob)".into(),
        }
        .into()
    });
    let pam = FakePam::new("bob");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &[])),
        PamCode::AuthErr
    );
    assert_eq!(
        pam.errors(),
        vec!["not allowed: only root may act for another user (bob)".to_string()]
    );
}

#[test]
fn silent_agent_times_out_and_refuses() {
    let agent = FakeAgent::start(|_| Reply::Silence);
    let pam = FakePam::new("alice");
    let start = Instant::now();
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &["timeout=1"])),
        PamCode::AuthErr
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(
        pam.log_text().contains("no answer within 1 s"),
        "{}",
        pam.log_text()
    );
}

#[test]
fn endless_steps_refuse() {
    let agent = FakeAgent::start(|_| {
        step(Step::Info {
            text: "again".into(),
        })
    });
    let pam = FakePam::new("alice");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &[])),
        PamCode::AuthErr
    );
    assert!(pam.log_text().contains("no verdict after"));
}

#[test]
fn unanswered_prompt_refuses_without_reaching_success() {
    let agent = totp_agent("123456", false);
    let pam = FakePam::new("alice");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &[])),
        PamCode::AuthErr
    );
    assert_eq!(agent.requests().len(), 1, "no answer may be sent");
}

#[test]
fn unknown_user_refuses_without_asking_the_agent() {
    let agent = FakeAgent::start(|_| {
        step(Step::Success {
            message: String::new(),
        })
    });
    let mut pam = FakePam::new("alice");
    pam.user = None;
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &[])),
        PamCode::AuthErr
    );
    assert!(agent.requests().is_empty());
}

#[test]
fn answers_and_codes_never_reach_syslog() {
    let agent = totp_agent("314159", false);
    let pam = FakePam::new("alice").answer("314159");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &["debug"])),
        PamCode::Success
    );
    let logs = pam.log_text();
    assert!(
        logs.contains("agent step: prompt \"One-time code for alice:\" (echo off)"),
        "{logs}"
    );
    assert!(!logs.contains("314159"), "{logs}");

    let pam = FakePam::new("alice").answer("271828");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &["debug"])),
        PamCode::AuthErr
    );
    assert!(!pam.log_text().contains("271828"));
}

#[test]
fn control_characters_from_the_agent_are_dropped() {
    let agent = FakeAgent::start(|req| match req {
        AgentRequest::Begin { .. } => step(Step::Info {
            text: "line 1\n\x1b]0;owned\x07line\t2\0".into(),
        }),
        _ => step(Step::Failure {
            reason: "\x1b[2Jbad".into(),
        }),
    });
    let pam = FakePam::new("alice");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &[])),
        PamCode::AuthErr
    );
    assert_eq!(
        pam.seen(),
        vec![
            (MsgStyle::TextInfo, "line 1\n]0;ownedline\t2".into()),
            (MsgStyle::ErrorMsg, "[2Jbad".into())
        ]
    );
}

#[test]
fn unknown_option_is_a_service_error_and_never_contacts_the_agent() {
    let agent = FakeAgent::start(|_| {
        step(Step::Success {
            message: String::new(),
        })
    });
    let pam = FakePam::new("alice");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &["clientid=login"])),
        PamCode::ServiceErr
    );
    assert!(agent.requests().is_empty());
    assert_eq!(
        pam.errors(),
        vec!["MFA module misconfigured: login refused".to_string()]
    );
    assert!(
        pam.log_text()
            .contains("\"clientid=login\": unknown option"),
        "{}",
        pam.log_text()
    );
}

// ---- options ----

#[test]
fn options_parse_known_arguments() {
    let o = Options::parse(&[
        "client_id=elevation",
        "socket=/tmp/a.sock",
        "timeout=30",
        "debug",
    ])
    .unwrap();
    assert_eq!(
        o,
        Options {
            client_id: Some("elevation".into()),
            socket: "/tmp/a.sock".into(),
            timeout: Duration::from_secs(30),
            debug: true,
        }
    );
    let d = Options::parse::<&str>(&[]).unwrap();
    assert_eq!(d.socket, PathBuf::from("/run/latchkey/agent.sock"));
    assert_eq!(
        (d.client_id, d.timeout, d.debug),
        (None, DEFAULT_TIMEOUT, false)
    );
    assert_eq!(
        Options::parse(&["timeout=5", "timeout=7"]).unwrap().timeout,
        Duration::from_secs(7)
    );
}

#[test]
fn options_refuse_anything_unexpected() {
    for bad in [
        "client_id=",
        "client_id=a b",
        "client_id=x;rm",
        "socket=relative.sock",
        "socket=",
        "timeout=0",
        "timeout=-1",
        "timeout=5s",
        "timeout=100000",
        "debug=1",
        "Debug",
        "use_first_pass",
        "",
        "\u{fffd}(null argument)",
    ] {
        assert!(Options::parse(&[bad]).is_err(), "{bad:?} accepted");
    }
}

// ---- account ----

#[test]
fn account_allowed_denied_and_unreachable() {
    let agent = FakeAgent::start(|req| match req {
        AgentRequest::AccountCheck { user, .. } if user == "alice" => AgentReply::Account {
            allowed: true,
            message: String::new(),
        }
        .into(),
        _ => AgentReply::Account {
            allowed: false,
            message: "Too many failures: try again in 60 s".into(),
        }
        .into(),
    });
    let pam = FakePam::new("alice");
    assert_eq!(
        acct_mgmt(&pam, Flags::default(), &args(&agent, &["client_id=login"])),
        PamCode::Success
    );
    assert!(pam.seen().is_empty());
    assert_eq!(
        agent.requests()[0],
        AgentRequest::AccountCheck {
            user: "alice".into(),
            service: "sudo".into(),
            client_id: Some("login".into())
        }
    );

    let pam = FakePam::new("mallory");
    assert_eq!(
        acct_mgmt(&pam, Flags::default(), &args(&agent, &[])),
        PamCode::PermDenied
    );
    assert_eq!(
        pam.errors(),
        vec!["Too many failures: try again in 60 s".to_string()]
    );

    let socket = format!("socket={}", agent.path.display());
    drop(agent);
    let pam = FakePam::new("alice");
    assert_eq!(
        acct_mgmt(&pam, Flags::default(), &[socket]),
        PamCode::PermDenied
    );
    assert_eq!(
        pam.errors(),
        vec!["MFA agent unavailable: login refused".to_string()]
    );

    let pam = FakePam::new("alice");
    assert_eq!(
        acct_mgmt(&pam, Flags::default(), &["bogus"]),
        PamCode::ServiceErr
    );
}

#[test]
fn account_error_or_odd_reply_is_denied() {
    let agent = FakeAgent::start(|_| AgentReply::Ack.into());
    let pam = FakePam::new("alice");
    assert_eq!(
        acct_mgmt(&pam, Flags::default(), &args(&agent, &[])),
        PamCode::PermDenied
    );
    let agent = FakeAgent::start(|_| {
        AgentReply::Error {
            message: "nope".into(),
        }
        .into()
    });
    let pam = FakePam::new("alice");
    assert_eq!(
        acct_mgmt(&pam, Flags::default(), &args(&agent, &[])),
        PamCode::PermDenied
    );
    assert_eq!(pam.errors(), vec!["nope".to_string()]);
}

// ---- sessions ----

#[test]
fn sessions_are_reported_with_their_logind_id() {
    let agent = FakeAgent::start(|_| AgentReply::Ack.into());
    let mut pam = FakePam::new("alice")
        .item(Item::Tty, "pts/1")
        .item(Item::Rhost, "192.0.2.7");
    pam.env.push(("XDG_SESSION_ID".into(), "42".into()));
    assert_eq!(
        session(&pam, SessionEvent::Open, &args(&agent, &[])),
        PamCode::Success
    );
    assert_eq!(
        session(&pam, SessionEvent::Close, &args(&agent, &[])),
        PamCode::Success
    );
    let expect = |event| AgentRequest::Session {
        event,
        user: "alice".into(),
        service: "sudo".into(),
        tty: Some("pts/1".into()),
        rhost: Some("192.0.2.7".into()),
        session_id: Some("42".into()),
    };
    assert_eq!(
        agent.requests(),
        vec![expect(SessionEvent::Open), expect(SessionEvent::Close)]
    );
    assert!(pam.logs.borrow().is_empty());
}

#[test]
fn session_problems_never_block_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let pam = FakePam::new("alice");
    let sock = format!("socket={}", dir.path().join("none.sock").display());
    assert_eq!(session(&pam, SessionEvent::Open, &[sock]), PamCode::Success);
    assert!(
        pam.log_text().contains("session open not reported"),
        "{}",
        pam.log_text()
    );

    let pam = FakePam::new("alice");
    assert_eq!(
        session(&pam, SessionEvent::Close, &["nonsense"]),
        PamCode::Success
    );
    assert!(pam.log_text().contains("unknown option"));

    let agent = FakeAgent::start(|_| {
        AgentReply::Error {
            message: "no".into(),
        }
        .into()
    });
    let pam = FakePam::new("alice");
    assert_eq!(
        session(&pam, SessionEvent::Open, &args(&agent, &[])),
        PamCode::Success
    );
    assert!(pam.seen().is_empty());
}
