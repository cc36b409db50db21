//! The web console and the self-service portal (latchkeyd's `/ui/`, docs/web.md) in a real
//! Chromium against a real latchkeyd, agent and PAM module: an admin made with
//! `latchkey admin add` signs in with password and TOTP, adds a user and makes an invite
//! link; the user opens it, enrols TOTP from the QR code on the page, registers a security
//! key (Chromium's virtual authenticator), signs in again with the key and removes the TOTP
//! token; the TOTP token logs in through the real libpam while it exists. Then the web
//! security: CSRF, another user's cookie, a machine key and a user session on the console.

use crate::support::{admin_cli, run_blocking};
use latchkey_crypto::otp::totp;
use latchkey_proto::OtpAlgorithm;
use latchkey_proto::TokenKind;
use latchkey_proto::admin::TokenInfo;
use latchkey_proto::routes;
use latchkey_testkit::TestServer;
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::browser::{Browser, LaunchOptions, VirtualAuthenticator, WaitState};
use latchkey_testkit::pam_harness::{PamCode, PamConfDir, PamHarness};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SHORT: Duration = Duration::from_secs(15);
const ADMIN: &str = "root-admin";
const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// The origin the pages are opened at: a browser takes `localhost` as a WebAuthn relying
/// party id, never an IP address, so the pages are opened by name.
fn origin(srv: &TestServer) -> String {
    srv.url().replace("127.0.0.1", "localhost")
}

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.web_rp_id = Some("localhost".into());
        // The code that confirms an enrolment and the next one, for the PAM login right
        // after it, are both inside the window.
        c.totp_window = 1;
    })
    .await
    .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The base32 secret of an `otpauth://` URI.
fn secret_of(uri: &str) -> Vec<u8> {
    let secret = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap_or_else(|| panic!("no secret in {uri}"));
    data_encoding::BASE32_NOPAD
        .decode(secret.trim_end_matches('=').as_bytes())
        .unwrap()
}

fn code(secret: &[u8], at: u64) -> String {
    totp(secret, at, 30, OtpAlgorithm::Sha1, 6)
}

/// `latchkey admin add NAME --password-stdin`, as an operator runs it: the admin's TOTP
/// secret from the otpauth URI it prints.
async fn admin_add(srv: &TestServer, name: &str) -> Vec<u8> {
    let typed = format!("{ADMIN_PASSWORD}\n");
    let shown = admin_cli(
        srv,
        &["admin", "add", name, "--password-stdin"],
        Some(&typed),
    )
    .await;
    let uri = shown
        .split_whitespace()
        .find(|w| w.starts_with("otpauth://"))
        .unwrap_or_else(|| panic!("no otpauth URI in {shown}"));
    secret_of(uri)
}

async fn launch(srv: &TestServer) -> Browser {
    Browser::launch(
        LaunchOptions::for_server(srv)
            .unwrap()
            // A small phone: every page must work at 375 px.
            .viewport(375, 740),
    )
    .await
    .unwrap()
}

/// Waits for `selector`; on a timeout the panic says what the page showed and logged.
async fn visible(b: &mut Browser, selector: &str) {
    if let Err(e) = b.wait(selector, WaitState::Visible, SHORT).await {
        let shown = b.text("body").await.unwrap_or_default();
        let log = b
            .console()
            .await
            .map(|c| format!("{:?} {:?}", c.messages, c.errors));
        let _ = b.screenshot("failed").await;
        panic!("{e}\npage: {shown}\nconsole: {log:?}");
    }
}

/// The page's flash line after an action: Ok(text) for `.flash.ok`, Err(text) for
/// `.flash.err`.
async fn flash(b: &mut Browser) -> Result<String, String> {
    visible(b, ".flash").await;
    let text = b.text(".flash").await.unwrap();
    let ok = b.count(".flash.ok").await.unwrap() > 0;
    if ok { Ok(text) } else { Err(text) }
}

/// Signs out with the page's button: the session cookie is gone from the browser.
async fn sign_out(b: &mut Browser) {
    b.click("form#signout button").await.unwrap();
    visible(b, "main").await;
    let cookies = b.cookies().await.unwrap();
    assert!(
        cookies.iter().all(|c| c.name != "__Host-latchkey"),
        "{cookies:?}"
    );
}

