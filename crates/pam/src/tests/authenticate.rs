use super::*;

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
            user: "alice".parse().unwrap(),
            service: "sudo".into(),
            client_id: Some("remote".parse().unwrap()),
            rhost: Some("192.0.2.7".into()),
            tty: Some("/dev/pts/3".into()),
            enroll: None,
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
                copy: None,
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
fn an_enrolment_offer_asks_only_when_there_is_a_choice_and_begin_says_enroll_only_when_told() {
    use latchkey_proto::agent::FirstFactor;
    use latchkey_proto::enroll::EnrollMethod;
    let offer = |methods: Vec<EnrollMethod>, skip: Option<&str>| Step::Enroll {
        text: "No second factor yet".into(),
        methods,
        label: "Enrol which (1-2): ".into(),
        skip: skip.map(str::to_string),
    };
    // One method, no skip: straight on (Continue), the offer's line not shown.
    let mut n = 0;
    let agent = FakeAgent::start(move |req| {
        n += 1;
        match (n, req) {
            (
                1,
                AgentRequest::Begin {
                    enroll: Some(FirstFactor::Verified),
                    ..
                },
            ) => step(offer(vec![EnrollMethod::Totp], None)),
            (2, AgentRequest::Continue) => step(Step::Success {
                message: String::new(),
            }),
            (_, req) => step(Step::Failure {
                reason: format!("unexpected {req:?}"),
            }),
        }
    });
    let pam = FakePam::new("alice");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &["enroll"])),
        PamCode::Success
    );
    assert!(pam.seen().is_empty(), "{:?}", pam.seen());
    // A choice: the text, then the label as an echoed prompt, its answer sent back.
    let mut n = 0;
    let agent = FakeAgent::start(move |req| {
        n += 1;
        match (n, req) {
            (1, AgentRequest::Begin { .. }) => step(offer(
                vec![EnrollMethod::Totp, EnrollMethod::App],
                Some("Press Enter to skip enrolment, 1 login left"),
            )),
            (2, AgentRequest::Answer { text }) if text.expose() == "2" => step(Step::Success {
                message: String::new(),
            }),
            (_, req) => step(Step::Failure {
                reason: format!("unexpected {req:?}"),
            }),
        }
    });
    let pam = FakePam::new("alice").answer("2");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &["enroll"])),
        PamCode::Success
    );
    assert_eq!(
        pam.seen(),
        vec![
            (MsgStyle::TextInfo, "No second factor yet".to_string()),
            (MsgStyle::PromptEchoOn, "Enrol which (1-2): ".to_string()),
        ]
    );
    // Without `enroll` on the line, Begin does not ask for it.
    let agent = FakeAgent::start(|req| match req {
        AgentRequest::Begin { enroll: None, .. } => step(Step::Success {
            message: String::new(),
        }),
        other => step(Step::Failure {
            reason: format!("unexpected {other:?}"),
        }),
    });
    let pam = FakePam::new("alice");
    assert_eq!(
        authenticate(&pam, Flags::default(), &args(&agent, &[])),
        PamCode::Success
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
fn a_user_name_the_server_would_refuse_never_reaches_the_agent() {
    let agent = FakeAgent::start(|_| {
        step(Step::Success {
            message: String::new(),
        })
    });
    for bad in ["alice smith", "../root", "a\u{7}b", ""] {
        let pam = FakePam::new(bad);
        assert_eq!(
            authenticate(&pam, Flags::default(), &args(&agent, &[])),
            PamCode::AuthErr,
            "{bad:?}"
        );
        assert_eq!(
            acct_mgmt(&pam, Flags::default(), &args(&agent, &[])),
            PamCode::PermDenied,
            "{bad:?}"
        );
    }
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
