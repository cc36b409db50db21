//! The phone token app (the web app latchkeyd serves at /app/, docs/token-app.md) in a real
//! Chromium against a real latchkeyd, agent and PAM module: registered from the link the
//! admin's `latchkey token add-app` prints, its TOTP code and its push approval log in
//! through the real libpam, and with latchkeyd gone it still opens (its service worker) and
//! answers the login screen's offline QR read from the camera, or pasted.

use crate::support::{admin_cli, run_blocking, texts};
use latchkey_proto::TokenKind;
use latchkey_proto::admin::TokenInfo;
use latchkey_proto::routes;
use latchkey_testkit::TestServer;
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::browser::{Browser, LaunchOptions, WaitState};
use latchkey_testkit::camera::{
    CAMERA_HEIGHT, CAMERA_WIDTH, GreyImage, y4m_from_grey, y4m_from_qr_picture,
};
use latchkey_testkit::pam_harness::{ConvMessage, MsgStyle, PamCode, PamConfDir, PamHarness};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PIN: &str = "246813";
const SHORT: Duration = Duration::from_secs(15);

struct Phone {
    srv: TestServer,
    agent: TestAgent,
    conf: Arc<PamConfDir>,
    b: Browser,
    camera: PathBuf,
    _dir: tempfile::TempDir,
}

/// The link the admin's command line prints for `user` (`latchkey token add-app`).
async fn admin_link(srv: &TestServer, user: &str) -> String {
    let shown = admin_cli(srv, &["token", "add-app", user], None).await;
    assert!(shown.contains("On a phone: scan the QR code"), "{shown}");
    shown
        .lines()
        .find(|l| l.starts_with("https://"))
        .unwrap_or_else(|| panic!("no link in {shown}"))
        .to_string()
}

/// A blank camera: nothing to read until a test draws a QR code into the feed.
fn blank_camera(path: &std::path::Path) {
    y4m_from_grey(&GreyImage::filled(CAMERA_WIDTH, CAMERA_HEIGHT, 200), path).unwrap();
}

