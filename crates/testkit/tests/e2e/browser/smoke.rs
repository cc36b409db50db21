//! The harness itself: a page of latchkeyd in a secure context, a screenshot, the commands
//! failing with one clear line instead of hanging, page errors collected.

use latchkey_testkit::TestServer;
use latchkey_testkit::browser::{Browser, LaunchOptions, WaitState};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn a_latchkeyd_page_opens_in_a_secure_context_and_is_screenshotted() {
    let srv = TestServer::start().await.unwrap();
    let mut b = Browser::launch(LaunchOptions::for_server(&srv).unwrap())
        .await
        .unwrap();

    let status = b.goto(&format!("{}/healthz", srv.url())).await.unwrap();
    assert_eq!(status, Some(200));
    let text = b.text("body").await.unwrap();
    assert!(text.contains("ok"), "{text}");
    let ctx = b
        .eval("return { secure: window.isSecureContext, protocol: location.protocol };")
        .await
        .unwrap();
    assert_eq!(ctx, json!({ "secure": true, "protocol": "https:" }));

    let shot = b.screenshot("healthz").await.unwrap();
    assert!(shot.ends_with("01-healthz.png"), "{}", shot.display());
    let bytes = std::fs::read(&shot).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(bytes.len() > 100);

    assert!(b.console().await.unwrap().errors.is_empty());
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn a_failing_command_is_one_clear_line_and_the_browser_goes_on() {
    let srv = TestServer::start().await.unwrap();
    let mut b = Browser::launch(LaunchOptions::for_server(&srv).unwrap())
        .await
        .unwrap();
    b.goto(&format!("{}/healthz", srv.url())).await.unwrap();

    let err = b
        .wait(
            "#nothing-here",
            WaitState::Visible,
            Duration::from_millis(500),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("wait") && err.contains("#nothing-here"),
        "{err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");
    let err = b
        .eval("throw new Error('thrown on purpose');")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("thrown on purpose"), "{err}");

    // Still usable: counting, a text match, an argument passed to a script.
    assert_eq!(b.count("body").await.unwrap(), 1);
    assert_eq!(b.count("#nothing-here").await.unwrap(), 0);
    let ok = b
        .wait_text("body", "o.", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ok, "ok");
    let sum = b
        .eval_with("return arg.a + arg.b;", json!({ "a": 2, "b": 3 }))
        .await
        .unwrap();
    assert_eq!(sum, json!(5));

    // An uncaught error of the page is reported, with what the page logged.
    b.eval("console.log('hello from the page'); setTimeout(() => { throw new Error('boom'); }); await new Promise((r) => setTimeout(r, 50));")
        .await
        .unwrap();
    let log = b.console().await.unwrap();
    assert!(
        log.messages
            .iter()
            .any(|(kind, text)| kind == "log" && text == "hello from the page"),
        "{log:?}"
    );
    assert_eq!(log.errors.len(), 1, "{log:?}");
    assert!(log.errors[0].contains("boom"), "{log:?}");
    assert!(b.console().await.unwrap().errors.is_empty(), "cleared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn without_the_key_pin_the_self_signed_certificate_is_refused() {
    let srv = TestServer::start().await.unwrap();
    let mut b = Browser::launch(LaunchOptions::new()).await.unwrap();
    let err = b
        .goto(&format!("{}/healthz", srv.url()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ERR_CERT"), "{err}");
}
