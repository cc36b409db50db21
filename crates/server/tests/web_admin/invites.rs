//! An invite link's GET is a page with a button and spends nothing (mail scanners, link
//! previews); only the button's POST, with the page's own token and from this site,
//! redeems it. The page says nothing about whose link it is.

use crate::harness::*;
use crate::sessions::redeem;
use latchkey_client::Method;
use latchkey_proto::routes;

#[tokio::test]
async fn opening_an_invite_link_spends_nothing_until_its_button_is_pressed() {
    let srv = start().await;
    let body = serde_json::json!({ "name": "alice" });
    srv.api()
        .request(Method::POST, routes::ADMIN_USERS, Some(body))
        .await
        .unwrap();
    let path = srv.api_invite("alice").await;
    // A scanner fetches it twice, a preview asks for its head: a page each time, no
    // session, nothing said about the account.
    let mut scanner = srv.browser();
    for _ in 0..2 {
        let a = scanner.get(&path).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.header("cache-control"), Some("no-store"));
        assert_security_headers(&a, "invite page");
        assert!(a.body.contains("id=\"invite-open\""), "{}", a.body);
        assert!(a.body.contains("Open your self-service page"), "{}", a.body);
        assert!(
            !a.body.contains("alice"),
            "the page names the account: {}",
            a.body
        );
        let code = path.rsplit('/').next().unwrap();
        assert!(!a.body.contains(code), "the page repeats the code");
    }
    assert_eq!(scanner.send("HEAD", &path, &[], "").await.status, 200);
    assert!(!scanner.cookies.contains_key("__Host-latchkey"));

    // Another site cannot press the button for a browser: without the page's own
    // double-submit token, or from another origin, the POST is refused and spends nothing.
    let mut victim = srv.browser();
    let forged = "A".repeat(52);
    let a = victim.post(&path, &[("csrf", &forged)]).await;
    assert_eq!(a.status, 403, "{}", a.body);
    let page = victim.get(&path).await;
    let csrf = page.csrf();
    let cross = form(&[("csrf", &csrf)]);
    let a = victim
        .send(
            "POST",
            &path,
            &[
                ("Origin", "https://evil.example"),
                ("Sec-Fetch-Site", "cross-site"),
            ],
            &cross,
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(!victim.cookies.contains_key("__Host-latchkey"));

    // The person's own press: the session cookie and on to the portal, once.
    let mut alice = srv.browser();
    let a = redeem(&mut alice, &path).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.header("location"), Some(routes::UI_ME));
    assert_session_cookie(&a);
    let me = alice.get(routes::UI_ME).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert!(me.body.contains("id=\"add-totp\""), "{}", me.body);
    // Spent: the page still shows, its button answers the one sentence.
    let a = redeem(&mut srv.browser(), &path).await;
    assert_eq!(a.status, 410, "{}", a.body);
    assert!(
        a.body.contains("ask your administrator for a new one"),
        "{}",
        a.body
    );
}
