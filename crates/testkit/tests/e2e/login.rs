//! End-to-end tests of the machine login API against a real latchkeyd on a loopback port.

use latchkey_client::{Client, Credential, Method as HttpMethod, StatusCode};
use latchkey_proto::TokenKind;
use latchkey_proto::login::{LoginOtp, LoginStart, LoginStartResult, LoginStepResult};
use latchkey_testkit::{TestServer, hotp_at, totp_now};
use std::time::Duration;

fn start_req(user: &str, client_id: &str) -> LoginStart {
    LoginStart {
        user: user.parse().unwrap(),
        client_id: client_id.parse().unwrap(),
        rhost: Some("10.0.0.7".into()),
        tty: None,
        enroll: false,
    }
}

async fn start(m: &Client, user: &str) -> LoginStartResult {
    m.post("/v1/login/start", &start_req(user, "login"))
        .await
        .expect("login/start")
}

async fn challenge(m: &Client, user: &str) -> String {
    match start(m, user).await {
        LoginStartResult::Challenge {
            tx,
            methods,
            message,
            ..
        } => {
            assert_eq!(methods, vec![latchkey_proto::Method::Otp]);
            assert!(message.contains(user), "{message}");
            tx.into_string()
        }
        other => panic!("expected a challenge, got {other:?}"),
    }
}

