//! What an unprivileged local user can do to the agent's events, sessions and session lock
//! (issue 18): a real latchkeyd, a real agent, its real socket, and a real process running as
//! `nobody` (`lk-local-caller`) playing the user.
//!
//! These tests switch to uid 65534, which needs root (CI runs as root); elsewhere they say so
//! and pass.

use latchkey_testkit::local::*;

use crate::support::local::{as_nobody, lock_agent};
use crate::support::run_blocking;
use latchkey_proto::TokenKind;
use latchkey_proto::agent::{AgentReply, AgentRequest, AgentStatus, SessionEvent, blocking};
use latchkey_proto::app::BadgeState;
use latchkey_proto::events::EventKind;
use latchkey_testkit::TestServer;
use latchkey_testkit::agent::{TestAgent, socket_login};
use latchkey_testkit::token_app::SoftApp;
use std::path::Path;
use std::time::Duration;
/// Runs `lk-local-caller SOCKET args…` as nobody; its standard output.
async fn nobody_calls(socket: &Path, args: Vec<String>) -> String {
    let mut all = vec![socket.to_str().unwrap().to_string()];
    all.extend(args);
    run_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = as_nobody(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
}

/// One request sent as nobody on a connection of its own; the agent's reply.
async fn nobody_sends(socket: &Path, req: &AgentRequest) -> AgentReply {
    let out = nobody_calls(
        socket,
        vec!["send".into(), serde_json::to_string(req).unwrap()],
    )
    .await;
    serde_json::from_str(out.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no reply in {out:?}: {e}"))
}

fn open_request(user: &str, service: &str, rhost: Option<&str>, id: Option<&str>) -> AgentRequest {
    AgentRequest::Session {
        event: SessionEvent::Open,
        user: user.parse().unwrap(),
        service: service.into(),
        tty: Some("pts/9".into()),
        rhost: rhost.map(str::to_string),
        session_id: id.map(str::to_string),
        client_id: None,
    }
}

/// A request sent as root (this test process), as the PAM module in sshd would.
async fn root_sends(socket: &Path, req: AgentRequest) -> AgentReply {
    let socket = socket.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        blocking::write(&mut s, &req).unwrap();
        blocking::read(&mut s).unwrap()
    })
    .await
    .unwrap()
}
/// The same page as raw JSON: what the admin API shows, whatever this build's types know.
async fn raw_events(srv: &TestServer, query: &str) -> Vec<serde_json::Value> {
    let page: serde_json::Value = srv
        .admin()
        .unwrap()
        .get(&format!("/v1/admin/events?limit=10000&{query}"))
        .await
        .unwrap();
    page["events"].as_array().cloned().unwrap_or_default()
}
/// A directory in logind's format (`/run/systemd/sessions/<id>`, `UID=` line), for the
/// agent's `session_lock.logind_sessions`.
fn logind_session(dir: &Path, id: &str, uid: u32) {
    std::fs::write(
        dir.join(id),
        format!("# This is private data. Do not parse.\nUID={uid}\nUSER=u{uid}\nACTIVE=1\nSTATE=active\n"),
    )
    .unwrap();
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_users_session_flood_cannot_evict_other_users_authentication_events() {
    if !running_as_root() {
        return;
    }
    let mut srv = TestServer::start().await.unwrap();
    srv.add_user_with_token("bob", TokenKind::Totp)
        .await
        .unwrap();
    let config =
        format!("{FAST}spool_max = 100\ncaller_quota = 20\n[session_lock]\nenabled = false\n");
    let agent = TestAgent::start_with(&srv, |s| s.config_append = config)
        .await
        .unwrap();
    open_dirs_to_others(&agent.socket).unwrap();
    srv.stop().await;
    // Bob fails ten logins while the server is down: the offline module refuses them (no
    // bundle) and the uploader moves the outcomes into the spool.
    let socket = agent.socket.clone();
    tokio::task::spawn_blocking(move || {
        for _ in 0..10 {
            socket_login(&socket, "bob", "login", &[]).unwrap();
        }
    })
    .await
    .unwrap();
    let spool = agent.agent().unwrap().events.spool();
    wait_until(10, "bob's failures in the spool", || async {
        spool.len() >= 10
    })
    .await;
    // nobody floods the spool with session reports of its own, three times its cap.
    let flood = serde_json::to_string(&open_request("nobody", "login", None, None)).unwrap();
    let out = nobody_calls(&agent.socket, vec!["repeat".into(), "300".into(), flood]).await;
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    // Root's own session reports (sshd's PAM stack) go past the cap: something is dropped.
    for i in 0..150 {
        let req = open_request("carl", "sshd", Some("10.0.0.1"), Some(&format!("{i}")));
        assert_eq!(root_sends(&agent.socket, req).await, AgentReply::Ack);
    }
    srv.restart().await.unwrap();
    wait_until(30, "an empty spool", || async { spool.is_empty() }).await;
    let bob = srv.events("user=bob").await.unwrap();
    assert_eq!(
        bob.iter()
            .filter(|e| e.event.kind == EventKind::AuthFailure && e.event.online == Some(false))
            .count(),
        10,
        "every failed login of bob reaches the server: {bob:?}"
    );
    // nobody got its quota and then a clear refusal.
    assert_eq!(summary["replies"]["ack"], 20, "{summary}");
    assert_eq!(summary["replies"]["error"], 280, "{summary}");
    let why = summary["last_error"].as_str().unwrap();
    assert!(why.contains("events.caller_quota"), "{why}");
    // The cap still drops (caller reports first) and says so.
    let dropped = srv.events("type=spool_dropped").await.unwrap();
    assert!(!dropped.is_empty());
    let callers: u64 = dropped
        .iter()
        .map(|d| {
            d.event.fields["dropped_caller_reported"]
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(callers, 20, "{dropped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_user_cannot_point_the_lock_command_at_another_session() {
    if !running_as_root() {
        return;
    }
    let srv = TestServer::start().await.unwrap();
    srv.add_user("nobody", &[]).await.unwrap();
    let app = SoftApp::register(&srv, "nobody").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let logind = dir.path().join("sessions");
    std::fs::create_dir(&logind).unwrap();
    logind_session(&logind, "7", 0);
    logind_session(&logind, "c9", NOBODY);
    logind_session(&logind, "c10", NOBODY);
    let (agent, log) = lock_agent(&srv, dir.path(), Some(&logind)).await;
    open_dirs_to_others(&agent.socket).unwrap();
    // Root's session 7, someone else's; an id nobody has; an option in disguise.
    let mut refused = Vec::new();
    for id in ["7", "42", "--host=attacker@evil"] {
        let req = open_request("nobody", "login", None, Some(id));
        refused.push((id, nobody_sends(&agent.socket, &req).await));
    }
    for id in ["c9", "c10"] {
        let req = open_request("nobody", "login", None, Some(id));
        assert_eq!(nobody_sends(&agent.socket, &req).await, AgentReply::Ack);
    }
    // Root reporting an id logind never makes (e.g. injected through the PAM environment):
    // the session is kept, without the id.
    let req = open_request("nobody", "su", None, Some("-x"));
    assert_eq!(root_sends(&agent.socket, req).await, AgentReply::Ack);
    // nobody "closes" that session, which root's PAM stack reported, to escape its lock.
    let close = AgentRequest::Session {
        event: SessionEvent::Close,
        user: "nobody".parse().unwrap(),
        service: "su".into(),
        tty: None,
        rhost: None,
        session_id: None,
        client_id: None,
    };
    assert_eq!(nobody_sends(&agent.socket, &close).await, AgentReply::Ack);
    // c10 ended and its id now belongs to root (ids restart after a reboot).
    logind_session(&logind, "c10", 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(app.badge(BadgeState::Out).await.unwrap().ok);
    wait_until(10, "the lock", || async {
        !recorded_locks(&log).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ran = recorded_locks(&log);
    let targets: Vec<&str> = ran
        .iter()
        .filter_map(|l| l.split_once(' '))
        .map(|(_, s)| s)
        .collect();
    assert!(
        targets
            .iter()
            .all(|t| !t.starts_with('-') && !["7", "42", "c10"].contains(t)),
        "the lock command ran on a foreign or made-up session: {ran:?}"
    );
    assert!(targets.contains(&"c9"), "{ran:?}");
    // Root's su session, without the id it came with: locked by the agent's key.
    assert!(
        targets
            .iter()
            .any(|t| t.len() == 12 && t.chars().all(|c| c.is_ascii_hexdigit())),
        "the session root reported is still watched: {ran:?}"
    );
    for (id, reply) in &refused {
        let AgentReply::Error { message } = reply else {
            panic!("session {id} accepted: {reply:?}");
        };
        assert!(message.starts_with("not allowed: session"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
    // The re-check at lock time is recorded: c10 was not locked, and why.
    wait_until(10, "the lock events", || async {
        srv.events("type=session_lock").await.unwrap().len() >= 3
    })
    .await;
    let lock_events = srv.events("type=session_lock").await.unwrap();
    let c10 = lock_events
        .iter()
        .find(|e| e.event.fields.get("logind_session").map(String::as_str) == Some("c10"))
        .unwrap();
    assert!(
        c10.event.fields["result"].starts_with("refused:"),
        "{:?}",
        c10.event.fields
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_user_sees_only_its_own_sessions_and_its_reports_are_marked() {
    if !running_as_root() {
        return;
    }
    let srv = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let logind = dir.path().join("sessions");
    std::fs::create_dir(&logind).unwrap();
    logind_session(&logind, "c5", NOBODY);
    let (agent, _log) = lock_agent(&srv, dir.path(), Some(&logind)).await;
    open_dirs_to_others(&agent.socket).unwrap();
    let req = open_request("alice", "login", None, Some("4"));
    assert_eq!(root_sends(&agent.socket, req).await, AgentReply::Ack);
    // nobody claims an sshd login from a remote host.
    let req = open_request("nobody", "sshd", Some("10.6.6.6"), Some("c5"));
    assert_eq!(nobody_sends(&agent.socket, &req).await, AgentReply::Ack);
    let users = |r: AgentReply| -> Vec<String> {
        let AgentReply::Status(AgentStatus { open_sessions, .. }) = r else {
            panic!("{r:?}")
        };
        open_sessions.into_iter().map(|s| s.user).collect()
    };
    assert_eq!(
        users(nobody_sends(&agent.socket, &AgentRequest::Status).await),
        vec!["nobody".to_string()],
        "a local user sees its own sessions only"
    );
    assert_eq!(
        users(root_sends(&agent.socket, AgentRequest::Status).await),
        vec!["alice".to_string(), "nobody".to_string()]
    );
    wait_until(10, "both logons", || async {
        raw_events(&srv, "type=logon").await.len() == 2
    })
    .await;
    let logons = raw_events(&srv, "type=logon").await;
    let of = |user: &str| logons.iter().find(|e| e["user"] == user).unwrap().clone();
    let nobody = of("nobody");
    assert_eq!(nobody["reported_by_uid"], NOBODY, "{nobody}");
    assert_eq!(nobody["rhost"], "10.6.6.6", "kept, as nobody's claim");
    let alice = of("alice");
    assert!(alice.get("reported_by_uid").is_none(), "{alice}");
}