async fn admin_sign_in(b: &mut Browser, srv: &TestServer, secret: &[u8]) {
    b.goto(&format!("{}/ui/signin", origin(srv))).await.unwrap();
    visible(b, "#name").await;
    b.screenshot("admin-signin").await.unwrap();
    b.fill("#name", ADMIN).await.unwrap();
    b.fill("#password", ADMIN_PASSWORD).await.unwrap();
    b.fill("#code", &code(secret, now())).await.unwrap();
    b.click("button#signin").await.unwrap();
    visible(b, "a#nav-overview").await;
}

/// Signs in as the admin, adds `user` and makes an invite link for them; signs out.
async fn invite(b: &mut Browser, srv: &TestServer, secret: &[u8], user: &str) -> String {
    admin_sign_in(b, srv, secret).await;
    b.click("a#nav-users").await.unwrap();
    visible(b, "#user-add").await;
    b.fill("#user-name", user).await.unwrap();
    b.fill("#user-display", &format!("{user} example"))
        .await
        .unwrap();
    b.fill("#user-groups", "staff").await.unwrap();
    b.click("#user-add-go").await.unwrap();
    visible(b, &format!("tr[data-user=\"{user}\"]")).await;
    b.screenshot("admin-users").await.unwrap();
    b.goto(&format!("{}/ui/admin/users/{user}", origin(srv)))
        .await
        .unwrap();
    visible(b, "#invite-go").await;
    b.click("#invite-go").await.unwrap();
    visible(b, "#invite-url").await;
    b.screenshot("admin-invite").await.unwrap();
    let url = b.text("#invite-url").await.unwrap().trim().to_string();
    sign_out(b).await;
    url
}

/// The HTTP status of `GET path` with `client`'s credential (an error answer included).
async fn status_of(client: &latchkey_client::Client, path: &str) -> u16 {
    match client
        .request(latchkey_client::Method::GET, path, None)
        .await
    {
        Ok((status, _)) => status.as_u16(),
        Err(e) => e
            .status()
            .unwrap_or_else(|| panic!("GET {path}: {e}"))
            .as_u16(),
    }
}

/// The user's tokens as the admin API lists them.
async fn tokens(srv: &TestServer, user: &str) -> Vec<TokenInfo> {
    srv.admin()
        .unwrap()
        .get(&routes::admin_user_tokens(user))
        .await
        .unwrap()
}

/// One PAM login (service `login`) answering every prompt with `answer`.
async fn pam_login(conf: Arc<PamConfDir>, user: &str, answer: String) -> PamCode {
    let user = user.to_string();
    run_blocking(move || {
        let mut pam = PamHarness::new("login", &user, conf.path()).unwrap();
        pam.respond_with(move |_| Some(answer.clone()));
        pam.authenticate(0)
    })
    .await
}

