//! The web token app at `/app/` and CORS on the token app's API, from outside: a real
//! latchkeyd on loopback, hand-made HTTP/1.1 requests, the answers read byte for byte.
//!
//! Plain HTTP (`--insecure-http`): the headers and routing are the same over TLS, and raw
//! bytes are easier to send and read without one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_proto::routes::{self, ROUTES};
use latchkey_server::{RunningServer, ServerConfig, TlsSetting};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/web_client.rs"]
mod web_client;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self' https:; manifest-src 'self'; worker-src 'self'; media-src 'self' blob: mediastream:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Server {
    running: RunningServer,
    admin_token: String,
    _dir: tempfile::TempDir,
}

async fn start_with(edit: impl FnOnce(&mut ServerConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new(dir.path().join("data"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.tls = TlsSetting::InsecureHttp;
    edit(&mut cfg);
    let running = latchkey_server::start(cfg.clone()).await.unwrap();
    let admin_token = std::fs::read_to_string(cfg.data_dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    Server {
        running,
        admin_token,
        _dir: dir,
    }
}

async fn start() -> Server {
    start_with(|_| {}).await
}

#[derive(Debug)]
struct Answer {
    status: u16,
    /// Lowercase names; a repeated header keeps all its values.
    headers: BTreeMap<String, Vec<String>>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        let values = self.headers.get(name)?;
        assert_eq!(values.len(), 1, "{name} more than once: {values:?}");
        Some(values[0].as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn parse(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head: {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let (status, fields) = web_client::parse_head(head);
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in fields {
        headers.entry(k).or_default().push(v);
    }
    let body = raw[split + 4..].to_vec();
    assert!(
        !headers.contains_key("transfer-encoding"),
        "every answer here has a known length"
    );
    Answer {
        status,
        headers,
        body,
    }
}

/// One request on a new connection (`Connection: close`), read until the server closes it.
async fn send(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)]) -> Answer {
    send_body(addr, method, path, extra, b"").await
}

async fn send_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&bytes).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut raw))
        .await
        .expect("the server closes a Connection: close exchange")
        .unwrap();
    parse(&raw)
}

fn web_app_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web/app")
}

fn files_under(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let rel = format!("{prefix}{}", entry.file_name().into_string().unwrap());
        if entry.file_type().unwrap().is_dir() {
            files_under(&entry.path(), &format!("{rel}/"), out);
        } else {
            out.push(rel);
        }
    }
}

/// The content type each kind of file must be served with (issue 22), spelled out here
/// independently of the server's table.
fn expected_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap();
    if name == "LICENSE" || name.ends_with(".md") || name.ends_with(".txt") {
        return "text/plain; charset=utf-8";
    }
    match name.rsplit_once('.').unwrap().1 {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "webmanifest" => "application/manifest+json",
        "png" => "image/png",
        other => panic!("no expected content type for .{other} ({path})"),
    }
}

