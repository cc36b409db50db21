//! The built `pam_latchkey.so`, loaded by the real libpam (`pam_start_confdir` with a
//! temporary stack behind `pam_permit.so`), against a scripted agent on a Unix socket.

use latchkey_proto::agent::{AGENT_PROTOCOL_VERSION, AgentReply, AgentRequest, SessionEvent, Step};
use latchkey_testkit::pam_harness::{
    AgentAction, ConvMessage, MsgStyle, PAM_SILENT, PamCode, PamConfDir, PamHarness, ScriptedAgent,
    module_path,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

const CODE: &str = "424242";
const LOCKED: &str = "Too many failures: try again in 60 s";

/// A TOTP-like agent: one prompt, the right code passes, three wrong codes lock the user
/// (logins and account checks are refused from then on).
fn totp_agent() -> ScriptedAgent {
    let failures = Arc::new(AtomicU32::new(0));
    ScriptedAgent::start(move |req| {
        let locked = failures.load(Ordering::SeqCst) >= 3;
        match req {
            AgentRequest::Begin { .. } if locked => Step::Failure {
                reason: LOCKED.into(),
            }
            .into(),
            AgentRequest::Begin { user, .. } => Step::Prompt {
                label: format!("One-time code for {user}:"),
                echo: false,
            }
            .into(),
            AgentRequest::Answer { text } if text.ct_eq(CODE) => Step::Success {
                message: String::new(),
            }
            .into(),
            AgentRequest::Answer { .. } => {
                let n = failures.fetch_add(1, Ordering::SeqCst) + 1;
                let reason = if n >= 3 {
                    LOCKED.to_string()
                } else {
                    format!("Code rejected, {} attempts left", 3 - n)
                };
                Step::Failure { reason }.into()
            }
            AgentRequest::AccountCheck { .. } => AgentReply::Account {
                allowed: !locked,
                message: if locked { LOCKED.into() } else { String::new() },
            }
            .into(),
            AgentRequest::Session { .. } => AgentReply::Ack.into(),
            _ => AgentReply::Error {
                message: "unexpected".into(),
            }
            .into(),
        }
    })
    .unwrap()
}

fn login(agent: &ScriptedAgent, service: &str, extra: &[&str]) -> (PamConfDir, PamHarness) {
    let mut args = vec![agent.socket_arg()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let conf = PamConfDir::latchkey(service, &args).unwrap();
    let pam = PamHarness::new(service, "alice", conf.path()).unwrap();
    (conf, pam)
}

#[test]
fn right_code_passes_with_pam_items_in_begin() {
    let agent = totp_agent();
    let (_conf, mut pam) = login(&agent, "sshd", &["client_id=remote"]);
    pam.set_rhost("192.0.2.7").unwrap();
    pam.set_tty("ssh").unwrap();
    pam.answer(CODE);
    assert_eq!(pam.authenticate(0), PamCode::SUCCESS);
    assert_eq!(pam.setcred(0), PamCode::SUCCESS);
    assert_eq!(
        pam.messages(),
        vec![ConvMessage {
            style: MsgStyle::PromptEchoOff,
            text: "One-time code for alice:".into()
        }]
    );
    assert_eq!(
        agent.requests(),
        vec![
            AgentRequest::Begin {
                version: AGENT_PROTOCOL_VERSION,
                user: "alice".parse().unwrap(),
                service: "sshd".into(),
                client_id: Some("remote".parse().unwrap()),
                rhost: Some("192.0.2.7".into()),
                tty: Some("ssh".into()),
                enroll: None,
            },
            AgentRequest::Answer { text: CODE.into() },
        ]
    );
    assert_eq!(pam.acct_mgmt(0), PamCode::SUCCESS);
}

#[test]
fn wrong_code_shows_the_agents_reason_and_fails() {
    let agent = totp_agent();
    let (_conf, mut pam) = login(&agent, "login", &[]);
    pam.answer("000000");
    assert_eq!(pam.authenticate(0), PamCode::AUTH_ERR);
    assert_eq!(
        pam.texts(MsgStyle::ErrorMsg),
        vec!["Code rejected, 2 attempts left".to_string()]
    );
}

#[test]
fn pam_silent_hides_the_reason_but_still_prompts() {
    let agent = totp_agent();
    let (_conf, mut pam) = login(&agent, "login", &[]);
    pam.answer("000000");
    assert_eq!(pam.authenticate(PAM_SILENT), PamCode::AUTH_ERR);
    assert_eq!(pam.prompts().len(), 1);
    assert!(pam.texts(MsgStyle::ErrorMsg).is_empty());
}

#[test]
fn too_many_failures_lock_the_account() {
    let agent = totp_agent();
    let conf = PamConfDir::latchkey("login", &[&agent.socket_arg()]).unwrap();
    for _ in 0..3 {
        let mut pam = PamHarness::new("login", "alice", conf.path()).unwrap();
        pam.answer("111111");
        assert_eq!(pam.authenticate(0), PamCode::AUTH_ERR);
    }
    let mut pam = PamHarness::new("login", "alice", conf.path()).unwrap();
    pam.answer(CODE);
    assert_eq!(
        pam.authenticate(0),
        PamCode::AUTH_ERR,
        "the right code no longer helps"
    );
    assert!(pam.prompts().is_empty());
    assert_eq!(pam.acct_mgmt(0), PamCode::PERM_DENIED);
    assert_eq!(
        pam.texts(MsgStyle::ErrorMsg),
        vec![LOCKED.to_string(), LOCKED.to_string()]
    );
}

#[test]
fn agent_down_refuses_login_and_account_but_not_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("socket={}", dir.path().join("agent.sock").display());
    let conf = PamConfDir::latchkey("login", &[&socket]).unwrap();
    let mut pam = PamHarness::new("login", "alice", conf.path()).unwrap();
    pam.answer(CODE);
    assert_eq!(pam.authenticate(0), PamCode::AUTH_ERR);
    assert_eq!(
        pam.texts(MsgStyle::ErrorMsg),
        vec!["MFA agent unavailable: login refused".to_string()]
    );
    assert!(pam.prompts().is_empty());
    assert_eq!(pam.acct_mgmt(0), PamCode::PERM_DENIED);
    assert_eq!(pam.open_session(0), PamCode::SUCCESS);
    assert_eq!(pam.close_session(0), PamCode::SUCCESS);
}

#[test]
fn garbage_from_the_agent_fails_the_login() {
    let agent =
        ScriptedAgent::start(|_| AgentAction::Raw(b"\x00\x00\x00\x04nope".to_vec())).unwrap();
    let (_conf, mut pam) = login(&agent, "login", &[]);
    assert_eq!(pam.authenticate(0), PamCode::AUTH_ERR);
    assert_eq!(
        pam.texts(MsgStyle::ErrorMsg),
        vec!["MFA agent unavailable: login refused".to_string()]
    );
}

#[test]
fn sessions_reach_the_agent_with_the_logind_session_id() {
    let agent = totp_agent();
    let (_conf, mut pam) = login(&agent, "login", &[]);
    pam.set_tty("tty2").unwrap();
    pam.putenv("XDG_SESSION_ID", "7").unwrap();
    assert_eq!(pam.open_session(0), PamCode::SUCCESS);
    assert_eq!(pam.close_session(0), PamCode::SUCCESS);
    let expect = |event| AgentRequest::Session {
        event,
        user: "alice".parse().unwrap(),
        service: "login".into(),
        tty: Some("tty2".into()),
        rhost: None,
        session_id: Some("7".into()),
        client_id: None,
    };
    assert_eq!(
        agent.requests(),
        vec![expect(SessionEvent::Open), expect(SessionEvent::Close)]
    );
    assert!(pam.messages().is_empty());
}

#[test]
fn info_qr_and_wait_steps_reach_the_application_as_text() {
    let agent = ScriptedAgent::start(|req| match req {
        AgentRequest::Begin { .. } => Step::Qr {
            payload: "LK1:EXAMPLE".into(),
            text: "Scan with the token app".into(),
            copy: None,
        }
        .into(),
        AgentRequest::Continue => Step::Prompt {
            label: "Code from the app:".into(),
            echo: true,
        }
        .into(),
        AgentRequest::Answer { .. } => Step::Success {
            message: "Offline login".into(),
        }
        .into(),
        _ => AgentAction::Hangup,
    })
    .unwrap();
    let (_conf, mut pam) = login(&agent, "i3lock", &[]);
    pam.respond_with(|m| m.text.starts_with("Code").then(|| "87654321".to_string()));
    assert_eq!(pam.authenticate(0), PamCode::SUCCESS);
    let styles: Vec<_> = pam
        .messages()
        .iter()
        .map(|m| (m.style, m.text.clone()))
        .collect();
    assert_eq!(
        styles,
        vec![
            (MsgStyle::TextInfo, "Scan with the token app".into()),
            (MsgStyle::TextInfo, "LK1:EXAMPLE".into()),
            (MsgStyle::PromptEchoOn, "Code from the app:".into()),
        ]
    );
    assert_eq!(
        agent.requests()[2],
        AgentRequest::Answer {
            text: "87654321".into()
        }
    );
}

#[test]
fn unknown_module_option_is_a_service_error() {
    let agent = totp_agent();
    let (_conf, mut pam) = login(&agent, "login", &["client-id=login"]);
    pam.answer(CODE);
    assert_eq!(pam.authenticate(0), PamCode::SERVICE_ERR);
    assert!(agent.requests().is_empty());
    assert_eq!(
        pam.texts(MsgStyle::ErrorMsg),
        vec!["MFA module misconfigured: login refused".to_string()]
    );
}

#[test]
fn aborted_conversation_fails_the_login() {
    let agent = totp_agent();
    let (_conf, mut pam) = login(&agent, "login", &[]);
    // No answer queued: the conversation fails like Ctrl-D at the prompt.
    assert_eq!(pam.authenticate(0), PamCode::AUTH_ERR);
    assert_eq!(agent.requests().len(), 1);
}

#[test]
fn module_exports_exactly_the_pam_sm_functions() {
    let module = module_path().unwrap();
    let out = std::process::Command::new("nm")
        .args(["-D", "--defined-only", "--format=just-symbols"])
        .arg(&module)
        .output()
        .expect("nm (binutils) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut symbols: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    symbols.sort();
    assert_eq!(
        symbols,
        [
            "pam_sm_acct_mgmt",
            "pam_sm_authenticate",
            "pam_sm_chauthtok",
            "pam_sm_close_session",
            "pam_sm_open_session",
            "pam_sm_setcred",
        ]
    );
}

#[test]
fn a_panicking_responder_fails_the_test_not_libpam() {
    let agent = totp_agent();
    let (_conf, mut pam) = login(&agent, "login", &[]);
    pam.respond_with(|_| panic!("responder blew up"));
    // The harness is Send: e2e tests can drive it from spawn_blocking.
    let outcome = std::thread::spawn(move || pam.authenticate(0)).join();
    let panic = outcome.expect_err("the responder's panic reaches the caller");
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"responder blew up"));
}