/// Enrols TOTP on `/ui/me/totp`: the QR code on the page, decoded from a screenshot of it,
/// carries the secret the page also prints; the first code confirms it.
async fn enrol_totp(b: &mut Browser) -> Vec<u8> {
    b.click("#add-totp").await.unwrap();
    visible(b, "#totp-qr").await;
    b.screenshot("me-totp").await.unwrap();
    let shot = b.screenshot_element("#totp-qr", "totp-qr").await.unwrap();
    let uri = run_blocking(move || latchkey_token::offline::read_png(&shot).unwrap()).await;
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let secret = secret_of(&uri);
    let printed = b.text("#totp-secret").await.unwrap().replace(' ', "");
    assert_eq!(
        data_encoding::BASE32_NOPAD
            .decode(printed.trim_end_matches('=').as_bytes())
            .unwrap(),
        secret,
        "the secret printed under the QR code is the one in it"
    );
    b.fill("#totp-code", &code(&secret, now())).await.unwrap();
    b.click("#totp-confirm").await.unwrap();
    let said = flash(b).await;
    assert!(said.is_ok(), "{said:?}");
    secret
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn invited_user_enrols_totp_and_a_security_key_signs_in_with_the_key_and_removes_totp() {
    let srv = server().await;
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = Arc::new(agent.pam_conf("login").unwrap());
    let admin_secret = admin_add(&srv, ADMIN).await;
    let mut b = launch(&srv).await;
    let link = invite(&mut b, &srv, &admin_secret, "alice").await;
    assert!(link.contains("/ui/invite/"), "{link}");

    // The link opens a self-service session and leaves the address bar at once.
    b.goto(&link).await.unwrap();
    // The link shows a button; its POST spends the invite and opens the session.
    visible(&mut b, "#invite-open").await;
    b.screenshot("invite").await.unwrap();
    usable_on_a_phone(&mut b, "invite").await;
    b.click("#invite-open").await.unwrap();
    visible(&mut b, "#add-totp").await;
    let here = b.eval("return location.pathname").await.unwrap();
    assert_eq!(here, json!("/ui/me/"));
    b.screenshot("me-invited").await.unwrap();

    usable_on_a_phone(&mut b, "me, invited").await;
    let secret = enrol_totp(&mut b).await;
    let listed = tokens(&srv, "alice").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].kind, TokenKind::Totp);

    // The enrolled token logs in at the console: the next step's code (the one that
    // confirmed the enrolment is spent).
    let verdict = pam_login(conf.clone(), "alice", code(&secret, now() + 30)).await;
    assert_eq!(verdict, PamCode::SUCCESS);

    // The test page checks a code without logging in: a wrong one is said to be wrong.
    let totp_id = listed[0].id.clone();
    b.goto(&format!("{}/ui/me/", origin(&srv))).await.unwrap();
    b.click(&format!("tr[data-token=\"{totp_id}\"] a.test"))
        .await
        .unwrap();
    visible(&mut b, "#test-code").await;
    b.fill("#test-code", "000000").await.unwrap();
    b.click("#test-go").await.unwrap();
    let said = flash(&mut b).await;
    assert!(said.is_err(), "{said:?}");
    b.screenshot("me-test-wrong-code").await.unwrap();

    // The token app's registration, as a QR code for the phone and as a link.
    b.goto(&format!("{}/ui/me/", origin(&srv))).await.unwrap();
    b.click("#add-app").await.unwrap();
    visible(&mut b, "#app-qr").await;
    let app_link = b
        .eval("return document.querySelector('#app-link').href")
        .await
        .unwrap();
    assert!(app_link.as_str().unwrap().contains("/app/"), "{app_link}");
    b.screenshot("me-app").await.unwrap();

    // A security key, registered in the browser.
    let key = b
        .add_authenticator(VirtualAuthenticator::default())
        .await
        .unwrap();
    b.goto(&format!("{}/ui/me/", origin(&srv))).await.unwrap();
    b.click("#add-key").await.unwrap();
    visible(&mut b, "#key-register").await;
    b.screenshot("me-key").await.unwrap();
    b.fill("#key-label", "blue key").await.unwrap();
    b.click("#key-register").await.unwrap();
    let said = flash(&mut b).await;
    assert!(said.is_ok(), "{said:?}");
    let held = b.authenticator_credentials(&key).await.unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].rp_id.as_deref(), Some("localhost"));
    let listed = tokens(&srv, "alice").await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    b.screenshot("me-two-tokens").await.unwrap();

    // Signed out, the same key signs the user in again (user verification, no link).
    sign_out(&mut b).await;
    b.goto(&format!("{}/ui/me/signin", origin(&srv)))
        .await
        .unwrap();
    visible(&mut b, "#signin-name").await;
    b.screenshot("me-signin").await.unwrap();
    usable_on_a_phone(&mut b, "me signin").await;
    b.fill("#signin-name", "alice").await.unwrap();
    b.click("#signin-key").await.unwrap();
    visible(&mut b, "#add-totp").await;
    b.screenshot("me-signed-in-with-key").await.unwrap();

    // Recent logins: the PAM login above. "This wasn't me" on it is audited under her name.
    visible(&mut b, "#logins tr[data-event]").await;
    usable_on_a_phone(&mut b, "me").await;
    let row = b.text("#logins tr[data-event]").await.unwrap();
    assert!(row.contains("login"), "{row}");
    b.click("#logins tr[data-event] .report").await.unwrap();
    let said = flash(&mut b).await;
    assert!(said.is_ok(), "{said:?}");
    b.screenshot("me-reported").await.unwrap();
    let audit: Vec<latchkey_proto::admin::AuditEntry> = srv
        .admin()
        .unwrap()
        .get(&format!("{}?user=alice", routes::ADMIN_AUDIT))
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "user.report" && e.actor == "user:alice"),
        "{audit:?}"
    );

    // The TOTP token is removed; the key, now the last token, cannot be.
    let totp_id = listed
        .iter()
        .find(|t| t.kind == TokenKind::Totp)
        .unwrap()
        .id
        .clone();
    b.click(&format!("tr[data-token=\"{totp_id}\"] .remove"))
        .await
        .unwrap();
    let said = flash(&mut b).await;
    assert!(said.is_ok(), "{said:?}");
    let listed = tokens(&srv, "alice").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].kind, TokenKind::Fido2);
    let key_id = listed[0].id.clone();
    b.click(&format!("tr[data-token=\"{key_id}\"] .remove"))
        .await
        .unwrap();
    let said = flash(&mut b).await;
    assert!(said.is_err(), "the last token needs an admin: {said:?}");
    assert_eq!(tokens(&srv, "alice").await.len(), 1);
    b.screenshot("me-last-token-kept").await.unwrap();

    // The removed TOTP token no longer logs in.
    let verdict = pam_login(conf.clone(), "alice", code(&secret, now() + 60)).await;
    assert_ne!(verdict, PamCode::SUCCESS);
    b.assert_no_page_errors().await.unwrap();
}