fn assert_app_headers(a: &Answer, what: &str) {
    assert_eq!(a.header("content-security-policy"), Some(CSP), "{what}");
    assert_eq!(
        a.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(a.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(
        a.header("permissions-policy"),
        Some("camera=(self)"),
        "{what}"
    );
    assert_eq!(a.header("cache-control"), Some("no-cache"), "{what}");
    let version = a.header("x-latchkey-app-version").unwrap_or_default();
    assert!(
        version.len() == 16 && version.bytes().all(|b| b.is_ascii_hexdigit()),
        "{what}: version {version:?}"
    );
}

fn index_html() -> Vec<u8> {
    std::fs::read(web_app_dir().join("index.html")).unwrap()
}

#[tokio::test]
async fn the_app_is_served_at_app_with_its_headers() {
    let srv = start().await;
    let addr = srv.running.info.addr;
    let a = send(addr, "GET", "/app/", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(a.body, index_html());
    assert_app_headers(&a, "/app/");
    assert!(a.header("access-control-allow-origin").is_none());

    // Registration links open the app, whatever their query.
    for path in [
        "/app/register",
        "/app/register?code=lkr_abc&pin=sha256:00",
        "/app/register?",
    ] {
        let r = send(addr, "GET", path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, index_html(), "{path}");
        assert_app_headers(&r, path);
        assert_eq!(r.header("etag"), a.header("etag"), "{path}");
    }

    // `/app` is the app's directory: a permanent redirect keeps method and query.
    for (path, to) in [("/app", "app/"), ("/app?code=x&pin=y", "app/?code=x&pin=y")] {
        let r = send(addr, "GET", path, &[]).await;
        assert_eq!(r.status, 308, "{path}");
        assert_eq!(r.header("location"), Some(to), "{path}");
        assert_app_headers(&r, path);
    }
}

#[tokio::test]
async fn every_file_of_the_app_is_served_with_its_type() {
    let srv = start().await;
    let addr = srv.running.info.addr;
    let mut files = Vec::new();
    files_under(&web_app_dir(), "", &mut files);
    assert!(files.len() >= 10, "{files:?}");
    let version = send(addr, "GET", "/app/", &[])
        .await
        .header("x-latchkey-app-version")
        .unwrap()
        .to_string();
    for f in &files {
        let path = format!("/app/{f}");
        let a = send(addr, "GET", &path, &[]).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text());
        assert_eq!(a.header("content-type"), Some(expected_type(f)), "{path}");
        assert_eq!(
            a.header("content-length"),
            Some(a.body.len().to_string().as_str()),
            "{path}"
        );
        assert_app_headers(&a, &path);
        assert_eq!(a.header("x-latchkey-app-version"), Some(version.as_str()));
        let on_disk = std::fs::read(web_app_dir().join(f)).unwrap();
        if f == "sw.js" {
            let text = a.text();
            assert!(!text.contains("__LK_ASSETS_VERSION__"), "{text}");
            assert!(text.contains(&version), "sw.js carries {version}: {text}");
            let raw = String::from_utf8(on_disk).unwrap();
            assert_eq!(text, raw.replace("__LK_ASSETS_VERSION__", &version));
        } else {
            assert_eq!(a.body, on_disk, "{path}");
        }
        // A strong tag: the SHA-256 of exactly the bytes served.
        let tag = format!("\"{}\"", latchkey_crypto::sha256_hex(&a.body));
        assert_eq!(a.header("etag"), Some(tag.as_str()), "{path}");
    }
}

#[tokio::test]
async fn a_known_tag_is_a_304_and_head_has_no_body() {
    let srv = start().await;
    let addr = srv.running.info.addr;
    for path in ["/app/", "/app/sw.js", "/app/vendor/jsqr/jsQR.js"] {
        let full = send(addr, "GET", path, &[]).await;
        let tag = full.header("etag").unwrap().to_string();
        for inm in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"other\", {tag}"),
            "*".to_string(),
        ] {
            let a = send(addr, "GET", path, &[("If-None-Match", &inm)]).await;
            assert_eq!(a.status, 304, "{path} with {inm}");
            assert!(a.body.is_empty());
            assert_eq!(a.header("etag"), Some(tag.as_str()));
            assert_app_headers(&a, path);
        }
        let a = send(addr, "GET", path, &[("If-None-Match", "\"stale\"")]).await;
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.body, full.body);

        let head = send(addr, "HEAD", path, &[]).await;
        assert_eq!(head.status, 200, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path}");
        assert_eq!(head.header("etag"), Some(tag.as_str()));
        assert_eq!(head.header("content-type"), full.header("content-type"));
        assert_eq!(head.header("content-length"), full.header("content-length"));
        assert_app_headers(&head, path);
    }
}

