//! The admin console from outside: a real latchkeyd over loopback TLS, a small HTTPS/1.1
//! client that keeps cookies like a browser, the answers read as they are sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;
mod invites;
mod lockout;
mod pages;
mod sessions;

use harness::*;
use latchkey_client::Method;
use latchkey_proto::routes;

#[tokio::test]
async fn sign_in_sets_a_host_only_strict_cookie_and_opens_the_console() {
    let srv = start().await;
    let created = srv.add_admin("root").await;
    let mut b = srv.browser();
    let a = b.get(routes::UI_ADMIN).await;
    assert_eq!(a.status, 303);
    assert_eq!(a.header("location"), Some(routes::UI_SIGNIN));
    let a = b.sign_in(&created, PASSWORD).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.header("location"), Some(routes::UI_ADMIN));
    assert_session_cookie(&a);
    let page = b.get(routes::UI_ADMIN).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"nav-overview\""), "{}", page.body);
    assert!(page.body.contains("<form id=\"signout\""), "{}", page.body);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    // Sign-out (with its CSRF token) ends the session.
    let csrf = page.csrf();
    let a = b.post(routes::UI_SIGNOUT, &[("csrf", &csrf)]).await;
    assert_eq!(a.status, 303);
    let a = b.get(routes::UI_ADMIN).await;
    assert_eq!(a.status, 303, "signed out");
}

#[tokio::test]
async fn every_ui_answer_carries_the_csp_and_refusals_are_pages() {
    let srv = start().await;
    let mut b = srv.browser();
    for path in [
        routes::UI,
        routes::UI_ROOT,
        routes::UI_SIGNIN,
        routes::UI_ADMIN,
        "/ui/static/ui.css",
        "/ui/static/nope.css",
        "/ui/no-such-page",
    ] {
        let a = b.get(path).await;
        assert_security_headers(&a, path);
        if a.status >= 400 {
            assert!(
                a.header("content-type")
                    .unwrap_or("")
                    .starts_with("text/html"),
                "{path}: {:?}",
                a.header("content-type")
            );
        }
    }
    let css = b.get("/ui/static/ui.css").await;
    assert_eq!(css.status, 200);
    assert!(css.header("etag").is_some());
    assert!(css.header("cache-control").unwrap().contains("immutable"));
    // A refused POST is a page with the headers too.
    let a = b.send("POST", routes::UI_SIGNIN, &[], "").await;
    assert_eq!(a.status, 403);
    assert_security_headers(&a, "refused POST");
    assert!(a.header("content-type").unwrap().starts_with("text/html"));
}