/// latchkeyd with `user`, a joined agent, and the web app registered for `user` in Chromium
/// (375 px wide, as a small phone), its PIN set. Screenshots of each step.
async fn phone(user: &str, opts: impl FnOnce(LaunchOptions) -> LaunchOptions) -> Phone {
    let srv = TestServer::start().await.unwrap();
    srv.add_user(user, &[]).await.unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = Arc::new(agent.pam_conf("login").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let camera = dir.path().join("camera.y4m");
    blank_camera(&camera);
    let link = admin_link(&srv, user).await;
    let launch = opts(
        LaunchOptions::for_server(&srv)
            .unwrap()
            .camera(&camera)
            .viewport(375, 740),
    );
    let mut b = Browser::launch(launch).await.unwrap();
    b.goto(&link).await.unwrap();
    visible(&mut b, "#pin-new", SHORT).await;
    // The one-time code left the address bar as soon as the page read it.
    let here = b.eval("return location.href").await.unwrap();
    assert!(!here.as_str().unwrap().contains("code="), "{here}");
    b.screenshot("set-pin").await.unwrap();
    b.fill("#pin-new", PIN).await.unwrap();
    b.fill("#pin-again", PIN).await.unwrap();
    b.click("#pin-set").await.unwrap();
    visible(&mut b, "#register", SHORT).await;
    b.screenshot("register").await.unwrap();
    b.click("#register").await.unwrap();
    visible(&mut b, &code_selector(user), SHORT).await;
    b.screenshot("home").await.unwrap();
    let tokens: Vec<TokenInfo> = srv
        .admin()
        .unwrap()
        .get(&routes::admin_user_tokens(user))
        .await
        .unwrap();
    assert_eq!(
        tokens.iter().filter(|t| t.kind == TokenKind::App).count(),
        1,
        "the server holds the web app's registration: {tokens:?}"
    );
    Phone {
        srv,
        agent,
        conf,
        b,
        camera,
        _dir: dir,
    }
}

/// Waits for `selector`; on a timeout the panic says what the page showed and logged.
async fn visible(b: &mut Browser, selector: &str, limit: Duration) {
    if let Err(e) = b.wait(selector, WaitState::Visible, limit).await {
        let shown = b.text("main").await.unwrap_or_default();
        let log = b
            .console()
            .await
            .map(|c| format!("{:?} {:?}", c.messages, c.errors));
        let _ = b.screenshot("failed").await;
        panic!("{e}\npage: {shown}\nconsole: {log:?}");
    }
}

fn code_selector(user: &str) -> String {
    format!(".account[data-user=\"{user}\"] .code[data-code]")
}

/// The code the app shows now for `user`, read when it has at least 5 s left.
async fn shown_code(b: &mut Browser, user: &str) -> String {
    for _ in 0..10 {
        let v = b
            .eval_with(
                "const card = document.querySelector(`.account[data-user=\"${arg}\"]`);\n\
                 return [card.querySelector('.code').dataset.code, card.querySelector('.left').textContent];",
                serde_json::json!(user),
            )
            .await
            .unwrap();
        let left: u64 = v[1]
            .as_str()
            .unwrap()
            .trim_end_matches(" s")
            .parse()
            .unwrap_or(0);
        if left >= 5 {
            return v[0].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_secs(left + 1)).await;
    }
    panic!("no code with time left");
}

/// One PAM login (service `login`) whose prompts `respond` answers; every message kept.
async fn pam_login(
    conf: Arc<PamConfDir>,
    user: &str,
    observe: impl FnMut(&ConvMessage) + Send + 'static,
    respond: impl FnMut(&ConvMessage) -> Option<String> + Send + 'static,
) -> (PamCode, Vec<ConvMessage>) {
    let user = user.to_string();
    run_blocking(move || {
        let mut pam = PamHarness::new("login", &user, conf.path()).unwrap();
        // Where the login comes from, as a display manager or xrdp sets it.
        pam.set_rhost("10.9.9.9").unwrap();
        pam.observe(observe);
        pam.respond_with(respond);
        let code = pam.authenticate(0);
        (code, pam.messages())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn registered_from_the_admin_link_its_totp_code_logs_in_through_pam() {
    let mut p = phone("alice", |o| o).await;
    let code = shown_code(&mut p.b, "alice").await;
    assert_eq!(code.len(), 6, "{code}");
    let typed = code.clone();
    let (verdict, msgs) = pam_login(
        p.conf.clone(),
        "alice",
        |_| {},
        move |_| Some(typed.clone()),
    )
    .await;
    assert_eq!(verdict, PamCode::SUCCESS, "{msgs:?}");
    // The same code once more is a replay.
    let (verdict, _) =
        pam_login(p.conf.clone(), "alice", |_| {}, move |_| Some(code.clone())).await;
    assert_eq!(verdict, PamCode::AUTH_ERR);
    p.b.assert_no_page_errors().await.unwrap();
}

/// Starts a push login in the background; returns the number the PAM conversation showed
/// and the login's verdict to await.
async fn push_login(
    conf: Arc<PamConfDir>,
    user: &str,
) -> (u32, tokio::task::JoinHandle<(PamCode, Vec<ConvMessage>)>) {
    let (tx, rx) = mpsc::channel::<String>();
    let tx = Mutex::new(tx);
    let user = user.to_string();
    let login = tokio::spawn(async move {
        pam_login(
            conf,
            &user,
            move |m| {
                if m.style == MsgStyle::TextInfo && m.text.starts_with("Push sent") {
                    let _ = tx.lock().unwrap().send(m.text.clone());
                }
            },
            // The first prompt offers the push: Enter sends it.
            |_| Some(String::new()),
        )
        .await
    });
    let text = run_blocking(move || rx.recv_timeout(SHORT).expect("the push was sent")).await;
    let number = text
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number in {text:?}"));
    (number, login)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn a_push_shown_in_the_web_app_is_approved_with_the_number_from_the_pam_screen() {
    let mut p = phone("alice", |o| o).await;

    let (number, login) = push_login(p.conf.clone(), "alice").await;
    visible(&mut p.b, "form.push", SHORT).await;
    let shown = p.b.text("form.push .context").await.unwrap();
    assert_eq!(
        shown, "alice on test-host (login, from 10.9.9.9)",
        "user, host, context and origin shown"
    );
    p.b.screenshot("push").await.unwrap();
    p.b.fill("form.push input.number", &number.to_string())
        .await
        .unwrap();
    p.b.click("form.push button.approve").await.unwrap();
    let (verdict, msgs) = login.await.unwrap();
    assert_eq!(verdict, PamCode::SUCCESS, "{msgs:?}");
    p.b.wait_text("#notice", "\\S", SHORT).await.unwrap();
    p.b.screenshot("push-approved").await.unwrap();

    // A wrong number refuses the login, and the app says so.
    let (number, login) = push_login(p.conf.clone(), "alice").await;
    visible(&mut p.b, "form.push", SHORT).await;
    let wrong = if number >= 99 { 10 } else { number + 1 };
    p.b.fill("form.push input.number", &wrong.to_string())
        .await
        .unwrap();
    p.b.click("form.push button.approve").await.unwrap();
    let said =
        p.b.wait_text("#notice", "[Ww]rong number", SHORT)
            .await
            .unwrap();
    p.b.screenshot("push-wrong-number").await.unwrap();
    let (verdict, msgs) = login.await.unwrap();
    assert_eq!(verdict, PamCode::AUTH_ERR, "{said}: {msgs:?}");
    assert!(
        texts(&msgs, MsgStyle::ErrorMsg)
            .iter()
            .any(|t| t.contains("number typed in the app was wrong")),
        "{msgs:?}"
    );

    // "This wasn't me" denies it.
    let (_, login) = push_login(p.conf.clone(), "alice").await;
    visible(&mut p.b, "form.push", Duration::from_secs(20)).await;
    p.b.click("form.push button.deny").await.unwrap();
    let (verdict, msgs) = login.await.unwrap();
    assert_eq!(verdict, PamCode::AUTH_ERR);
    assert!(
        texts(&msgs, MsgStyle::ErrorMsg)
            .iter()
            .any(|t| t.contains("denied")),
        "{msgs:?}"
    );
    let audit = p.srv.audit("alice").await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| format!("{e:?}").contains("this wasn't me")),
        "the reason is audited: {audit:?}"
    );
    p.b.assert_no_page_errors().await.unwrap();
}

/// The QR picture of the offline challenge in a PAM conversation: the lines of blocks.
fn qr_picture(text: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.chars().count() > 10 && l.chars().all(|c| matches!(c, '█' | '▀' | '▄' | ' ')))
        .collect();
    (lines.len() > 10).then(|| lines.join("\n"))
}

/// An offline PAM login: `answer` gets the QR picture and the `LK1:` text the conversation
/// showed, and returns what to type (run on the blocking thread of the conversation).
async fn offline_login(
    conf: Arc<PamConfDir>,
    answer: impl FnMut(&str, &str) -> String + Send + 'static,
) -> (PamCode, Vec<ConvMessage>) {
    let shown = Arc::new(Mutex::new((None::<String>, None::<String>)));
    let seen = shown.clone();
    let mut answer = answer;
    pam_login(
        conf,
        "alice",
        move |m| {
            if m.style != MsgStyle::TextInfo {
                return;
            }
            let mut s = seen.lock().unwrap();
            if m.text.starts_with("LK1:") {
                s.1 = Some(m.text.clone());
            } else if let Some(pic) = qr_picture(&m.text) {
                s.0 = Some(pic);
            }
        },
        move |_| {
            let s = shown.lock().unwrap().clone();
            match s {
                (Some(pic), Some(text)) => Some(answer(&pic, &text)),
                _ => None,
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn with_latchkeyd_gone_the_web_app_opens_and_answers_the_offline_qr_from_the_camera() {
    let mut p = phone("alice", |o| o).await;
    // The service worker holds every file before the network goes.
    let cached =
        p.b.eval(
            "const reg = await navigator.serviceWorker.ready;\n\
             const names = await caches.keys();\n\
             const c = await caches.open(names.find((n) => n.startsWith('latchkey-app-')));\n\
             return { active: !!reg.active, files: (await c.keys()).length };",
        )
        .await
        .unwrap();
    assert_eq!(cached["active"], true, "{cached}");
    assert!(cached["files"].as_u64().unwrap() >= 15, "{cached}");

    // Online once (the bundle now holds the web app's X25519 key), then latchkeyd stops.
    let code = shown_code(&mut p.b, "alice").await;
    let (verdict, msgs) =
        pam_login(p.conf.clone(), "alice", |_| {}, move |_| Some(code.clone())).await;
    assert_eq!(verdict, PamCode::SUCCESS, "{msgs:?}");
    let origin = p.srv.url();
    p.srv.stop().await;
    let gone =
        p.b.eval_with(
            "try { await fetch(arg + '/healthz'); return 'reachable'; } catch { return 'gone'; }",
            serde_json::json!(origin),
        )
        .await
        .unwrap();
    assert_eq!(gone, "gone");

    // The app opens from its service worker with no server, asks for its PIN.
    p.b.goto(&format!("{origin}/app/")).await.unwrap();
    visible(&mut p.b, "#pin", SHORT).await;
    p.b.screenshot("offline-unlock").await.unwrap();
    p.b.fill("#pin", PIN).await.unwrap();
    p.b.click("#unlock").await.unwrap();
    visible(&mut p.b, "#go-offline", SHORT).await;

    // The camera: the QR code the PAM conversation drew, played as the camera feed.
    let (tx, rx) = mpsc::channel::<String>();
    let (code_tx, code_rx) = mpsc::channel::<String>();
    let camera = p.camera.clone();
    let login = tokio::spawn(offline_login(p.conf.clone(), move |picture, _text| {
        y4m_from_qr_picture(picture, &camera).unwrap();
        tx.send("camera ready".into()).unwrap();
        code_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the app's code")
    }));
    run_blocking(move || {
        rx.recv_timeout(SHORT)
            .expect("the PAM conversation showed a QR code")
    })
    .await;
    p.b.click("#go-offline").await.unwrap();
    visible(&mut p.b, "#offline-code", Duration::from_secs(30)).await;
    let context = p.b.text("#offline-context").await.unwrap();
    assert!(
        context.starts_with("alice@") && context.contains(", login, expires "),
        "{context}"
    );
    p.b.screenshot("offline-answer-camera").await.unwrap();
    let code =
        p.b.eval("return document.querySelector('#offline-code').dataset.code")
            .await
            .unwrap();
    let code = code.as_str().unwrap().to_string();
    assert_eq!(code.len(), 8, "{code}");
    code_tx.send(code).unwrap();
    let (verdict, msgs) = login.await.unwrap();
    assert_eq!(verdict, PamCode::SUCCESS, "{msgs:?}");

    // The pasted text: a fresh challenge, the camera blank this time.
    blank_camera(&p.camera);
    p.b.click("#offline-back").await.unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let (code_tx, code_rx) = mpsc::channel::<String>();
    let login = tokio::spawn(offline_login(p.conf.clone(), move |_picture, text| {
        tx.send(text.to_string()).unwrap();
        code_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the app's code")
    }));
    let text = run_blocking(move || rx.recv_timeout(SHORT).expect("the LK1: text")).await;
    p.b.click("#go-offline").await.unwrap();
    p.b.fill("#offline-text", &text).await.unwrap();
    p.b.click("#offline-open").await.unwrap();
    visible(&mut p.b, "#offline-code", SHORT).await;
    p.b.screenshot("offline-answer-pasted").await.unwrap();
    let code =
        p.b.eval("return document.querySelector('#offline-code').dataset.code")
            .await
            .unwrap();
    code_tx.send(code.as_str().unwrap().to_string()).unwrap();
    let (verdict, msgs) = login.await.unwrap();
    assert_eq!(verdict, PamCode::SUCCESS, "{msgs:?}");

    // A challenge it cannot answer is refused in one sentence.
    p.b.fill("#offline-text", "LK1:NOT-A-CHALLENGE")
        .await
        .unwrap();
    p.b.click("#offline-open").await.unwrap();
    p.b.wait_text(
        "#offline-status",
        "^This is not a latchkey offline challenge",
        SHORT,
    )
    .await
    .unwrap();
    p.b.assert_no_page_errors().await.unwrap();
    drop(p.agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn the_web_app_and_latchkey_token_answer_the_same_vectors() {
    let vectors: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../token/tests/token-app-vectors.json"
    ))
    .unwrap();
    let srv = TestServer::start().await.unwrap();
    let mut b = Browser::launch(LaunchOptions::for_server(&srv).unwrap())
        .await
        .unwrap();
    b.goto(&format!("{}/app/", srv.url())).await.unwrap();
    let r = b
        .eval_with(include_str!("vectors.js"), vectors.clone())
        .await
        .unwrap();
    assert_eq!(r["bad"], serde_json::json!([]), "{r}");
    assert_eq!(
        r["counts"],
        serde_json::json!([
            vectors["challenges"].as_array().unwrap().len(),
            vectors["push"].as_array().unwrap().len(),
            vectors["badge"].as_array().unwrap().len(),
            vectors["totp"].as_array().unwrap().len()
        ])
    );
    assert!(vectors["challenges"].as_array().unwrap().len() >= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn a_revoked_app_is_told_so_and_wiping_leaves_nothing_in_the_browser() {
    let mut p = phone("alice", |o| o.dark()).await;
    p.b.click(".account .badge-in").await.unwrap();
    p.b.wait_text(".account .status", "\\S", SHORT)
        .await
        .unwrap();
    let kind =
        p.b.eval("return document.querySelector('.account .status').dataset.kind")
            .await
            .unwrap();
    assert_eq!(kind, "ok", "the server took the signed badge");
    p.b.screenshot("badged-in-dark").await.unwrap();

    let tokens: Vec<TokenInfo> = p
        .srv
        .admin()
        .unwrap()
        .get(&routes::admin_user_tokens("alice"))
        .await
        .unwrap();
    let app = tokens.iter().find(|t| t.kind == TokenKind::App).unwrap();
    p.srv
        .admin()
        .unwrap()
        .delete(&routes::admin_token(&app.id))
        .await
        .unwrap();
    // Its next contact with the server tells it.
    p.b.click(".account .badge-out").await.unwrap();
    p.b.wait_text(".account .account-status", "revoked on the server", SHORT)
        .await
        .unwrap();
    p.b.screenshot("revoked").await.unwrap();

    p.b.click("#go-settings").await.unwrap();
    p.b.screenshot("settings").await.unwrap();
    p.b.click("#wipe").await.unwrap();
    p.b.click("#wipe-confirm").await.unwrap();
    visible(&mut p.b, "#wiped", SHORT).await;
    p.b.screenshot("wiped").await.unwrap();
    let left =
        p.b.eval("return (await indexedDB.databases()).map((d) => d.name);")
            .await
            .unwrap();
    assert_eq!(left, serde_json::json!([]), "nothing is left in IndexedDB");
    // Starting again asks for a new PIN: no account, no PIN survived.
    p.b.goto(&format!("{}/app/", p.srv.url())).await.unwrap();
    visible(&mut p.b, "#pin-new", SHORT).await;
    p.b.assert_no_page_errors().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn codes_need_the_pin_and_ten_wrong_pins_wipe_the_app() {
    let mut p = phone("alice", |o| o).await;
    p.b.click("#go-settings").await.unwrap();
    p.b.click("#lock-now").await.unwrap();
    visible(&mut p.b, "#pin", SHORT).await;
    assert_eq!(
        p.b.count(".code").await.unwrap(),
        0,
        "no code on the lock screen"
    );
    for i in 1..=9 {
        p.b.fill("#pin", "000000").await.unwrap();
        p.b.click("#unlock").await.unwrap();
        p.b.wait_text("#pin-status", "Wrong PIN", SHORT)
            .await
            .unwrap();
        if i == 6 {
            let said = p.b.text("#pin-status").await.unwrap();
            assert!(said.contains("4 attempts left"), "{said}");
            p.b.screenshot("wrong-pin").await.unwrap();
        }
        // The next attempt's answer must be a new one, not the last one's text.
        p.b.eval("document.querySelector('#pin-status').textContent = ''")
            .await
            .unwrap();
    }
    // A reload does not reset the count: it is stored before each check.
    p.b.reload().await.unwrap();
    visible(&mut p.b, "#pin", SHORT).await;
    p.b.fill("#pin", "000000").await.unwrap();
    p.b.click("#unlock").await.unwrap();
    visible(&mut p.b, "#wiped", SHORT).await;
    let left =
        p.b.eval("return (await indexedDB.databases()).length")
            .await
            .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn one_app_holds_accounts_on_two_servers() {
    // The second server's certificate is trusted too; its API is called cross-origin (CORS).
    let other = TestServer::start().await.unwrap();
    other.add_user("bob", &[]).await.unwrap();
    let other_spki = LaunchOptions::for_server(&other).unwrap().spki;
    let mut p = phone("alice", move |mut o| {
        o.spki.extend(other_spki);
        o
    })
    .await;
    let link = admin_link(&other, "bob").await;
    p.b.click("#go-add").await.unwrap();
    p.b.fill("#add-link", &link).await.unwrap();
    p.b.click("#add-go").await.unwrap();
    visible(&mut p.b, "#register", SHORT).await;
    p.b.click("#register").await.unwrap();
    visible(&mut p.b, &code_selector("bob"), SHORT).await;
    p.b.screenshot("two-accounts").await.unwrap();

    // Each account's code is its own server's.
    for (srv, user) in [(&p.srv, "alice"), (&other, "bob")] {
        let code = shown_code(&mut p.b, user).await;
        let v: latchkey_proto::admin::VerifyResult = srv
            .admin()
            .unwrap()
            .post(
                &routes::admin_user_verify(user),
                &latchkey_proto::admin::VerifyRequest { code: code.into() },
            )
            .await
            .unwrap();
        assert!(v.ok, "{user}: {v:?}");
    }
    // The same link a second time is refused in one sentence.
    p.b.click("#go-add").await.unwrap();
    p.b.fill("#add-link", &link).await.unwrap();
    p.b.click("#add-go").await.unwrap();
    visible(&mut p.b, "#register", SHORT).await;
    p.b.click("#register").await.unwrap();
    p.b.wait_text("#register-status", "^The server refused this link", SHORT)
        .await
        .unwrap();
    let said = p.b.text("#register-status").await.unwrap();
    assert!(
        said.contains("Ask your administrator for a new one"),
        "{said}"
    );
    p.b.assert_no_page_errors().await.unwrap();
}
