//! Inline enrolment at the login prompt (docs/enrollment.md), through the documented PAM
//! stack: a real password module (`pam_exec` checking a password, `requisite`) before
//! `pam_latchkey.so enroll`, the real libpam, agent and latchkeyd. The code a phone would
//! show is computed by an implementation of RFC 6238 of the test's own (python's hmac), from
//! the QR code the conversation drew, read back as a phone reads it.

use crate::support::{offline, run_blocking, texts};
use latchkey_proto::TokenKind;
use latchkey_proto::admin::TokenInfo;
use latchkey_proto::routes;
use latchkey_testkit::TestServer;
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::camera::GreyImage;
use latchkey_testkit::pam_harness::{
    ConvMessage, MsgStyle, PamCode, PamConfDir, PamHarness, module_path,
};
use latchkey_testkit::token_cli::TokenCli;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

const PASSWORD: &str = "correct horse";

/// The stack docs/enrollment.md shows: the password module `requisite`, so a wrong password
/// ends the stack before latchkey runs, then `pam_latchkey.so enroll`.
fn enrol_stack(agent: &TestAgent, service: &str) -> PamConfDir {
    let conf = PamConfDir::new().unwrap();
    let check = conf.path().join("check-password");
    std::fs::write(
        &check,
        format!("#!/bin/sh\n[ \"$(tr -d '\\000')\" = \"{PASSWORD}\" ]\n"),
    )
    .unwrap();
    std::fs::set_permissions(&check, std::fs::Permissions::from_mode(0o755)).unwrap();
    let module = module_path().unwrap();
    let socket = agent.socket.display();
    conf.write_service(
        service,
        &format!(
            "auth requisite pam_exec.so expose_authtok quiet {}\n\
             auth required {} socket={socket} enroll\n\
             account required {} socket={socket}\n",
            check.display(),
            module.display(),
            module.display()
        ),
    )
    .unwrap();
    conf
}

/// RFC 6238 (SHA1, 6 digits, 30 s) written apart from latchkey's, in python.
fn independent_totp(secret_b32: &str) -> String {
    independent_totp_at(secret_b32, 0)
}