/// `latchkey user invite NAME`: the link it prints.
async fn cli_invite(srv: &TestServer, user: &str) -> String {
    let shown = admin_cli(srv, &["user", "invite", user], None).await;
    shown
        .split_whitespace()
        .find(|w| w.starts_with("https://") && w.contains("/ui/invite/"))
        .unwrap_or_else(|| panic!("no invite link in {shown}"))
        .replace("127.0.0.1", "localhost")
}

/// Posts the form `selector` of the current page from the page itself (same origin, the
/// browser's cookies), after `edit` (a statement over `data`, a URLSearchParams, and
/// `action`, the form's URL) changes it; answers the HTTP status (0 for a redirect,
/// which is how a page's own post/redirect/get answers a good form).
async fn post_form(b: &mut Browser, selector: &str, edit: &str) -> u64 {
    let body = format!(
        r#"
        const f = document.querySelector(arg.selector);
        if (!f) throw new Error('no form ' + arg.selector);
        const data = new URLSearchParams(new FormData(f));
        let action = f.action;
        {edit}
        const r = await fetch(action, {{ method: 'POST', body: data, redirect: 'manual' }});
        return r.status;
        "#
    );
    b.eval_with(&body, json!({ "selector": selector }))
        .await
        .unwrap()
        .as_u64()
        .unwrap()
}

