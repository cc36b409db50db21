//! The console's session rules through the real router, with sessions opened through the
//! engine (a user session has no sign-in page in this module).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::engine::{Strength, Subject};
use crate::http::HttpContext;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use std::sync::Arc;
use tower::ServiceExt;

async fn context() -> (Arc<HttpContext>, tempfile::TempDir) {
    let (engine, dir) = crate::engine::tests::fx().await.into_parts();
    let limiter = crate::ratelimit::RateLimiter::new(50, 100);
    (Arc::new(HttpContext::new(engine, limiter)), dir)
}

async fn get(cx: &Arc<HttpContext>, path: &str, cookie: &str) -> (StatusCode, String) {
    let req = Request::get(path)
        .header(header::COOKIE, format!("__Host-latchkey={cookie}"))
        .body(Body::empty())
        .unwrap();
    let resp = crate::http::router(cx.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_user_session_is_refused_on_the_console() {
    let (cx, _dir) = context().await;
    cx.engine
        .user_add(
            &crate::engine::Actor::Admin,
            latchkey_proto::admin::UserCreate {
                name: "alice".into(),
                display_name: None,
                groups: vec![],
            },
        )
        .await
        .unwrap();
    for strength in [Strength::Strong, Strength::Invite] {
        let (cookie, _) = cx
            .engine
            .web_session_open(
                Subject::User {
                    name: "alice".into(),
                    strength,
                },
                "127.0.0.1",
            )
            .await
            .unwrap();
        for path in ["/ui/admin/", "/ui/admin/users"] {
            let (status, body) = get(&cx, path, &cookie).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
            assert!(body.contains("This page is for administrators."), "{body}");
        }
        // The start page sends a user to the portal, not the console.
        let req = Request::get("/ui/")
            .header(header::COOKIE, format!("__Host-latchkey={cookie}"))
            .body(Body::empty())
            .unwrap();
        let resp = crate::http::router(cx.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(resp.headers()[header::LOCATION], "/ui/me/");
    }
}

#[tokio::test]
async fn an_unknown_or_ended_cookie_goes_to_the_sign_in_page() {
    let (cx, _dir) = context().await;
    let (status, _) = get(&cx, "/ui/admin/", &"A".repeat(52)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}