/// The code `ahead` seconds from now.
fn independent_totp_at(secret_b32: &str, ahead: u64) -> String {
    let script = "import base64,hmac,hashlib,struct,sys,time\n\
        s=sys.argv[1].upper(); k=base64.b32decode(s+'='*(-len(s)%8))\n\
        h=hmac.new(k,struct.pack('>Q',(int(time.time())+int(sys.argv[2]))//30),hashlib.sha1).digest()\n\
        o=h[-1]&15\n\
        print('%06d'%((struct.unpack('>I',h[o:o+4])[0]&0x7fffffff)%1000000))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, secret_b32, &ahead.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Reads a QR code drawn in half blocks (light modules drawn, dark ones blank) back into a
/// PNG and decodes it with the token app's reader, as a phone's camera would see it.
fn read_half_blocks(picture: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qr.png");
    GreyImage::from_half_blocks(picture, 4)
        .unwrap()
        .write_png(&path)
        .unwrap();
    latchkey_token::offline::read_png(&path).unwrap()
}

/// What a QR step showed: the instruction, the picture, and the text shown for copying.
struct Shown {
    instruction: String,
    picture: String,
    copy: String,
}

fn qr_shown(msgs: &[ConvMessage]) -> Shown {
    let infos = texts(msgs, MsgStyle::TextInfo);
    let at = infos
        .iter()
        .position(|t| t.lines().count() > 10)
        .unwrap_or_else(|| panic!("no QR code shown: {infos:?}"));
    let mut lines = infos[at].lines();
    let instruction = lines.next().unwrap().to_string();
    let picture = lines.collect::<Vec<_>>().join("\n");
    Shown {
        instruction,
        picture,
        copy: infos[at + 1].clone(),
    }
}

/// One login through the enrolment stack: the password, then `respond` answers latchkey's
/// prompts, seeing every message so far.
async fn login(
    conf: Arc<PamConfDir>,
    user: &str,
    password: &str,
    respond: impl FnMut(&[ConvMessage], &str) -> Option<String> + Send + 'static,
) -> (PamCode, Vec<ConvMessage>) {
    let (user, password) = (user.to_string(), password.to_string());
    run_blocking(move || {
        let seen = Arc::new(Mutex::new(Vec::<ConvMessage>::new()));
        let log = seen.clone();
        let mut respond = respond;
        let mut pam = PamHarness::new("login", &user, conf.path()).unwrap();
        pam.answer(password);
        pam.observe(move |m| log.lock().unwrap().push(m.clone()));
        pam.respond_with(move |m| {
            let msgs = seen.lock().unwrap().clone();
            respond(&msgs, &m.text)
        });
        let code = pam.authenticate(0);
        (code, pam.messages())
    })
    .await
}

/// The secret an authenticator app takes from a shown enrolment: from the QR code, checked
/// against the secret shown as text.
fn secret_from(msgs: &[ConvMessage]) -> String {
    let shown = qr_shown(msgs);
    let uri = read_half_blocks(&shown.picture);
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let secret = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap()
        .to_string();
    let typed = shown
        .copy
        .strip_prefix("Secret: ")
        .unwrap()
        .replace(' ', "");
    assert_eq!(typed, secret, "the text secret is the QR code's");
    secret
}

async fn tokens(srv: &TestServer, user: &str) -> Vec<TokenInfo> {
    srv.admin()
        .unwrap()
        .get(&routes::admin_user_tokens(user))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_a_token_enrols_an_authenticator_at_the_prompt() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy("*", &[("enroll.inline", "totp")])
        .await
        .unwrap();
    srv.add_user("carol", &[]).await.unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = Arc::new(enrol_stack(&agent, "login"));

    let (code, msgs) = login(conf.clone(), "carol", PASSWORD, |msgs, prompt| {
        assert!(prompt.starts_with("Type the first code"), "{prompt}");
        Some(independent_totp(&secret_from(msgs)))
    })
    .await;
    assert_eq!(code, PamCode::SUCCESS, "{msgs:?}");
    let shown = qr_shown(&msgs);
    assert!(
        shown
            .instruction
            .starts_with("Scan with your authenticator app"),
        "{}",
        shown.instruction
    );
    // Fits an 80×24 terminal: the instruction, the picture, the secret and the prompt.
    let rows = shown.picture.lines().count();
    assert!(rows + 3 <= 24, "{rows} rows of QR code");
    let lines: usize = msgs.iter().map(|m| m.text.lines().count()).sum();
    assert!(
        lines <= 24 + 1,
        "{lines} lines with the password prompt: {msgs:?}"
    );
    assert!(shown.picture.lines().all(|l| l.chars().count() <= 80));
    let found = tokens(&srv, "carol").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, TokenKind::Totp);
    let audit = srv.audit("carol").await.unwrap();
    for action in ["enroll.start", "enroll.done"] {
        assert!(
            audit.iter().any(|a| a.action == action && a.result == "ok"),
            "{action}: {audit:?}"
        );
    }

    // The next login asks for a code of that token, with no offer.
    let secret = secret_from(&msgs);
    let (code, msgs) = login(conf, "carol", PASSWORD, move |_, prompt| {
        assert_eq!(prompt, "One-time code for carol:");
        // The confirming code was used: the app's next one (the server takes one step of
        // drift) logs in, the same one would be a replay.
        Some(independent_totp_at(&secret, 30))
    })
    .await;
    assert_eq!(code, PamCode::SUCCESS, "{msgs:?}");
    assert!(
        !msgs.iter().any(|m| m.text.contains("enrol")),
        "no offer once a token exists: {msgs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_never_reaches_an_enrolment_offer() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy("*", &[("enroll.inline", "totp")])
        .await
        .unwrap();
    srv.add_user("dave", &[]).await.unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = Arc::new(enrol_stack(&agent, "login"));
    let conf_path = conf.path().to_path_buf();
    let (code, msgs) = login(conf.clone(), "dave", "wrong horse", |_, prompt| {
        panic!("latchkey asked {prompt:?} after a wrong password")
    })
    .await;
    // pam_exec's refusal (PAM_SYSTEM_ERR); `requisite` ends the stack there.
    assert_ne!(code, PamCode::SUCCESS, "{msgs:?}");
    assert_eq!(
        msgs.iter().filter(|m| m.style.is_prompt()).count(),
        1,
        "{msgs:?}"
    );
    let logins = |audit: Vec<latchkey_proto::admin::AuditEntry>| -> Vec<String> {
        audit
            .into_iter()
            .filter(|a| a.action.starts_with("login.") || a.action.starts_with("enroll."))
            .map(|a| a.action)
            .collect()
    };
    let heard = logins(srv.audit("dave").await.unwrap());
    assert!(heard.is_empty(), "the server never heard of it: {heard:?}");
    assert!(tokens(&srv, "dave").await.is_empty());

    // Why the docs insist on `requisite`: with `required` the stack runs on after the wrong
    // password and latchkey would hand the enrolment to whoever typed it.
    let stack = std::fs::read_to_string(conf_path.join("login")).unwrap();
    let risky = PamConfDir::new().unwrap();
    risky
        .write_service(
            "login",
            &stack.replacen("auth requisite", "auth required", 1),
        )
        .unwrap();
    let offered = Arc::new(Mutex::new(false));
    let seen = offered.clone();
    let (code, _) = login(Arc::new(risky), "dave", "wrong horse", move |_, _| {
        *seen.lock().unwrap() = true;
        None
    })
    .await;
    assert_ne!(code, PamCode::SUCCESS);
    assert!(
        *offered.lock().unwrap(),
        "a `required` password module does not stop it"
    );
    assert!(tokens(&srv, "dave").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_first_codes_retry_then_refuse_and_a_second_enrolment_waits_its_turn() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy("*", &[("enroll.inline", "totp"), ("max_attempts", "2")])
        .await
        .unwrap();
    srv.add_user("erin", &[]).await.unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = Arc::new(enrol_stack(&agent, "login"));

    // Two wrong first codes: a retry, then the refusal; no token is kept.
    let (code, msgs) = login(conf.clone(), "erin", PASSWORD, |msgs, _| {
        let right = independent_totp(&secret_from(msgs));
        Some(crate::support::wrong(&right))
    })
    .await;
    assert_eq!(code, PamCode::AUTH_ERR, "{msgs:?}");
    let infos = texts(&msgs, MsgStyle::TextInfo);
    assert!(
        infos.iter().any(|t| t == "Code rejected, 1 attempt left"),
        "{infos:?}"
    );
    assert!(tokens(&srv, "erin").await.is_empty());
    let audit = srv.audit("erin").await.unwrap();
    assert!(audit.iter().any(|a| a.action == "enroll.fail"), "{audit:?}");

    // A new login may start a new enrolment (the failed one is over). While it waits at
    // its prompt, a second login of erin is refused its own.
    let (tx_started, started) = std::sync::mpsc::channel::<()>();
    let (tx_go, go) = std::sync::mpsc::channel::<()>();
    let first = tokio::spawn(login(conf.clone(), "erin", PASSWORD, move |msgs, _| {
        tx_started.send(()).unwrap();
        go.recv().unwrap();
        Some(independent_totp(&secret_from(msgs)))
    }));
    run_blocking(move || started.recv().unwrap()).await;
    let (code, msgs) = login(conf, "erin", PASSWORD, |_, prompt| {
        panic!("a second enrolment was offered: {prompt:?}")
    })
    .await;
    assert_eq!(code, PamCode::AUTH_ERR);
    let errors = texts(&msgs, MsgStyle::ErrorMsg);
    assert!(
        errors.iter().any(|e| e.contains("already in progress")),
        "{errors:?}"
    );
    tx_go.send(()).unwrap();
    let (code, msgs) = first.await.unwrap();
    assert_eq!(
        code,
        PamCode::SUCCESS,
        "the first enrolment still finishes: {msgs:?}"
    );
    assert_eq!(tokens(&srv, "erin").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_enrolment_expires() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy("*", &[("enroll.inline", "totp"), ("enroll.ttl", "60s")])
        .await
        .unwrap();
    srv.add_user("fay", &[]).await.unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = Arc::new(enrol_stack(&agent, "login"));
    // The person walks away for longer than the enrolment lives.
    let (code, msgs) = login(conf, "fay", PASSWORD, |msgs, _| {
        let code = independent_totp(&secret_from(msgs));
        std::thread::sleep(std::time::Duration::from_secs(61));
        Some(code)
    })
    .await;
    assert_eq!(code, PamCode::AUTH_ERR, "{msgs:?}");
    let errors = texts(&msgs, MsgStyle::ErrorMsg);
    assert!(
        errors.iter().any(|e| e.starts_with("Enrolment expired")),
        "{errors:?}"
    );
    assert!(tokens(&srv, "fay").await.is_empty());
    let audit = srv.audit("fay").await.unwrap();
    assert!(
        audit.iter().any(|a| a.action == "enroll.expired"),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_logins_are_counted_and_end() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy(
        "*",
        &[("enroll.inline", "totp"), ("enroll.grace_logins", "2")],
    )
    .await
    .unwrap();
    srv.add_user("gus", &[]).await.unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = Arc::new(enrol_stack(&agent, "login"));
    for left in [2, 1] {
        let (code, msgs) = login(conf.clone(), "gus", PASSWORD, move |_, prompt| {
            let plural = if left == 1 { "" } else { "s" };
            assert!(
                prompt.contains(&format!(
                    "Press Enter to skip enrolment, {left} login{plural} left"
                )),
                "{prompt}"
            );
            Some(String::new())
        })
        .await;
        assert_eq!(code, PamCode::SUCCESS, "{msgs:?}");
    }
    // None left: nothing lets gus skip; he walks away at the code prompt.
    let (code, msgs) = login(conf, "gus", PASSWORD, |_, prompt| {
        assert!(!prompt.contains("skip"), "{prompt}");
        None
    })
    .await;
    assert_eq!(code, PamCode::AUTH_ERR, "{msgs:?}");
    let audit = srv.audit("gus").await.unwrap();
    let graces: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "enroll.grace")
        .collect();
    assert_eq!(graces.len(), 2, "{audit:?}");
    assert!(graces.iter().all(|a| a.result == "ok"));
    assert!(tokens(&srv, "gus").await.is_empty());
    // The agent recorded them as logins without a second factor.
    let graced = || async {
        let evs = srv.events("user=gus").await.unwrap();
        evs.iter()
            .filter(|e| e.event.method.as_deref() == Some("grace"))
            .count()
    };
    latchkey_testkit::local::wait_until(10, "two grace events", || async { graced().await >= 2 })
        .await;
    assert_eq!(graced().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_refuses_inline_enrolment_unless_its_own_policy_allows_it() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy(
        "*",
        &[("enroll.inline", "totp"), ("enroll.grace_logins", "5")],
    )
    .await
    .unwrap();
    srv.add_user("hal", &[]).await.unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = PamConfDir::new().unwrap();
    let module = module_path().unwrap();
    conf.write_service(
        "sshd",
        &format!(
            "auth required {} socket={} client_id=remote enroll\n",
            module.display(),
            agent.socket.display()
        ),
    )
    .unwrap();
    let conf = Arc::new(conf);
    let run = |conf: Arc<PamConfDir>| {
        run_blocking(move || {
            let mut pam = PamHarness::new("sshd", "hal", conf.path()).unwrap();
            pam.respond_with(|_| Some(String::new()));
            let code = pam.authenticate(0);
            (code, pam.messages())
        })
    };
    let (code, msgs) = run(conf.clone()).await;
    assert_eq!(code, PamCode::AUTH_ERR, "{msgs:?}");
    assert!(
        msgs.iter().all(|m| !m.style.is_prompt()),
        "no offer, no grace: {msgs:?}"
    );
    // Its own policy turns it on.
    srv.set_policy("remote", &[("enroll.inline", "totp")])
        .await
        .unwrap();
    let (code, msgs) = run(conf).await;
    assert_eq!(
        code,
        PamCode::SUCCESS,
        "a grace login over remote now: {msgs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_has_a_token_never_gets_an_offer() {
    let srv = TestServer::start().await.unwrap();
    // Elevation takes only push: ivy's TOTP token is no use there, yet she has one.
    srv.set_policy(
        "*",
        &[("enroll.inline", "totp"), ("enroll.grace_logins", "3")],
    )
    .await
    .unwrap();
    srv.set_policy("elevation", &[("methods", "push")])
        .await
        .unwrap();
    srv.add_user_with_token("ivy", TokenKind::Totp)
        .await
        .unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = Arc::new(enrol_stack(&agent, "login"));
    let stack = std::fs::read_to_string(conf.path().join("login")).unwrap();
    conf.write_service(
        "sudo",
        &stack.replace(" enroll", " client_id=elevation enroll"),
    )
    .unwrap();
    let (code, msgs) = run_blocking(move || {
        let mut pam = PamHarness::new("sudo", "ivy", conf.path()).unwrap();
        pam.answer(PASSWORD);
        let code = pam.authenticate(0);
        (code, pam.messages())
    })
    .await;
    assert_eq!(code, PamCode::AUTH_ERR, "{msgs:?}");
    assert_eq!(
        msgs.iter().filter(|m| m.style.is_prompt()).count(),
        1,
        "only the password: {msgs:?}"
    );
    let audit = srv.audit("ivy").await.unwrap();
    assert!(
        !audit.iter().any(|a| a.action.starts_with("enroll.")),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_app_enrolled_at_the_prompt_finishes_by_push_and_then_logs_in_offline() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy("*", &[("enroll.inline", "app")])
        .await
        .unwrap();
    srv.add_user("jo", &[]).await.unwrap();
    let mut agent = TestAgent::start(&srv).await.unwrap();
    let conf = Arc::new(enrol_stack(&agent, "login"));
    let token = Arc::new(TokenCli::new().unwrap());
    let app = token.clone();
    let (code, msgs) = run_blocking(move || {
        let mut pam = PamHarness::new("login", "jo", conf.path()).unwrap();
        pam.answer(PASSWORD);
        let helpers = Arc::new(Mutex::new(Vec::<std::thread::JoinHandle<()>>::new()));
        let person = helpers.clone();
        let (number_tx, number_rx) = std::sync::mpsc::channel::<String>();
        let mut number_rx = Some(number_rx);
        pam.observe(move |m| {
            if let Some(link) = m
                .text
                .strip_prefix("Or on the device: latchkey-token register '")
                .and_then(|l| l.strip_suffix('\''))
            {
                // The person registers the app from the link shown, then approves the push.
                let (app, link) = (app.clone(), link.to_string());
                let numbers = number_rx.take().unwrap();
                person.lock().unwrap().push(std::thread::spawn(move || {
                    let out = app.run(&["register", &link]).unwrap();
                    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
                    let number = numbers.recv().unwrap();
                    let out = app.run(&["watch", "--once", "--answer", &number]).unwrap();
                    assert!(
                        out.stdout.ends_with("Login approved\n"),
                        "{}{}",
                        out.stdout,
                        out.stderr
                    );
                }));
            }
            if let Some(rest) = m.text.strip_prefix("Push sent: type ") {
                let number = rest.split_whitespace().next().unwrap().to_string();
                number_tx.send(number).unwrap();
            }
        });
        let code = pam.authenticate(0);
        for h in std::mem::take(&mut *helpers.lock().unwrap()) {
            h.join().unwrap();
        }
        (code, pam.messages())
    })
    .await;
    assert_eq!(code, PamCode::SUCCESS, "{msgs:?}");
    let infos = texts(&msgs, MsgStyle::TextInfo);
    assert!(
        infos
            .iter()
            .any(|t| t.starts_with("Scan with the latchkey token app")),
        "{infos:?}"
    );
    // The QR code carries the registration link the text shows.
    let shown = qr_shown(&msgs);
    let link = read_half_blocks(&shown.picture);
    assert!(shown.copy.contains(&link), "{} vs {link}", shown.copy);
    let audit = srv.audit("jo").await.unwrap();
    assert!(audit.iter().any(|a| a.action == "enroll.done"), "{audit:?}");
    assert!(
        audit
            .iter()
            .any(|a| a.action == "login.push" && a.result == "ok"),
        "{audit:?}"
    );

    // The push login brought the offline bundle: with the server gone, the app's answer
    // to the offline challenge logs jo in.
    let mut srv = srv;
    srv.stop().await;
    let plain = Arc::new(agent.pam_conf("login").unwrap());
    let (code, msgs) =
        offline::offline_login(plain, "jo", move |payload| token.answer(payload).unwrap().1).await;
    assert_eq!(code, PamCode::SUCCESS, "{msgs:?}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_user_cannot_vouch_for_a_password_on_the_agent_socket() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy("*", &[("enroll.inline", "totp")])
        .await
        .unwrap();
    // The attacker's own account (nobody), which has no token yet: enrolling one for it
    // from a shell that never checked a password must not work.
    srv.add_user("nobody", &[]).await.unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let socket = agent.socket.to_str().unwrap().to_string();
    let begin = r#"{"op":"begin","version":1,"user":"nobody","service":"login","client_id":"login","enroll":{"first_factor":"verified"}}"#;
    let reply = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let theirs = reply(&mut crate::support::local::as_nobody(&[
        &socket, "send", begin,
    ]));
    assert!(theirs.contains(r#""step":"failure""#), "{theirs}");
    assert!(!theirs.contains("enroll"), "{theirs}");
    let audit = srv.audit("nobody").await.unwrap();
    assert!(
        !audit.iter().any(|a| a.action.starts_with("enroll.")),
        "{audit:?}"
    );
    // The same request from root (a PAM module in login or sshd) is believed.
    let root = reply(
        std::process::Command::new(env!("CARGO_BIN_EXE_lk-local-caller"))
            .args([&socket, "send", begin]),
    );
    assert!(root.contains(r#""step":"enroll""#), "{root}");
}
