//! End to end: real servers, a real agent joined with a real join token, logins over the
//! agent's socket.

use crate::support::{assert_success, failure_reason};
use latchkey_proto::TokenKind;
use latchkey_proto::agent::Step;
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::proxy::{Blackhole, ConnectProxy};
use latchkey_testkit::{TestServer, hotp_at, totp_now};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_login_through_the_agent() {
    let srv = TestServer::start().await.unwrap();
    let uri = srv
        .add_user_with_token("alice", TokenKind::Totp)
        .await
        .unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();

    let steps = agent
        .login("alice", "login", &[&totp_now(&uri)])
        .await
        .unwrap();
    assert_eq!(
        steps[0],
        Step::Prompt {
            label: "One-time code for alice:".into(),
            echo: false
        }
    );
    assert_success(&steps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_then_lockout_with_clear_words() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy(
        "login",
        &[("lockout_threshold", "3"), ("max_attempts", "5")],
    )
    .await
    .unwrap();
    let uri = srv
        .add_user_with_token("bob", TokenKind::Hotp)
        .await
        .unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let wrong = hotp_at(&uri, 500);

    let steps = agent
        .login("bob", "login", &[&wrong, &wrong, &wrong])
        .await
        .unwrap();
    assert_eq!(
        steps[1],
        Step::Info {
            text: "Code rejected, 4 attempts left".into()
        },
        "{steps:?}"
    );
    assert_eq!(
        steps[3],
        Step::Info {
            text: "Code rejected, 3 attempts left".into()
        },
        "{steps:?}"
    );
    assert_eq!(
        failure_reason(&steps),
        "Too many failures: try again in 60 s"
    );
    // Locked: the next login fails at once with the same words.
    let steps = agent
        .login("bob", "login", &[&hotp_at(&uri, 0)])
        .await
        .unwrap();
    assert!(
        failure_reason(&steps).starts_with("Too many failures: try again in"),
        "{steps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_is_a_refusal_never_a_pass() {
    let mut srv = TestServer::start().await.unwrap();
    srv.add_user_with_token("carol", TokenKind::Totp)
        .await
        .unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    srv.stop().await;
    let steps = agent.login("carol", "login", &["123456"]).await.unwrap();
    assert_eq!(
        failure_reason(&steps),
        "No offline login is prepared for carol on this machine: log in once while connected"
    );
}

/// Three instances over one store; `stopped` of them is down.
async fn three_servers() -> (TestServer, TestServer, TestServer) {
    let a = TestServer::start().await.unwrap();
    let b = TestServer::start_sharing(&a).await.unwrap();
    let c = TestServer::start_sharing(&a).await.unwrap();
    (a, b, c)
}

async fn challenges(servers: [&TestServer; 3]) -> [u64; 3] {
    let mut out = [0; 3];
    for (i, s) in servers.iter().enumerate() {
        out[i] = s.login_count("start", "challenge").await.unwrap_or(0);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_selection_fails_over_in_order() {
    let (mut a, b, c) = three_servers().await;
    let uri = a.add_user_with_token("dan", TokenKind::Hotp).await.unwrap();
    let urls = vec![a.url(), b.url(), c.url()];
    let agent = TestAgent::start_with(&a, |s| s.servers = urls)
        .await
        .unwrap();
    assert_success(
        &agent
            .login("dan", "login", &[&hotp_at(&uri, 0)])
            .await
            .unwrap(),
    );
    a.stop().await;
    for i in 1..4 {
        assert_success(
            &agent
                .login("dan", "login", &[&hotp_at(&uri, i)])
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        challenges([&b, &b, &c]).await,
        [3, 3, 0],
        "all failover logins went to the second server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balanced_selection_spreads_over_the_live_servers() {
    let (a, b, mut c) = three_servers().await;
    let uri = a
        .add_user_with_token("erin", TokenKind::Hotp)
        .await
        .unwrap();
    let urls = vec![a.url(), b.url(), c.url()];
    let agent = TestAgent::start_with(&a, |s| {
        s.servers = urls;
        s.selection = "balanced".into();
    })
    .await
    .unwrap();
    c.stop().await;
    for i in 0..12 {
        assert_success(
            &agent
                .login("erin", "login", &[&hotp_at(&uri, i)])
                .await
                .unwrap(),
        );
    }
    // Count every login request (start and code) each live server answered.
    let mut counts = [0u64; 2];
    for (i, s) in [&a, &b].iter().enumerate() {
        counts[i] = s.login_count("start", "challenge").await.unwrap()
            + s.login_count("otp", "success").await.unwrap();
    }
    assert_eq!(counts[0] + counts[1], 24);
    assert!(
        counts[0] >= 6 && counts[1] >= 6,
        "both live servers get requests: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_selection_keeps_a_user_on_one_server() {
    let (a, b, c) = three_servers().await;
    let names: Vec<String> = (0..12).map(|i| format!("user{i}")).collect();
    let mut uris = Vec::new();
    for n in &names {
        uris.push(a.add_user_with_token(n, TokenKind::Hotp).await.unwrap());
    }
    let urls = vec![a.url(), b.url(), c.url()];
    let agent = TestAgent::start_with(&a, |s| {
        s.servers = urls;
        s.selection = "consistent".into();
    })
    .await
    .unwrap();
    // Each user logs in twice; each pair lands on one server (counts per server are even
    // per user, seen as: total per server is a multiple of 2 and more than one server used).
    let mut per_user = Vec::new();
    for (n, uri) in names.iter().zip(&uris) {
        let before = challenges([&a, &b, &c]).await;
        assert_success(&agent.login(n, "login", &[&hotp_at(uri, 0)]).await.unwrap());
        assert_success(&agent.login(n, "login", &[&hotp_at(uri, 1)]).await.unwrap());
        let after = challenges([&a, &b, &c]).await;
        let delta: Vec<u64> = after.iter().zip(before).map(|(x, y)| x - y).collect();
        assert!(delta.contains(&2), "{n} stayed on one server: {delta:?}");
        per_user.push(delta.iter().position(|d| *d == 2).unwrap());
    }
    per_user.sort();
    per_user.dedup();
    assert!(
        per_user.len() >= 2,
        "users spread over servers: {per_user:?}"
    );
    let _ = (&b, &c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_skips_a_hung_server_on_the_next_login() {
    let srv = TestServer::start().await.unwrap();
    let uri = srv
        .add_user_with_token("fay", TokenKind::Hotp)
        .await
        .unwrap();
    let hole = Blackhole::start().await.unwrap();
    let urls = vec![hole.url.clone(), srv.url()];
    let agent = TestAgent::start_with(&srv, |s| {
        s.servers = urls;
        s.connect_timeout = "1s".into();
    })
    .await
    .unwrap();
    let t0 = Instant::now();
    assert_success(
        &agent
            .login("fay", "login", &[&hotp_at(&uri, 0)])
            .await
            .unwrap(),
    );
    let first = t0.elapsed();
    let t1 = Instant::now();
    assert_success(
        &agent
            .login("fay", "login", &[&hotp_at(&uri, 1)])
            .await
            .unwrap(),
    );
    let second = t1.elapsed();
    assert!(
        first >= Duration::from_millis(900),
        "the first login waited on the hung server: {first:?}"
    );
    assert!(
        second < Duration::from_millis(500),
        "the second login skipped it: {second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_is_refused_at_join() {
    let srv = TestServer::start().await.unwrap();
    let err = TestAgent::start_with(&srv, |s| {
        s.pin = Some(format!("sha256:{}", "ab".repeat(32)))
    })
    .await
    .err()
    .expect("join must fail");
    let text = format!("{err:#}");
    assert!(text.contains("pin"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_path_goes_through_connect() {
    let srv = TestServer::start().await.unwrap();
    let uri = srv
        .add_user_with_token("gus", TokenKind::Totp)
        .await
        .unwrap();
    let proxy = ConnectProxy::start().await.unwrap();
    let purl = proxy.url.clone();
    let agent = TestAgent::start_with(&srv, |s| s.proxy = Some(purl))
        .await
        .unwrap();
    let before = proxy.tunnels();
    assert_success(
        &agent
            .login("gus", "login", &[&totp_now(&uri)])
            .await
            .unwrap(),
    );
    assert!(proxy.tunnels() > before, "the login went through the proxy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_agent_works_and_its_absence_is_refused() {
    let srv = TestServer::start().await.unwrap();
    let uri = srv
        .add_user_with_token("hal", TokenKind::Hotp)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["agent-host".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let (c2, k2) = (cert.clone(), key.clone());
    let agent = TestAgent::start_with(&srv, |s| s.client_cert = Some((c2, k2)))
        .await
        .unwrap();
    assert!(
        !agent.config_dir.join("machine.key").exists(),
        "the certificate is the only credential"
    );
    assert_success(
        &agent
            .login("hal", "login", &[&hotp_at(&uri, 0)])
            .await
            .unwrap(),
    );

    // The same agent configuration without the certificate: the server refuses the machine.
    let mut cfg = std::fs::read_to_string(agent.config_dir.join("agent.toml")).unwrap();
    cfg = cfg
        .lines()
        .filter(|l| !l.starts_with("client_cert") && !l.starts_with("client_key"))
        .collect::<Vec<_>>()
        .join("\n");
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::write(dir2.path().join("agent.toml"), cfg).unwrap();
    std::fs::write(dir2.path().join("machine.key"), "lkm_notmine\n").unwrap();
    let other = latchkey_agent::start(latchkey_agent::RunOptions {
        config_dir: dir2.path().to_path_buf(),
        socket: Some(dir2.path().join("a.sock")),
    })
    .await
    .unwrap();
    let steps = latchkey_testkit::agent::socket_login(
        &dir2.path().join("a.sock"),
        "hal",
        "login",
        &["1".into()],
    )
    .unwrap();
    assert_eq!(
        failure_reason(&steps),
        "Login refused: this machine is not accepted by the MFA server"
    );
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_root_caller_cannot_authenticate_another_user() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // Switching to `nobody` needs root (CI runs as root); elsewhere say so instead of failing.
    if std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(1)
        != 0
    {
        eprintln!("skipped: this test must run as root to start a process as nobody");
        return;
    }
    let srv = TestServer::start().await.unwrap();
    srv.add_user("root", &[]).await.unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    // Let `nobody` reach the socket through the temporary directories.
    let mut p = agent.socket.parent().unwrap().to_path_buf();
    while p.starts_with(std::env::temp_dir()) && p != std::env::temp_dir() {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p = p.parent().unwrap().to_path_buf();
    }
    let bin = latchkey_testkit::workspace_bin("latchkey-agent").unwrap();
    let socket = agent.socket.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(["login", "root", "--socket"])
            .arg(&socket)
            .uid(65534)
            .gid(65534)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not allowed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_failures_are_one_line_and_write_nothing() {
    let srv = TestServer::start().await.unwrap();
    let bin = latchkey_testkit::workspace_bin("latchkey-agent").unwrap();
    let good_token = srv.join_token().await.unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--server".into(),
                srv.url(),
                "--join-token".into(),
                "lkj_bogus".into(),
                "--pin".into(),
                srv.info.tls_fingerprint.clone(),
            ],
            "join token",
        ),
        (
            vec![
                "--server".into(),
                "https://127.0.0.1:1".into(),
                "--join-token".into(),
                good_token.clone(),
                "--pin".into(),
                srv.info.tls_fingerprint.clone(),
            ],
            "no server answered",
        ),
        (
            vec![
                "--server".into(),
                srv.url(),
                "--join-token".into(),
                good_token.clone(),
                "--pin".into(),
                format!("sha256:{}", "0".repeat(64)),
            ],
            "pin",
        ),
        (
            vec![
                "--server".into(),
                srv.url(),
                "--join-token".into(),
                good_token.clone(),
            ],
            "no way to trust",
        ),
    ];
    for (args, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        let bin = bin.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(bin)
                .arg("--config-dir")
                .arg(&etc)
                .arg("join")
                .args(&args)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.starts_with("latchkey-agent: ") && err.contains(needle),
            "{err} lacks {needle}"
        );
        let etc = dir.path().join("etc");
        let leftovers: Vec<_> = std::fs::read_dir(&etc)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(leftovers.is_empty(), "nothing half-written: {leftovers:?}");
    }
    // The token was not spent by the failed attempts: a correct join still works.
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    let args = vec![
        "--server".to_string(),
        srv.url(),
        "--join-token".into(),
        good_token,
        "--pin".into(),
        srv.info.tls_fingerprint.clone(),
        "--state-dir".into(),
        dir.path().join("state").display().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .arg("--config-dir")
            .arg(&etc)
            .arg("join")
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    for f in ["agent.toml", "machine.key"] {
        let mode = std::fs::metadata(dir.path().join("etc").join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_run_concurrently_a_waiting_one_blocks_no_other() {
    use latchkey_proto::agent::{AGENT_PROTOCOL_VERSION, AgentReply, AgentRequest, blocking};
    let srv = TestServer::start().await.unwrap();
    srv.add_user("ann", &[]).await.unwrap();
    srv.add_user("ben", &[]).await.unwrap();
    let (_, ann) = srv.add_token("ann", TokenKind::Hotp).await.unwrap();
    let (_, ben) = srv.add_token("ben", TokenKind::Hotp).await.unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    // Ann's login stops at the prompt (she is slow to type)…
    let socket = agent.socket.clone();
    let mut ann_conn = tokio::task::spawn_blocking(move || {
        let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
        let begin = AgentRequest::Begin {
            version: AGENT_PROTOCOL_VERSION,
            user: "ann".parse().unwrap(),
            service: "login".into(),
            client_id: None,
            rhost: None,
            tty: None,
            enroll: None,
        };
        blocking::write(&mut s, &begin).unwrap();
        let reply: AgentReply = blocking::read(&mut s).unwrap();
        assert!(
            matches!(reply, AgentReply::Step(Step::Prompt { .. })),
            "{reply:?}"
        );
        s
    })
    .await
    .unwrap();
    // …while Ben logs in from start to end.
    let t0 = Instant::now();
    assert_success(
        &agent
            .login("ben", "login", &[&hotp_at(&ben, 0)])
            .await
            .unwrap(),
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    // Then Ann answers on her still-open conversation.
    let code = hotp_at(&ann, 0);
    let reply = tokio::task::spawn_blocking(move || {
        blocking::write(&mut ann_conn, &AgentRequest::Answer { text: code.into() }).unwrap();
        blocking::read::<_, AgentReply>(&mut ann_conn).unwrap()
    })
    .await
    .unwrap();
    assert!(
        matches!(reply, AgentReply::Step(Step::Success { .. })),
        "{reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_servers_circuit_state_and_last_contact() {
    let srv = TestServer::start().await.unwrap();
    let uri = srv
        .add_user_with_token("ivy", TokenKind::Hotp)
        .await
        .unwrap();
    let urls = vec!["https://127.0.0.1:1".to_string(), srv.url()];
    let agent = TestAgent::start_with(&srv, |s| s.servers = urls)
        .await
        .unwrap();
    assert_success(
        &agent
            .login("ivy", "login", &[&hotp_at(&uri, 0)])
            .await
            .unwrap(),
    );
    let socket = agent.socket.clone();
    let st = tokio::task::spawn_blocking(move || latchkey_agent::terminal::status(&socket))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.selection, "ordered");
    assert_eq!(st.servers.len(), 2);
    let (dead, live) = (&st.servers[0], &st.servers[1]);
    assert_eq!(dead.circuit, "open", "{dead:?}");
    assert!(
        dead.retry_in_secs.is_some_and(|s| s > 0 && s <= 30),
        "{dead:?}"
    );
    assert!(
        dead.last_error.as_deref().is_some_and(|e| !e.is_empty()),
        "{dead:?}"
    );
    assert_eq!(live.circuit, "closed", "{live:?}");
    assert!(live.last_contact.is_some(), "{live:?}");
}
