//! An unprivileged local user against the agent socket (issue: local users are attackers
//! too). The attacker is a real process running as `nobody` (`lk-local-caller`); logins are
//! root's, through the real PAM module in the real libpam or the socket protocol.

use latchkey_testkit::local::*;

use crate::support::local::as_nobody;
use latchkey_proto::TokenKind;
use latchkey_testkit::TestServer;
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::agent_process::{AgentProcess, ProcessOptions};
use latchkey_testkit::pam_harness::{ConvMessage, MsgStyle, PamCode, PamConfDir, PamHarness};
use latchkey_testkit::token_cli::TokenCli;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

/// Starts `lk-local-caller SOCKET hold N MS` as nobody and returns it with its report line.
fn hold(socket: &Path, n: usize, settle_ms: u64) -> (Child, String) {
    let mut child = as_nobody(&[
        socket.to_str().unwrap(),
        "hold",
        &n.to_string(),
        &settle_ms.to_string(),
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_string())
}

/// `held K open M …` → (K, M).
fn held_open(report: &str) -> (usize, usize) {
    let w: Vec<&str> = report.split_whitespace().collect();
    assert!(w.len() >= 4 && w[0] == "held" && w[2] == "open", "{report}");
    (w[1].parse().unwrap(), w[3].parse().unwrap())
}

/// The agent as its own process (`latchkey-agent run`) under `prlimit --nofile=1024:1024`,
/// the way a unit without `LimitNOFILE` runs it.
const NOFILE_1024: ProcessOptions = ProcessOptions {
    log_level: "info",
    nofile: Some(1024),
};

/// One PAM login of `user` as root; a QR challenge shown is answered by `token`'s app.
async fn pam_login(
    conf: Arc<PamConfDir>,
    user: &str,
    token: Arc<TokenCli>,
    online_code: bool,
) -> (PamCode, Vec<ConvMessage>) {
    let user = user.to_string();
    tokio::task::spawn_blocking(move || {
        let payload = Arc::new(Mutex::new(None::<String>));
        let seen = payload.clone();
        let mut pam = PamHarness::new("login", &user, conf.path()).unwrap();
        pam.observe(move |m| {
            if m.style == MsgStyle::TextInfo && m.text.starts_with("LK1:") {
                *seen.lock().unwrap() = Some(m.text.clone());
            }
        });
        pam.respond_with(move |_| match payload.lock().unwrap().clone() {
            Some(p) => Some(token.answer(&p).unwrap().1),
            None if online_code => Some(token.totp().unwrap()),
            None => None,
        });
        let code = pam.authenticate(0);
        (code, pam.messages())
    })
    .await
    .unwrap()
}

/// Root runs alice's login over the socket with her TOTP code; it must pass.
async fn root_logs_in(agent: &TestAgent, uri: &latchkey_crypto::otpauth::OtpAuthUri, what: &str) {
    let steps = agent
        .login("alice", "login", &[&latchkey_testkit::totp_now(uri)])
        .await
        .unwrap();
    assert!(
        matches!(
            steps.last(),
            Some(latchkey_proto::agent::Step::Success { .. })
        ),
        "{what}: {steps:?}"
    );
}

fn texts(msgs: &[ConvMessage]) -> String {
    msgs.iter()
        .map(|m| m.text.clone())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_user_holding_connections_cannot_push_a_disabled_user_offline() {
    if !running_as_root() {
        return;
    }
    let srv = TestServer::start().await.unwrap();
    srv.add_user("alice", &[]).await.unwrap();
    let token = Arc::new(TokenCli::register(&srv, "alice").await.unwrap());
    // 1,024 descriptors, soft and hard: what the agent had under a unit without LimitNOFILE.
    let prepared = TestAgent::prepare(&srv, |_| {}).await.unwrap();
    let agent = AgentProcess::spawn(&prepared, &NOFILE_1024).await.unwrap();
    let conf = Arc::new(agent.pam_conf("login").unwrap());

    // Alice logs in once online: the machine holds her offline bundle.
    let (code, msgs) = pam_login(conf.clone(), "alice", token.clone(), true).await;
    assert_eq!(code, PamCode::SUCCESS, "{}", texts(&msgs));
    let bundles: i64 = rusqlite::Connection::open(agent.state_dir.join("agent.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM offline_bundles", [], |r| r.get(0))
        .unwrap();
    assert_eq!(bundles, 1);

    // The admin disables alice. A server that answers must refuse her from now on.
    srv.set_user_enabled("alice", false).await.unwrap();
    // The pooled connection from the first login must not save the agent: it needs a new one.
    let mut srv = srv;
    srv.restart().await.unwrap();

    // nobody takes all but one of the agent's descriptors: the PAM login's own connection
    // gets the last one, and the agent has none left for the server.
    open_dirs_to_others(&agent.socket).unwrap();
    let take = 1024 - agent.open_fds() - 1;
    let (attacker, report) = hold(&agent.socket, take, 500);
    let (held, _) = held_open(&report);
    assert_eq!(held, take, "{report}");

    let (code, msgs) = pam_login(conf.clone(), "alice", token.clone(), false).await;
    let all = texts(&msgs);
    drop(attacker);
    assert_ne!(code, PamCode::SUCCESS, "a disabled user got in: {all}");
    assert!(
        !msgs.iter().any(|m| m.text.starts_with("LK1:")),
        "the login went offline: {all}"
    );
    assert!(!all.contains("unreachable"), "{all}");
    let log = agent.log_text();
    assert!(
        log.contains("agent connection refused"),
        "nobody's connections over its share were refused: {log}"
    );
    assert!(
        !log.contains("latchkey server failed; skipping it"),
        "the breaker opened: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_user_gets_a_share_of_connections_and_silent_ones_are_closed() {
    if !running_as_root() {
        return;
    }
    let srv = TestServer::start().await.unwrap();
    let uri = srv
        .add_user_with_token("alice", TokenKind::Totp)
        .await
        .unwrap();
    let agent = TestAgent::start_with(&srv, |s| {
        s.config_append = "[socket_limits]\nper_user = 4\nidle = \"1s\"\n".into();
    })
    .await
    .unwrap();
    open_dirs_to_others(&agent.socket).unwrap();

    // Over its share, the agent answers and closes at once.
    let (first, report) = hold(&agent.socket, 10, 300);
    assert_eq!(held_open(&report), (10, 4), "{report}");
    // Silent connections are closed after `idle` (1 s here), long before a prompt's 5 min.
    let (_, report) = hold(&agent.socket, 3, 1500);
    assert_eq!(held_open(&report), (3, 0), "{report}");
    drop(first);

    // Root's logins go on all the while.
    root_logs_in(&agent, &uri, "root's login beside the held connections").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_users_flood_of_logins_leaves_the_machine_budget_to_others() {
    if !running_as_root() {
        return;
    }
    // A per-machine budget the flood would use up on its own.
    let srv = TestServer::start_with(|c| {
        c.machine_rate = 30;
        c.machine_burst = 30;
    })
    .await
    .unwrap();
    let uri = srv
        .add_user_with_token("alice", TokenKind::Totp)
        .await
        .unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    open_dirs_to_others(&agent.socket).unwrap();

    let begin = r#"{"op":"begin","version":1,"user":"nobody","service":"login"}"#;
    let out = as_nobody(&[agent.socket.to_str().unwrap(), "repeat", "100", begin])
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let refused = summary["replies"]["error"].as_u64().unwrap_or(0);
    assert!(refused >= 85, "the flood was not held back: {summary}");
    assert!(
        summary["last_error"]
            .as_str()
            .unwrap()
            .contains("too many logins started by nobody"),
        "{summary}"
    );

    root_logs_in(&agent, &uri, "root's login after the flood").await;
}