async fn answer(m: &Client, tx: &str, code: &str) -> LoginStepResult {
    m.post(
        &format!("/v1/login/{tx}/otp"),
        &LoginOtp { code: code.into() },
    )
    .await
    .expect("login/otp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_login_succeeds_once_and_the_same_code_is_refused_after() {
    let srv = TestServer::start().await.unwrap();
    let (_, m) = srv.join_machine("ws1").await.unwrap();
    let uri = srv
        .add_user_with_token("alice", TokenKind::Totp)
        .await
        .unwrap();
    let code = totp_now(&uri);

    let tx = challenge(&m, "alice").await;
    assert!(matches!(
        answer(&m, &tx, &code).await,
        LoginStepResult::Success { .. }
    ));
    // The transaction is finished: answering it again is refused.
    assert!(matches!(
        answer(&m, &tx, &code).await,
        LoginStepResult::Deny { .. }
    ));

    // A new login with the same code: replay refused, with its own message.
    let tx2 = challenge(&m, "alice").await;
    match answer(&m, &tx2, &code).await {
        LoginStepResult::Retry {
            attempts_left,
            message,
        } => {
            assert_eq!(attempts_left, 2);
            assert!(message.contains("already used"), "{message}");
        }
        other => panic!("replay must be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_the_same_code_give_exactly_one_success() {
    let srv = TestServer::start().await.unwrap();
    // The losers of each race count as failures; keep them from locking the user here.
    srv.set_policy("*", &[("lockout_threshold", "1000")])
        .await
        .unwrap();
    let (_, m) = srv.join_machine("ws1").await.unwrap();
    srv.add_user("bob", &[]).await.unwrap();
    // HOTP gives a fresh code per round without waiting for the clock.
    let (_, uri) = srv.add_token("bob", TokenKind::Hotp).await.unwrap();
    for round in 0..5u64 {
        let code = hotp_at(&uri, round);
        let mut txs = Vec::new();
        for _ in 0..8 {
            txs.push(challenge(&m, "bob").await);
        }
        let answers = answer_all(&m, &txs, &code).await;
        let successes = answers
            .iter()
            .filter(|a| matches!(a, LoginStepResult::Success { .. }))
            .count();
        assert_eq!(successes, 1, "round {round}: {answers:?}");
    }
    // And the same for TOTP within one time step.
    let turi = srv
        .add_user_with_token("carol", TokenKind::Totp)
        .await
        .unwrap();
    let code = totp_now(&turi);
    let mut txs = Vec::new();
    for _ in 0..8 {
        txs.push(challenge(&m, "carol").await);
    }
    let answers = answer_all(&m, &txs, &code).await;
    assert_eq!(
        answers
            .iter()
            .filter(|a| matches!(a, LoginStepResult::Success { .. }))
            .count(),
        1,
        "{answers:?}"
    );
}

/// Answers every transaction with `code` at the same time, each on its own task.
async fn answer_all(m: &Client, txs: &[String], code: &str) -> Vec<LoginStepResult> {
    let mut set = tokio::task::JoinSet::new();
    for tx in txs {
        let (m, tx, code) = (m.clone(), tx.clone(), code.to_string());
        set.spawn(async move { answer(&m, &tx, &code).await });
    }
    set.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotp_look_ahead_accepts_a_skipped_counter_and_resync_recovers_a_far_one() {
    let srv = TestServer::start().await.unwrap();
    let (_, m) = srv.join_machine("ws1").await.unwrap();
    srv.add_user("dan", &[]).await.unwrap();
    let (enrolled, uri) = srv.add_token("dan", TokenKind::Hotp).await.unwrap();
    // Counter 5 is inside the default look-ahead of 10.
    let tx = challenge(&m, "dan").await;
    assert!(matches!(
        answer(&m, &tx, &hotp_at(&uri, 5)).await,
        LoginStepResult::Success { .. }
    ));
    // An older counter is refused afterwards.
    let tx = challenge(&m, "dan").await;
    assert!(matches!(
        answer(&m, &tx, &hotp_at(&uri, 3)).await,
        LoginStepResult::Retry { .. }
    ));
    // Counter 60 is beyond look-ahead: refused, until an admin resynchronises with 60, 61.
    let tx = challenge(&m, "dan").await;
    assert!(matches!(
        answer(&m, &tx, &hotp_at(&uri, 60)).await,
        LoginStepResult::Retry { .. }
    ));
    let admin = srv.admin().unwrap();
    let r: latchkey_proto::admin::VerifyResult = admin
        .post(
            &format!("/v1/admin/tokens/{}/resync", enrolled.token.id),
            &latchkey_proto::admin::TokenResync {
                code1: hotp_at(&uri, 60).into(),
                code2: hotp_at(&uri, 61).into(),
            },
        )
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    let tx = challenge(&m, "dan").await;
    assert!(matches!(
        answer(&m, &tx, &hotp_at(&uri, 62)).await,
        LoginStepResult::Success { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_after_threshold_and_release_after_backoff() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy(
        "login",
        &[
            ("lockout_threshold", "3"),
            ("lockout_backoff", "2s"),
            ("max_attempts", "5"),
        ],
    )
    .await
    .unwrap();
    let (_, m) = srv.join_machine("ws1").await.unwrap();
    let uri = srv
        .add_user_with_token("erin", TokenKind::Totp)
        .await
        .unwrap();
    let good = totp_now(&uri);
    let wrong = if good == "000000" { "111111" } else { "000000" };

    let tx = challenge(&m, "erin").await;
    assert!(matches!(
        answer(&m, &tx, wrong).await,
        LoginStepResult::Retry {
            attempts_left: 4,
            ..
        }
    ));
    assert!(matches!(
        answer(&m, &tx, wrong).await,
        LoginStepResult::Retry {
            attempts_left: 3,
            ..
        }
    ));
    match answer(&m, &tx, wrong).await {
        LoginStepResult::Deny { reason } => assert!(
            reason.starts_with("Too many failures: try again in"),
            "{reason}"
        ),
        other => panic!("third failure must lock, got {other:?}"),
    }
    // Locked: even the right code cannot start a login.
    match start(&m, "erin").await {
        LoginStartResult::Deny { reason } => {
            assert!(reason.contains("Too many failures"), "{reason}")
        }
        other => panic!("locked user must be denied, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let tx = challenge(&m, "erin").await;
    assert!(matches!(
        answer(&m, &tx, &good).await,
        LoginStepResult::Success { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_is_denied_by_default_and_allowed_when_policy_says_so() {
    let srv = TestServer::start().await.unwrap();
    let (_, m) = srv.join_machine("ws1").await.unwrap();
    let denied = start(&m, "nobody").await;
    // Same words as for a user without tokens: the answer does not reveal which it is.
    srv.add_user("tokenless", &[]).await.unwrap();
    let tokenless = start(&m, "tokenless").await;
    match (&denied, &tokenless) {
        (LoginStartResult::Deny { reason: a }, LoginStartResult::Deny { reason: b }) => {
            assert_eq!(a, b)
        }
        other => panic!("both must be denied alike: {other:?}"),
    }
    srv.set_policy("login", &[("unknown_user", "allow")])
        .await
        .unwrap();
    assert!(matches!(
        start(&m, "nobody").await,
        LoginStartResult::Allow { .. }
    ));
    // Other client ids keep the default.
    let r: LoginStartResult = m
        .post("/v1/login/start", &start_req("nobody", "elevation"))
        .await
        .unwrap();
    assert!(matches!(r, LoginStartResult::Deny { .. }));
    // The audit log has the real reasons.
    let audit = srv.audit("nobody").await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.result == "deny" && a.detail.contains("unknown user")),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|a| a.result == "ok" && a.detail.contains("unknown_user=allow")),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_user_is_denied_and_policy_without_mfa_allows() {
    let srv = TestServer::start().await.unwrap();
    let (_, m) = srv.join_machine("ws1").await.unwrap();
    srv.add_user("frank", &["ops"]).await.unwrap();
    srv.add_token("frank", TokenKind::Totp).await.unwrap();
    let admin = srv.admin().unwrap();
    let _: latchkey_proto::admin::User = admin
        .patch(
            "/v1/admin/users/frank",
            &latchkey_proto::admin::UserUpdate {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        start(&m, "frank").await,
        LoginStartResult::Deny { .. }
    ));
    let _: latchkey_proto::admin::User = admin
        .patch(
            "/v1/admin/users/frank",
            &latchkey_proto::admin::UserUpdate {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Scope: MFA off for group "ops" on `unlock` only.
    srv.set_policy("unlock", &[("mfa_required", "false"), ("groups", "ops")])
        .await
        .unwrap();
    let r: LoginStartResult = m
        .post("/v1/login/start", &start_req("frank", "unlock"))
        .await
        .unwrap();
    assert!(matches!(r, LoginStartResult::Allow { .. }), "{r:?}");
    assert!(matches!(
        start(&m, "frank").await,
        LoginStartResult::Challenge { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_expires() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy("login", &[("tx_ttl", "2s")]).await.unwrap();
    let (_, m) = srv.join_machine("ws1").await.unwrap();
    let uri = srv
        .add_user_with_token("gina", TokenKind::Totp)
        .await
        .unwrap();
    let tx = challenge(&m, "gina").await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    match answer(&m, &tx, &totp_now(&uri)).await {
        LoginStepResult::Deny { reason } => assert!(reason.contains("expired"), "{reason}"),
        other => panic!("expired transaction must be denied, got {other:?}"),
    }
    // A transaction id that never existed gets the same answer.
    assert!(matches!(
        answer(&m, "nosuchtx", "123456").await,
        LoginStepResult::Deny { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_cannot_be_answered_by_another_machine() {
    let srv = TestServer::start().await.unwrap();
    let (_, m1) = srv.join_machine("ws1").await.unwrap();
    let (_, m2) = srv.join_machine("ws2").await.unwrap();
    let uri = srv
        .add_user_with_token("hank", TokenKind::Totp)
        .await
        .unwrap();
    let tx = challenge(&m1, "hank").await;
    assert!(matches!(
        answer(&m2, &tx, &totp_now(&uri)).await,
        LoginStepResult::Deny { .. }
    ));
    assert!(matches!(
        answer(&m1, &tx, &totp_now(&uri)).await,
        LoginStepResult::Success { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_rate_limit_answers_429() {
    let srv = TestServer::start_with(|c| {
        c.machine_rate = 1;
        c.machine_burst = 3;
    })
    .await
    .unwrap();
    let (_, m) = srv.join_machine("ws1").await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = m
            .request(
                HttpMethod::POST,
                "/v1/login/start",
                Some(serde_json::to_value(start_req("x", "login")).unwrap()),
            )
            .await;
        statuses.push(match r {
            Ok((s, _)) => s,
            Err(e) => e.status().unwrap_or(StatusCode::IM_A_TEAPOT),
        });
    }
    assert_eq!(&statuses[..3], &[StatusCode::OK; 3]);
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_is_a_machine_credential() {
    let srv = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["ws-cert".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let fp = latchkey_client::cert_sha256_pin(ck.cert.der());
    let req = latchkey_proto::machine::JoinRequest {
        join_token: srv.join_token().await.unwrap(),
        hostname: "ws-cert".into(),
        client_cert_sha256: Some(fp),
    };
    let _: latchkey_proto::machine::JoinResponse = srv
        .anonymous()
        .unwrap()
        .post("/v1/machines/join", &req)
        .await
        .unwrap();
    let m = srv
        .client(Credential::ClientCert {
            cert_pem: cert,
            key_pem: key,
        })
        .unwrap();
    assert!(matches!(
        start(&m, "nobody").await,
        LoginStartResult::Deny { .. }
    ));
    // Another certificate is not a credential.
    let other = rcgen::generate_simple_self_signed(vec!["intruder".to_string()]).unwrap();
    let (c2, k2) = (dir.path().join("c2.pem"), dir.path().join("k2.pem"));
    std::fs::write(&c2, other.cert.pem()).unwrap();
    std::fs::write(&k2, other.key_pair.serialize_pem()).unwrap();
    let m2 = srv
        .client(Credential::ClientCert {
            cert_pem: c2,
            key_pem: k2,
        })
        .unwrap();
    let err = m2
        .post::<_, LoginStartResult>("/v1/login/start", &start_req("x", "login"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED), "{err}");
}