#[tokio::test]
async fn nothing_outside_the_table_is_served_under_app() {
    let srv = start().await;
    let addr = srv.running.info.addr;
    let admin_token = srv.admin_token.clone();
    let index = index_html();
    for path in [
        "/app/../healthz",
        "/app/..%2fhealthz",
        "/app/%2e%2e/admin.token",
        "/app/%2E%2E/%2E%2E/data/admin.token",
        "/app/vendor/../../x",
        "/app/vendor/../index.html",
        "/app/./index.html",
        "/app//index.html",
        "/app/vendor//jsqr/jsQR.js",
        "/app/index.html/",
        "/app/index.html%00",
        "/app/%69ndex.html",
        "/app/INDEX.HTML",
        "/app/vendor",
        "/app/vendor/",
        "/app/register/",
        "/app/register/x",
        "/app/..\\healthz",
        "/app/admin.token",
        "/app/latchkey.db",
        "/app/master.key",
        "/app/../../../../etc/passwd",
    ] {
        let a = send(addr, "GET", path, &[]).await;
        assert_eq!(a.status, 404, "{path}: {}", a.text());
        assert_app_headers(&a, path);
        let text = a.text();
        assert!(a.body != index && !text.contains(&admin_token) && !text.contains("\"ok\""));
        let j: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(j["error"], "not_found", "{path}");
    }
    // Not under /app at all: the router's own 404.
    for path in ["//app/index.html", "/app%2findex.html", "/apps/"] {
        let a = send(addr, "GET", path, &[]).await;
        assert_eq!(a.status, 404, "{path}");
    }
    // Only GET and HEAD.
    let a = send_body(addr, "POST", "/app/index.html", &[], b"x").await;
    assert_eq!(a.status, 405);
    assert_app_headers(&a, "POST /app/index.html");
}

