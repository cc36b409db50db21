//! The token app answering pushes: approval and denial with number matching for a machine's
//! login, `watch`, forged and replayed answers, a revoked app, badge in and out.

use super::*;

/// A machine starts a login for `user` and asks for a push: (tx, number on the screen).
async fn push_login(machine: &Client, user: &str) -> (String, u32) {
    let start: LoginStartResult = machine
        .post(
            "/v1/login/start",
            &LoginStart {
                user: user.parse().unwrap(),
                client_id: "remote".parse().unwrap(),
                rhost: Some("10.1.2.3".into()),
                tty: None,
                enroll: false,
            },
        )
        .await
        .unwrap();
    let LoginStartResult::Challenge { tx, methods, .. } = start else {
        panic!("no challenge: {start:?}")
    };
    assert!(methods.contains(&Method::Push), "{methods:?}");
    let (_, body) = machine
        .request(HttpMethod::POST, &format!("/v1/login/{tx}/push"), None)
        .await
        .unwrap();
    match serde_json::from_slice(&body).unwrap() {
        PushStartResult::Started(p) => (tx.into_string(), p.number),
        PushStartResult::Step(s) => panic!("push not started: {s:?}"),
    }
}

/// What the login screen learns after the app answered.
async fn push_outcome(machine: &Client, tx: &str) -> LoginStepResult {
    let (_, body) = machine
        .request(
            HttpMethod::POST,
            &format!("/v1/login/{tx}/push/wait?wait=5"),
            None,
        )
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

fn other_than(n: u32) -> u32 {
    if n == 99 { 10 } else { n + 1 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_with_the_right_number_lets_the_login_in() {
    let srv = TestServer::start().await.unwrap();
    let t = registered(&srv, "erin").await;
    let (_, machine) = srv.join_machine("ws").await.unwrap();
    let (tx, number) = push_login(&machine, "erin").await;
    let out = t
        .ok(&["approve", &tx, "--number", &number.to_string()])
        .await;
    assert_eq!(out, "Login approved\n");
    assert!(
        matches!(
            push_outcome(&machine, &tx).await,
            LoginStepResult::Success { .. }
        ),
        "login not let in"
    );
    // Answering again: the request is no longer waiting.
    let again = t
        .run(&["approve", &tx, "--number", &number.to_string()])
        .await;
    let line = one_error_line(&again, 1);
    assert!(line.contains("is not waiting"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_with_a_wrong_number_refuses_the_login() {
    let srv = TestServer::start().await.unwrap();
    let t = registered(&srv, "fred").await;
    let (_, machine) = srv.join_machine("ws").await.unwrap();
    let (tx, number) = push_login(&machine, "fred").await;
    let out = t
        .run(&["approve", &tx, "--number", &other_than(number).to_string()])
        .await;
    let line = one_error_line(&out, 1);
    assert!(line.contains("Wrong number"), "{line}");
    assert_eq!(
        push_outcome(&machine, &tx).await,
        LoginStepResult::Deny {
            reason: "Push refused: the number typed in the app was wrong".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_refuses_the_login_and_records_the_reason() {
    let srv = TestServer::start().await.unwrap();
    let t = registered(&srv, "gail").await;
    let (_, machine) = srv.join_machine("ws").await.unwrap();
    let (tx, _) = push_login(&machine, "gail").await;
    let out = t.ok(&["deny", &tx, "--reason", "not me"]).await;
    assert_eq!(out, "Login denied\n");
    assert_eq!(
        push_outcome(&machine, &tx).await,
        LoginStepResult::Deny {
            reason: "Push denied in the latchkey app".into()
        }
    );
    let audit = srv.audit("gail").await.unwrap();
    assert!(
        audit.iter().any(|a| a.action == "push.respond"
            && a.result == "deny"
            && a.detail.contains("not me")),
        "{audit:?}"
    );
}

/// Kills the child if the test fails before it exits.
struct Reap(std::process::Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_shows_the_request_at_once_and_sends_the_typed_number() {
    let srv = TestServer::start().await.unwrap();
    let t = registered(&srv, "hank").await;
    let (_, machine) = srv.join_machine("ws").await.unwrap();
    // The watcher is already in its long poll when the login asks.
    let mut c = t.cmd(&["watch", "--once"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Reap(c.spawn().unwrap());
    let mut stdout = child.0.stdout.take().unwrap();
    let (chunks_tx, chunks) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || chunks_tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    let (tx, number) = push_login(&machine, "hank").await;
    let (shown, child) = tokio::task::spawn_blocking(move || {
        let mut text = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&text).contains("(or 'd' to deny):") {
            let left = deadline.saturating_duration_since(Instant::now());
            text.extend(chunks.recv_timeout(left).expect("the question"));
        }
        let mut child = child;
        let stdin = child.0.stdin.as_mut().unwrap();
        writeln!(stdin, "{number}").unwrap();
        (String::from_utf8_lossy(&text).into_owned(), child)
    })
    .await
    .unwrap();
    // A long poll, not a timer: the request shows within moments of the login asking.
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        shown.ends_with(
            "hank@ws (remote) from 10.1.2.3: type the number shown on the login screen (or 'd' to deny): "
        ),
        "{shown:?}"
    );
    let status = tokio::task::spawn_blocking(move || {
        let mut child = child;
        let status = child.0.wait().unwrap();
        let mut err = String::new();
        child
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status, err)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "{}", status.1);
    assert!(
        matches!(
            push_outcome(&machine, &tx).await,
            LoginStepResult::Success { .. }
        ),
        "login not let in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_once_with_a_given_answer_handles_a_waiting_request() {
    let srv = TestServer::start().await.unwrap();
    let t = registered(&srv, "ivy").await;
    let (_, machine) = srv.join_machine("ws").await.unwrap();
    let (tx, number) = push_login(&machine, "ivy").await;
    let wrong = t
        .run(&[
            "watch",
            "--once",
            "--answer",
            &other_than(number).to_string(),
        ])
        .await;
    assert!(one_error_line(&wrong, 1).contains("Wrong number"));
    assert!(matches!(
        push_outcome(&machine, &tx).await,
        LoginStepResult::Deny { .. }
    ));
    let (tx, number) = push_login(&machine, "ivy").await;
    let out = t
        .ok(&["watch", "--once", "--answer", &number.to_string()])
        .await;
    assert!(out.ends_with("Login approved\n"), "{out}");
    assert!(matches!(
        push_outcome(&machine, &tx).await,
        LoginStepResult::Success { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_approval_signature_is_refused() {
    let srv = TestServer::start().await.unwrap();
    let t = registered(&srv, "jack").await;
    let (_, machine) = srv.join_machine("ws").await.unwrap();
    let f = t.open();
    let a = &f.accounts[0];
    let api = AppApi::new(a).unwrap();
    let (tx, number) = push_login(&machine, "jack").await;
    let req = api.pending(0).await.unwrap().remove(0);
    assert_eq!(req.tx, tx);
    let signed = response(
        a,
        &tx.parse().unwrap(),
        &req.nonce,
        &Answer::Number(number),
        None,
    );
    assert!(api.respond(&signed).await.unwrap().ok);
    assert!(matches!(
        push_outcome(&machine, &tx).await,
        LoginStepResult::Success { .. }
    ));
    // The same signed answer, sent again: refused.
    assert!(!api.respond(&signed).await.unwrap().ok);
    // Replayed onto the next login (new transaction and nonce): refused, and that login
    // is still waiting for a real answer.
    let (tx2, number2) = push_login(&machine, "jack").await;
    let mut moved = signed.clone();
    moved.tx = tx2.parse().unwrap();
    let v = api.respond(&moved).await.unwrap();
    assert!(!v.ok, "{v:?}");
    t.ok(&["approve", &tx2, "--number", &number2.to_string()])
        .await;
    assert!(matches!(
        push_outcome(&machine, &tx2).await,
        LoginStepResult::Success { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_signed_by_another_apps_key_is_refused() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("kate", &[]).await.unwrap();
    let t = Token::new();
    t.ok(&[
        "register",
        &link(&srv, "kate", None).await,
        "--name",
        "phone",
    ])
    .await;
    t.ok(&[
        "register",
        &link(&srv, "kate", None).await,
        "--name",
        "tablet",
    ])
    .await;
    let (_, machine) = srv.join_machine("ws").await.unwrap();
    let (tx, number) = push_login(&machine, "kate").await;
    let f = t.open();
    let (phone, tablet) = (&f.accounts[0], &f.accounts[1]);
    assert_eq!(
        (phone.name.as_str(), tablet.name.as_str()),
        ("phone", "tablet")
    );
    let api = AppApi::new(phone).unwrap();
    let req = api.pending(0).await.unwrap().remove(0);
    // Signed by the tablet's key, sent with the phone's app key.
    let forged = response(
        tablet,
        &tx.parse().unwrap(),
        &req.nonce,
        &Answer::Number(number),
        None,
    );
    let v = api.respond(&forged).await.unwrap();
    assert!(!v.ok && v.message.contains("signature"), "{v:?}");
    // Both apps got the request; the phone's own answer still works.
    t.ok(&["approve", &tx, "--number", &number.to_string(), "phone"])
        .await;
    assert!(matches!(
        push_outcome(&machine, &tx).await,
        LoginStepResult::Success { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_app_is_refused() {
    let srv = TestServer::start().await.unwrap();
    let t = registered(&srv, "liam").await;
    let app_id = t.open().accounts[0].app_id.clone();
    srv.admin()
        .unwrap()
        .delete(&format!("/v1/admin/tokens/{app_id}"))
        .await
        .unwrap();
    for args in [&["badge", "in"][..], &["watch", "--once"], &["deny", "tx"]] {
        let line = one_error_line(&t.run(args).await, 1);
        assert!(line.contains("refused this app's key"), "{args:?}: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badge_in_and_out_are_recorded() {
    let srv = TestServer::start().await.unwrap();
    let t = registered(&srv, "mia").await;
    assert_eq!(t.ok(&["badge", "in"]).await, "Badged in\n");
    assert_eq!(t.ok(&["badge", "out"]).await, "Badged out\n");
    let audit = srv.audit("mia").await.unwrap();
    let badges: Vec<&str> = audit
        .iter()
        .filter(|a| a.action == "badge")
        .map(|a| a.detail.as_str())
        .collect();
    assert!(
        badges.contains(&"badged in") && badges.contains(&"badged out"),
        "{audit:?}"
    );
}
