//! The server's HTTP API in-process: the router latchkeyd serves, over a temporary data
//! directory, fed arbitrary requests through `tower::ServiceExt::oneshot`. No request may
//! panic a handler or answer 5xx, except 503 (the store refused: busy or failed, which a
//! client retries). The input is one line `AUTH METHOD PATH` then the body, where AUTH is
//! `admin`, `machine` (real credentials made at start), or anything else (none).
#![no_main]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tower::ServiceExt;

struct App {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    admin: String,
    machine: String,
    /// Kept so the data directory lives as long as the process.
    _dir: tempfile::TempDir,
}

async fn call(router: &axum::Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let Ok(resp) = router.clone().oneshot(req).await;
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    (status, body)
}

fn json_request(path: &str, token: &str, body: serde_json::Value) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("a valid request")
}

/// One request of the setup, which must succeed (else the harness, not the server, is wrong).
async fn setup(router: &axum::Router, req: Request<Body>) -> serde_json::Value {
    let path = req.uri().to_string();
    let (status, body) = call(router, req).await;
    assert!(
        status.is_success(),
        "setup {path}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).expect("setup answers are JSON")
}

/// A server with a user and a joined machine, so inputs reach past authentication.
fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a Tokio runtime");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let cfg = latchkey_server::ServerConfig::new(dir.path().join("data"));
        let (router, admin, machine) = rt.block_on(async {
            let (router, admin) = latchkey_server::fuzzing::router(cfg)
                .await
                .expect("the server starts");
            let admin = admin.expect("a new data directory makes an admin token");
            let join = serde_json::json!({"expires_in": 3600});
            let v = setup(&router, json_request("/v1/admin/join-tokens", &admin, join)).await;
            let req = serde_json::json!({"join_token": v["join_token"], "hostname": "fuzz-host"});
            let v = setup(&router, json_request("/v1/machines/join", "", req)).await;
            let machine = v["api_key"].as_str().expect("a machine key").to_string();
            let user = serde_json::json!({"name": "alice"});
            setup(&router, json_request("/v1/admin/users", &admin, user)).await;
            (router, admin, machine)
        });
        App {
            rt,
            router,
            admin,
            machine,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let app = app();
    let (line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut words = line.splitn(3, |&b| b == b' ');
    let (Some(auth), Some(method), Some(path)) = (words.next(), words.next(), words.next()) else {
        return;
    };
    let Ok(method) = Method::from_bytes(method) else {
        return;
    };
    let mut req = Request::builder().method(method.clone()).uri(path);
    match auth {
        b"admin" => req = req.header(header::AUTHORIZATION, format!("Bearer {}", app.admin)),
        b"machine" => req = req.header(header::AUTHORIZATION, format!("Bearer {}", app.machine)),
        _ => {}
    }
    let Ok(req) = req
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
    else {
        return; // not a URI the HTTP parser would have let through
    };
    // Long polls (push wait, event stream) would hold an input for their whole timeout.
    let (status, answer) = app.rt.block_on(async {
        match tokio::time::timeout(
            std::time::Duration::from_millis(500),
            call(&app.router, req),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => (StatusCode::REQUEST_TIMEOUT, Vec::new()),
        }
    });
    assert!(
        !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
        "{method} {} answered {status}: {}",
        String::from_utf8_lossy(path),
        String::from_utf8_lossy(&answer)
    );
});