async fn register_app(srv: &Server) -> (String, String) {
    let addr = srv.running.info.addr;
    let bearer = format!("Bearer {}", srv.admin_token);
    let auth = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let a = send_body(
        addr,
        "POST",
        routes::ADMIN_USERS,
        &auth,
        br#"{"name":"alice"}"#,
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text());
    let a = send_body(
        addr,
        "POST",
        &routes::admin_user_apps("alice"),
        &auth,
        b"{}",
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text());
    let code = serde_json::from_slice::<serde_json::Value>(&a.body).unwrap()["code"]
        .as_str()
        .unwrap()
        .to_string();
    let ed = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let body = serde_json::json!({
        "code": code,
        "device_name": "browser",
        "x25519_public": B64.encode(latchkey_crypto::hpke::public_key(&[9; 32])),
        "ed25519_public": B64.encode(ed.to_bytes()),
    });
    let a = send_body(
        addr,
        "POST",
        routes::APP_REGISTER,
        &[
            ("Origin", "https://other.example"),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text());
    assert_eq!(a.header("access-control-allow-origin"), Some("*"));
    let j: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    (
        j["app_id"].as_str().unwrap().to_string(),
        j["app_key"].as_str().unwrap().to_string(),
    )
}

const ORIGIN: (&str, &str) = ("Origin", "https://other.example");

#[tokio::test]
async fn the_token_app_api_answers_preflights_and_any_origin() {
    let srv = start().await;
    let addr = srv.running.info.addr;
    for path in routes::CORS_ROUTES {
        for method in ["GET", "POST"] {
            let a = send(
                addr,
                "OPTIONS",
                path,
                &[
                    ORIGIN,
                    ("Access-Control-Request-Method", method),
                    (
                        "Access-Control-Request-Headers",
                        "authorization, content-type",
                    ),
                ],
            )
            .await;
            assert_eq!(a.status, 204, "OPTIONS {path}");
            assert!(a.body.is_empty());
            assert_eq!(a.header("access-control-allow-origin"), Some("*"));
            assert_eq!(a.header("access-control-allow-methods"), Some("GET, POST"));
            assert_eq!(
                a.header("access-control-allow-headers"),
                Some("authorization, content-type")
            );
            assert_eq!(a.header("access-control-max-age"), Some("600"));
            assert!(a.header("access-control-allow-credentials").is_none());
        }
    }

    // Success and refusals alike are readable from another origin.
    let (app_id, app_key) = register_app(&srv).await;
    let bearer = format!("Bearer {app_key}");
    let ok = send(
        addr,
        "GET",
        "/v1/apps/pending?wait=0",
        &[ORIGIN, ("Authorization", &bearer)],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.header("access-control-allow-origin"), Some("*"));
    let json = ("Content-Type", "application/json");
    for (method, path, headers, body) in [
        ("GET", routes::APP_PENDING, vec![ORIGIN], &b""[..]),
        (
            "GET",
            routes::APP_PENDING,
            vec![ORIGIN, ("Authorization", "Bearer lkp_nosuchkey")],
            b"",
        ),
        ("POST", routes::APP_REGISTER, vec![ORIGIN, json], b"{}"),
        (
            "POST",
            routes::APP_REGISTER,
            vec![ORIGIN, json],
            br#"{"code":"lkr_nosuch","device_name":"x","x25519_public":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","ed25519_public":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#,
        ),
        ("POST", routes::APP_RESPOND, vec![ORIGIN, json], b"{}"),
        ("POST", routes::APP_BADGE, vec![ORIGIN], b"{}"),
        ("DELETE", routes::APP_BADGE, vec![ORIGIN], b""),
    ] {
        let a = send_body(addr, method, path, &headers, body).await;
        assert!(a.status >= 400, "{method} {path}: {}", a.status);
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some("*"),
            "{method} {path} → {}",
            a.status
        );
    }

    // A revoked app's 401 is readable by the app, so it can say so.
    let admin = format!("Bearer {}", srv.admin_token);
    let a = send(
        addr,
        "DELETE",
        &routes::admin_token(&app_id),
        &[("Authorization", &admin)],
    )
    .await;
    assert!(a.status < 300, "{}", a.text());
    let a = send(
        addr,
        "GET",
        "/v1/apps/pending?wait=0",
        &[ORIGIN, ("Authorization", &bearer)],
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.text());
    assert_eq!(a.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn no_other_route_answers_cors() {
    let srv = start().await;
    let addr = srv.running.info.addr;
    let admin = format!("Bearer {}", srv.admin_token);
    for r in ROUTES
        .iter()
        .filter(|r| !routes::CORS_ROUTES.contains(&r.pattern))
    {
        let values: Vec<&str> = r.params().map(|_| "nosuch").collect();
        let path = routes::fill(r.pattern, &values);
        let pre = send(
            addr,
            "OPTIONS",
            &path,
            &[ORIGIN, ("Access-Control-Request-Method", r.method.as_str())],
        )
        .await;
        assert_eq!(pre.status, 405, "OPTIONS {path}");
        let a = send(
            addr,
            r.method.as_str(),
            &path,
            &[ORIGIN, ("Authorization", &admin)],
        )
        .await;
        for answer in [&pre, &a] {
            assert!(
                !answer
                    .headers
                    .keys()
                    .any(|k| k.starts_with("access-control-")),
                "{} {path}: {:?}",
                r.method,
                answer.headers
            );
        }
    }
    // An admin listing that succeeds is still not readable cross-origin.
    let a = send(
        addr,
        "GET",
        routes::ADMIN_USERS,
        &[ORIGIN, ("Authorization", &admin)],
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(a.header("access-control-allow-origin").is_none());
    // The app's own pages are same-origin.
    let a = send(addr, "OPTIONS", "/app/", &[ORIGIN]).await;
    assert!(a.header("access-control-allow-origin").is_none());
}

/// A preflight is a request like any other to the accept loop: it takes a connection slot
/// of its address, and a body it declares does not keep the connection.
#[tokio::test]
async fn preflights_count_against_the_connection_caps() {
    let srv = start_with(|cfg| cfg.max_connections_per_address = 2).await;
    let addr = srv.running.info.addr;
    let held = [
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    // The accept loop counts a connection when it accepts it: give it the time to.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    let _ = third
        .write_all(
            b"OPTIONS /v1/apps/pending HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut raw)).await;
    assert!(raw.is_empty(), "over the cap: closed without an answer");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = send(addr, "OPTIONS", routes::APP_PENDING, &[ORIGIN]).await;
    assert_eq!(a.status, 204);

    // A declared body that never comes: the 204 comes at once and the connection ends
    // (the body is not read, so the connection cannot be kept for another request).
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"OPTIONS /v1/apps/register HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n\r\n",
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut raw))
        .await
        .expect("the server ends the connection")
        .unwrap();
    assert_eq!(parse(&raw).status, 204);
}