#[tokio::test]
async fn a_post_without_its_csrf_token_is_refused_and_changes_nothing() {
    let srv = start().await;
    let created = srv.add_admin("root").await;
    let mut b = srv.browser();
    // The sign-in form without its double-submit token: refused, no session.
    let code = code_now(&created);
    let a = b
        .post(
            routes::UI_SIGNIN,
            &[("name", "root"), ("password", PASSWORD), ("code", &code)],
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(!b.cookies.contains_key("__Host-latchkey"));
    assert!(a.body.contains("class=\"flash err\""), "{}", a.body);
    // Signed in, a console form without the session's token: refused, no user added.
    let a = b.sign_in(&created, PASSWORD).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let a = b.post(routes::UI_ADMIN_USERS, &[("name", "mallory")]).await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = b
        .post(
            routes::UI_ADMIN_USERS,
            &[("csrf", "A".repeat(52).as_str()), ("name", "mallory")],
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let list = b.get(routes::UI_ADMIN_USERS).await;
    assert!(!list.body.contains("mallory"), "{}", list.body);
}

#[tokio::test]
async fn a_cross_site_post_is_refused_even_with_the_right_token() {
    let srv = start().await;
    let created = srv.add_admin("root").await;
    let mut b = srv.browser();
    assert_eq!(b.sign_in(&created, PASSWORD).await.status, 303);
    let csrf = b.get(routes::UI_ADMIN_USERS).await.csrf();
    let body = form(&[("csrf", &csrf), ("name", "mallory")]);
    for headers in [
        vec![
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        vec![("Origin", "https://evil.example")],
        vec![("Sec-Fetch-Site", "same-site")],
        vec![],
    ] {
        let a = b
            .send("POST", routes::UI_ADMIN_USERS, &headers, &body)
            .await;
        assert_eq!(a.status, 403, "{headers:?}: {}", a.body);
    }
    let list = b.get(routes::UI_ADMIN_USERS).await;
    assert!(!list.body.contains("mallory"), "{}", list.body);
    // The same form from our own origin is taken.
    let a = b
        .post(
            routes::UI_ADMIN_USERS,
            &[("csrf", &csrf), ("name", "alice")],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(
        b.get(routes::UI_ADMIN_USERS)
            .await
            .body
            .contains("data-user=\"alice\"")
    );
}

#[tokio::test]
async fn an_api_key_or_a_machine_key_is_not_a_console_session() {
    let srv = start().await;
    let created = srv.add_admin("root").await;
    let mut b = srv.browser();
    let admin_key = format!("Bearer {}", srv.admin_token);
    /// The console asked for with an `Authorization` header.
    async fn console_with(b: &mut Browser, auth: &str) -> Answer {
        b.send("GET", routes::UI_ADMIN, &[("Authorization", auth)], "")
            .await
    }
    for auth in [admin_key.as_str(), "Bearer lkm_not_a_session"] {
        let a = console_with(&mut b, auth).await;
        assert_eq!(a.status, 403, "{auth}: {}", a.body);
    }
    // Even beside a live session cookie.
    assert_eq!(b.sign_in(&created, PASSWORD).await.status, 303);
    let a = console_with(&mut b, &admin_key).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(b.get(routes::UI_ADMIN).await.status, 200);
}

#[tokio::test]
async fn five_wrong_sign_ins_lock_the_account_for_the_right_password_too() {
    let srv = start().await;
    let created = srv.add_admin("root").await;
    let mut b = srv.browser();
    for _ in 0..5 {
        let a = b.sign_in(&created, "not the password").await;
        assert_eq!(a.header("location"), Some("/ui/signin?err=refused"));
    }
    let a = b.sign_in(&created, PASSWORD).await;
    assert_eq!(
        a.header("location"),
        Some("/ui/signin?err=refused"),
        "locked"
    );
    assert!(!b.cookies.contains_key("__Host-latchkey"));
    let page = b.get("/ui/signin?err=refused").await;
    assert!(page.body.contains("class=\"flash err\""), "{}", page.body);
    assert!(page.body.contains("locked for 15 minutes"), "{}", page.body);
}

#[tokio::test]
async fn console_actions_are_audited_with_the_admins_name() {
    let srv = start().await;
    let created = srv.add_admin("root").await;
    let mut b = srv.browser();
    assert_eq!(b.sign_in(&created, PASSWORD).await.status, 303);
    let csrf = b.get(routes::UI_ADMIN_USERS).await.csrf();
    let a = b
        .post(
            routes::UI_ADMIN_USERS,
            &[
                ("csrf", &csrf),
                ("name", "alice"),
                ("display_name", "Alice"),
                ("groups", "staff, ops"),
            ],
        )
        .await;
    assert_eq!(a.header("location"), Some("/ui/admin/users?ok=added"));
    let page = b.get("/ui/admin/users?ok=added").await;
    assert!(page.body.contains("class=\"flash ok\""), "{}", page.body);
    assert!(page.body.contains("data-user=\"alice\""));
    // A refusal's own sentence comes back through the session, not the URL.
    let a = b
        .post(
            routes::UI_ADMIN_USERS,
            &[("csrf", &csrf), ("name", "alice")],
        )
        .await;
    assert_eq!(a.header("location"), Some("/ui/admin/users?err=said"));
    let page = b.get("/ui/admin/users?err=said").await;
    assert!(page.body.contains("already exists"), "{}", page.body);
    let (_, log) = srv
        .api()
        .request(Method::GET, routes::ADMIN_AUDIT, None)
        .await
        .unwrap();
    let log: Vec<latchkey_proto::admin::AuditEntry> = serde_json::from_slice(&log).unwrap();
    assert!(
        log.iter().any(|e| e.action == "user.add"
            && e.actor == "admin:root"
            && e.user.as_deref() == Some("alice")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|e| e.action == "admin.signin" && e.actor == "admin:root")
    );
}
