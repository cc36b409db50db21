use super::*;

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
            client_id: Some("elevation".parse().unwrap()),
            socket: "/tmp/a.sock".into(),
            timeout: Duration::from_secs(30),
            debug: true,
            enroll: false,
        }
    );
    let d = Options::parse::<&str>(&[]).unwrap();
    assert_eq!(d.socket, PathBuf::from("/run/latchkey/agent.sock"));
    assert_eq!(
        (d.client_id, d.timeout, d.debug),
        (None, DEFAULT_TIMEOUT, false)
    );
    // `*` names the fallback policy, as it does on the server.
    assert_eq!(
        Options::parse(&["client_id=*"])
            .unwrap()
            .client_id
            .as_deref(),
        Some("*")
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
        // The server's set has no ':' since the validators became one (docs/decisions).
        "client_id=a:b",
        "client_id=**",
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
            user: "alice".parse().unwrap(),
            service: "sudo".into(),
            client_id: Some("login".parse().unwrap())
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
        user: "alice".parse().unwrap(),
        service: "sudo".into(),
        tty: Some("pts/1".into()),
        rhost: Some("192.0.2.7".into()),
        session_id: Some("42".into()),
        client_id: None,
    };
    assert_eq!(
        agent.requests(),
        vec![expect(SessionEvent::Open), expect(SessionEvent::Close)]
    );
    assert!(pam.logs.borrow().is_empty());
}

#[test]
fn a_session_carries_the_client_id_of_the_module_line() {
    let agent = FakeAgent::start(|_| AgentReply::Ack.into());
    let pam = FakePam::new("alice");
    assert_eq!(
        session(
            &pam,
            SessionEvent::Open,
            &args(&agent, &["client_id=elevation"])
        ),
        PamCode::Success
    );
    let requests = agent.requests();
    let [AgentRequest::Session { client_id, .. }] = requests.as_slice() else {
        panic!("{requests:?}");
    };
    assert_eq!(client_id.as_deref(), Some("elevation"));
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
