//! The whole chain a Linux login uses: the real libpam loads the real pam_latchkey.so, which
//! talks to a real agent, which asks a real latchkeyd over TLS.

use crate::support::run_blocking;
use latchkey_proto::TokenKind;
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::pam_harness::{MsgStyle, PamCode, PamConfDir, PamHarness};
use latchkey_testkit::{TestServer, hotp_at, totp_now};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sudo_with_totp_through_pam_agent_and_server() {
    let srv = TestServer::start().await.unwrap();
    let uri = srv
        .add_user_with_token("alice", TokenKind::Totp)
        .await
        .unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = agent.pam_conf("sudo").unwrap();
    let (code, prompts) = run_blocking(move || {
        let mut pam = PamHarness::new("sudo", "alice", conf.path()).unwrap();
        pam.set_rhost("10.1.2.3").unwrap();
        pam.respond_with(move |_| Some(totp_now(&uri)));
        let code = pam.authenticate(0);
        let acct = pam.acct_mgmt(0);
        assert_eq!(acct, PamCode::SUCCESS);
        (code, pam.prompts())
    })
    .await;
    assert_eq!(code, PamCode::SUCCESS);
    assert_eq!(prompts, vec!["One-time code for alice:".to_string()]);
    // The server saw the elevation context (sudo → elevation) and the remote host.
    let audit = srv.audit("alice").await.unwrap();
    assert!(
        audit.iter().any(|a| a.action == "login.start"
            && a.client_id.as_deref() == Some("elevation")
            && a.detail.contains("10.1.2.3")),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_show_the_agent_words_then_lock_the_account() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy(
        "login",
        &[("lockout_threshold", "3"), ("max_attempts", "3")],
    )
    .await
    .unwrap();
    let uri = srv
        .add_user_with_token("bob", TokenKind::Hotp)
        .await
        .unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = agent.pam_conf("login").unwrap();
    let wrong = hotp_at(&uri, 900);
    let right = hotp_at(&uri, 0);
    let (first, infos, errors, second, acct, acct_errors) = run_blocking(move || {
        let mut pam = PamHarness::new("login", "bob", conf.path()).unwrap();
        pam.answer(wrong.clone())
            .answer(wrong.clone())
            .answer(wrong);
        let first = pam.authenticate(0);
        let infos = pam.texts(MsgStyle::TextInfo);
        let errors = pam.texts(MsgStyle::ErrorMsg);
        pam.end();
        let mut pam = PamHarness::new("login", "bob", conf.path()).unwrap();
        pam.answer(right);
        let second = pam.authenticate(0);
        pam.take_messages();
        let acct = pam.acct_mgmt(0);
        let acct_errors = pam.texts(MsgStyle::ErrorMsg);
        (first, infos, errors, second, acct, acct_errors)
    })
    .await;
    assert_eq!(first, PamCode::AUTH_ERR);
    assert_eq!(
        infos,
        vec![
            "Code rejected, 2 attempts left".to_string(),
            "Code rejected, 1 attempt left".to_string()
        ]
    );
    assert_eq!(
        errors,
        vec!["Too many failures: try again in 60 s".to_string()]
    );
    assert_eq!(
        second,
        PamCode::AUTH_ERR,
        "locked: even the right code is refused"
    );
    assert_eq!(
        acct,
        PamCode::PERM_DENIED,
        "account management refuses a locked account"
    );
    assert!(
        acct_errors
            .iter()
            .any(|e| e.starts_with("Too many failures")),
        "{acct_errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_down_is_auth_err_with_a_message() {
    let srv = TestServer::start().await.unwrap();
    let mut agent = TestAgent::start(&srv).await.unwrap();
    let conf = agent.pam_conf("login").unwrap();
    agent.stop().await;
    let (code, errors) = run_blocking(move || {
        let mut pam = PamHarness::new("login", "alice", conf.path()).unwrap();
        pam.answer("123456");
        (pam.authenticate(0), pam.texts(MsgStyle::ErrorMsg))
    })
    .await;
    assert_eq!(code, PamCode::AUTH_ERR);
    assert_eq!(
        errors,
        vec!["MFA agent unavailable: login refused".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_is_auth_err_never_password_only() {
    let mut srv = TestServer::start().await.unwrap();
    srv.add_user_with_token("carol", TokenKind::Totp)
        .await
        .unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    srv.stop().await;
    let conf = agent.pam_conf("sshd").unwrap();
    let (code, errors) = run_blocking(move || {
        let mut pam = PamHarness::new("sshd", "carol", conf.path()).unwrap();
        (pam.authenticate(0), pam.texts(MsgStyle::ErrorMsg))
    })
    .await;
    assert_eq!(code, PamCode::AUTH_ERR);
    assert_eq!(
        errors,
        vec![
            "No offline login is prepared for carol on this machine: log in once while connected"
                .to_string()
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_and_close_session_reach_the_agent() {
    let srv = TestServer::start().await.unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = agent.pam_conf("login").unwrap();
    let socket = agent.socket.clone();
    let (opened, during, closed, after) = run_blocking(move || {
        let mut pam = PamHarness::new("login", "dora", conf.path()).unwrap();
        pam.putenv("XDG_SESSION_ID", "c42").unwrap();
        let opened = pam.open_session(0);
        let during = latchkey_agent::terminal::status(&socket)
            .unwrap()
            .open_sessions;
        let closed = pam.close_session(0);
        let after = latchkey_agent::terminal::status(&socket)
            .unwrap()
            .open_sessions;
        (opened, during, closed, after)
    })
    .await;
    assert_eq!((opened, closed), (PamCode::SUCCESS, PamCode::SUCCESS));
    assert_eq!(during.len(), 1, "{during:?}");
    assert_eq!(
        (
            during[0].user.as_str(),
            during[0].service.as_str(),
            during[0].session_id.as_deref()
        ),
        ("dora", "login", Some("c42"))
    );
    assert!(after.is_empty(), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_through_pam_shows_the_number_and_waits_for_approval() {
    use latchkey_testkit::token_app::SoftApp;
    let srv = TestServer::start().await.unwrap();
    srv.add_user("erin", &[]).await.unwrap();
    let app = SoftApp::register(&srv, "erin").await.unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = agent.pam_conf("sudo").unwrap();
    let (number_tx, number_rx) = std::sync::mpsc::channel::<u32>();
    let pam = tokio::task::spawn_blocking(move || {
        let mut pam = PamHarness::new("sudo", "erin", conf.path()).unwrap();
        pam.answer("");
        pam.observe(move |m| {
            if m.text.starts_with("Push sent") {
                let n = m
                    .text
                    .split_whitespace()
                    .find_map(|w| w.parse().ok())
                    .unwrap();
                number_tx.send(n).unwrap();
            }
        });
        (
            pam.authenticate(0),
            pam.prompts(),
            pam.texts(MsgStyle::TextInfo),
        )
    });
    let number = tokio::task::spawn_blocking(move || {
        number_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap()
    })
    .await
    .unwrap();
    let reqs = app.pending(5).await.unwrap();
    assert_eq!(reqs.len(), 1);
    assert!(app.approve(&reqs[0], number).await.unwrap().ok);
    let (code, prompts, infos) = pam.await.unwrap();
    assert_eq!(code, PamCode::SUCCESS);
    assert_eq!(
        prompts,
        vec!["Press Enter to send a push, or type a one-time code for erin:".to_string()]
    );
    assert_eq!(
        infos,
        vec![format!(
            "Push sent: type {number} in the latchkey app to approve"
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_socket_served_by_another_user_is_not_trusted() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(1)
        != 0
    {
        eprintln!("skipped: this test must run as root to start a fake agent as nobody");
        return;
    }
    // A fake "agent" run by nobody that says Success to anything: the module must not believe it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut p = dir.path().parent().unwrap().to_path_buf();
    while p.starts_with(std::env::temp_dir()) && p != std::env::temp_dir() {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p = p.parent().unwrap().to_path_buf();
    }
    let socket = dir.path().join("evil.sock");
    let script = r#"
import json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); s.listen(4)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        while True:
            h = c.recv(4)
            if len(h) < 4: break
            n = struct.unpack(">I", h)[0]; c.recv(n)
            body = json.dumps({"reply": "step", "step": "success", "message": "trust me"}).encode()
            c.sendall(struct.pack(">I", len(body)) + body)
    finally:
        c.close()
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&socket)
        .uid(65534)
        .gid(65534)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test (scripts/test installs it)");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    let conf = PamConfDir::latchkey("sudo", &[&format!("socket={}", socket.display())]).unwrap();
    let (code, errors) = run_blocking(move || {
        let mut pam = PamHarness::new("sudo", "root", conf.path()).unwrap();
        pam.answer("123456");
        (pam.authenticate(0), pam.texts(MsgStyle::ErrorMsg))
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, PamCode::AUTH_ERR);
    assert_eq!(
        errors,
        vec!["MFA agent unavailable: login refused".to_string()]
    );
}