/// As [`post_form`], following the redirect: the status of the page it ends on and the
/// text of its error flash, if any.
async fn post_form_refusal(b: &mut Browser, selector: &str, edit: &str) -> (u64, Option<String>) {
    let body = format!(
        r#"
        const f = document.querySelector(arg.selector);
        if (!f) throw new Error('no form ' + arg.selector);
        const data = new URLSearchParams(new FormData(f));
        let action = f.action;
        {edit}
        const r = await fetch(action, {{ method: 'POST', body: data }});
        const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
        const err = doc.querySelector('.flash.err');
        return [r.status, err ? err.textContent.trim() : null];
        "#
    );
    let v = b
        .eval_with(&body, json!({ "selector": selector }))
        .await
        .unwrap();
    (v[0].as_u64().unwrap(), v[1].as_str().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn forms_need_their_csrf_token_and_sessions_open_only_their_own_pages() {
    let srv = server().await;
    let admin_secret = admin_add(&srv, ADMIN).await;
    let mut b = launch(&srv).await;
    admin_sign_in(&mut b, &srv, &admin_secret).await;
    b.click("a#nav-users").await.unwrap();
    visible(&mut b, "#user-add").await;
    b.fill("#user-name", "mallory").await.unwrap();

    // Without its token, and with a wrong one, the form is refused and adds nobody.
    let status = post_form(&mut b, "#user-add", "data.delete('csrf');").await;
    assert_eq!(status, 403);
    let status = post_form(&mut b, "#user-add", "data.set('csrf', 'x'.repeat(40));").await;
    assert_eq!(status, 403);
    let admin = srv.admin().unwrap();
    assert_eq!(status_of(&admin, &routes::admin_user("mallory")).await, 404);
    // The same form with its token goes through: the refusals were the token's.
    let status = post_form(&mut b, "#user-add", "").await;
    assert_eq!(status, 0, "a good form ends in a redirect");
    assert_eq!(status_of(&admin, &routes::admin_user("mallory")).await, 200);

    // The console refuses a machine key and the admin API key: they are not web sessions.
    let (_, machine) = srv.join_machine("desk-1").await.unwrap();
    assert_eq!(status_of(&machine, "/ui/admin/").await, 403);
    assert_eq!(status_of(&admin, "/ui/admin/").await, 403);

    // Two users, each with a TOTP token and a self-service session from an invite. A
    // session opened in a browser ends the one it held, so each cookie is kept aside.
    for user in ["alice", "bob"] {
        srv.add_user_with_token(user, TokenKind::Totp)
            .await
            .unwrap();
    }
    let alice_token = tokens(&srv, "alice").await[0].id.clone();
    let bob_token = tokens(&srv, "bob").await[0].id.clone();
    let alice_row = format!("tr[data-token=\"{alice_token}\"]");
    let bob_row = format!("tr[data-token=\"{bob_token}\"]");
    sign_out(&mut b).await;
    let link = cli_invite(&srv, "bob").await;
    b.goto(&link).await.unwrap();
    // The link shows a button; its POST spends the invite and opens the session.
    visible(&mut b, "#invite-open").await;
    b.click("#invite-open").await.unwrap();
    visible(&mut b, &bob_row).await;
    let bob_csrf = b
        .eval("return document.querySelector('input[name=csrf]').value")
        .await
        .unwrap();
    let bob_cookies = b.cookies().await.unwrap();
    b.replace_cookies(&[]).await.unwrap();
    let link = cli_invite(&srv, "alice").await;
    b.goto(&link).await.unwrap();
    // The link shows a button; its POST spends the invite and opens the session.
    visible(&mut b, "#invite-open").await;
    b.click("#invite-open").await.unwrap();
    visible(&mut b, &alice_row).await;

    // Alice's session with the CSRF token of Bob's page: refused, the token is the
    // session's own. With her page's token, her rename goes through.
    b.fill(&format!("{alice_row} .rename input.label"), "forged")
        .await
        .unwrap();
    let forge = format!("data.set('csrf', {bob_csrf});");
    let status = post_form(&mut b, &format!("{alice_row} form.rename"), &forge).await;
    assert_eq!(status, 403);
    assert_ne!(tokens(&srv, "alice").await[0].label, "forged");
    let status = post_form(&mut b, &format!("{alice_row} form.rename"), "").await;
    assert_eq!(status, 0);
    assert_eq!(tokens(&srv, "alice").await[0].label, "forged");

    // Bob's session, with Bob's own form and token, cannot rename Alice's token.
    b.replace_cookies(&bob_cookies).await.unwrap();
    b.goto(&format!("{}/ui/me/", origin(&srv))).await.unwrap();
    visible(&mut b, &bob_row).await;
    b.fill(&format!("{bob_row} .rename input.label"), "stolen")
        .await
        .unwrap();
    let aim = format!("action = action.replace('{bob_token}', '{alice_token}');");
    let (status, said) = post_form_refusal(&mut b, &format!("{bob_row} form.rename"), &aim).await;
    assert!(
        matches!(status, 403 | 404) || said.is_some(),
        "refused with a status or an error line: {status} {said:?}"
    );
    assert_eq!(tokens(&srv, "alice").await[0].label, "forged");

    // A user's session is refused by the console.
    let status = b
        .goto(&format!("{}/ui/admin/", origin(&srv)))
        .await
        .unwrap();
    assert_eq!(status, Some(403));
    b.screenshot("console-refuses-user").await.unwrap();
    b.assert_no_page_errors().await.unwrap();
}

/// Every input of the page has a label, and nothing is wider than the screen but the
/// tables' own scrolling boxes.
async fn usable_on_a_phone(b: &mut Browser, page: &str) {
    let unlabelled = b
        .eval(
            r#"
            return [...document.querySelectorAll('input, select, textarea')]
              .filter((e) => e.type !== 'hidden' && e.type !== 'submit')
              .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
              .map((e) => e.outerHTML);
            "#,
        )
        .await
        .unwrap();
    assert_eq!(unlabelled, json!([]), "{page}: inputs without a label");
    let width = b
        .eval("return document.documentElement.scrollWidth")
        .await
        .unwrap();
    assert!(
        width.as_u64().unwrap() <= 375,
        "{page}: the page is {width} px wide on a 375 px screen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn every_console_page_works_on_a_phone_with_a_keyboard_and_exports_csv() {
    let srv = server().await;
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = Arc::new(agent.pam_conf("login").unwrap());
    let uri = srv
        .add_user_with_token("carol", TokenKind::Totp)
        .await
        .unwrap();
    let secret = uri.secret.to_vec();
    // Something in the audit log, the events and the sessions.
    assert_eq!(
        pam_login(conf.clone(), "carol", code(&secret, now())).await,
        PamCode::SUCCESS
    );
    assert_ne!(
        pam_login(conf.clone(), "carol", "000000".into()).await,
        PamCode::SUCCESS
    );
    let admin_secret = admin_add(&srv, ADMIN).await;
    let mut b = launch(&srv).await;

    // The sign-in form is reached with the keyboard alone: a few Tabs (past the skip link
    // and the home link) land on the name.
    b.goto(&format!("{}/ui/signin", origin(&srv)))
        .await
        .unwrap();
    visible(&mut b, "#name").await;
    let mut focused = json!(null);
    for _ in 0..4 {
        b.press("body", "Tab").await.unwrap();
        focused = b.eval("return document.activeElement.id").await.unwrap();
        if focused == json!("name") {
            break;
        }
    }
    assert_eq!(focused, json!("name"), "Tab never reached the name field");
    usable_on_a_phone(&mut b, "signin").await;
    admin_sign_in(&mut b, &srv, &admin_secret).await;

    // The overview counts what the server holds: Carol's TOTP token, her two logins.
    let kinds = b
        .eval(
            r#"return [...document.querySelectorAll('#tokens-by-kind tbody tr')]
                 .map((r) => [...r.cells].map((c) => c.textContent.trim()));"#,
        )
        .await
        .unwrap();
    assert!(
        kinds.as_array().unwrap().contains(&json!(["totp", "1"])),
        "{kinds}"
    );

    for (nav, page) in [
        ("a#nav-overview", "overview"),
        ("a#nav-users", "users"),
        ("a#nav-policies", "policies"),
        ("a#nav-machines", "machines"),
        ("a#nav-audit", "audit"),
        ("a#nav-events", "events"),
        ("a#nav-sessions", "sessions"),
    ] {
        b.click(nav).await.unwrap();
        visible(&mut b, "main").await;
        b.screenshot_full(&format!("admin-{page}")).await.unwrap();
        usable_on_a_phone(&mut b, page).await;
    }
    b.goto(&format!("{}/ui/admin/users/carol", origin(&srv)))
        .await
        .unwrap();
    visible(&mut b, "#invite-go").await;
    b.screenshot_full("admin-user-carol").await.unwrap();
    usable_on_a_phone(&mut b, "user carol").await;

    // The events page exports what it shows as CSV, as a download.
    b.click("a#nav-events").await.unwrap();
    visible(&mut b, "a.csv").await;
    let got = b
        .eval(
            r#"
            const r = await fetch(document.querySelector('a.csv').href);
            return [r.status, r.headers.get('content-type'),
                    r.headers.get('content-disposition'), await r.text()];
            "#,
        )
        .await
        .unwrap();
    assert_eq!(got[0], json!(200), "{got}");
    assert!(got[1].as_str().unwrap().starts_with("text/csv"), "{got}");
    assert!(got[2].as_str().unwrap().starts_with("attachment"), "{got}");
    let csv = got[3].as_str().unwrap();
    assert!(csv.lines().count() >= 3, "a header and two logins: {csv}");
    assert!(csv.contains("carol"), "{csv}");
    b.assert_no_page_errors().await.unwrap();
}
