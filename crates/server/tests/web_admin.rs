//! The admin console from outside: a real latchkeyd over loopback TLS, a small HTTPS/1.1
//! client that keeps cookies like a browser, the answers read as they are sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey_client::{Client, ClientConfig, Credential, Method, Trust};
use latchkey_proto::admin::{AdminCreate, AdminCreated};
use latchkey_proto::{OtpAlgorithm, Secret, routes};
use latchkey_server::{RunningServer, ServerConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const PASSWORD: &str = "correct horse battery";

struct Server {
    running: RunningServer,
    admin_token: String,
    tls: Arc<rustls::ClientConfig>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new(dir.path().join("data"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    let running = latchkey_server::start(cfg.clone()).await.unwrap();
    let admin_token = std::fs::read_to_string(cfg.data_dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let pem = std::fs::read(cfg.data_dir.join("tls.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Server {
        running,
        admin_token,
        tls: Arc::new(tls),
        _dir: dir,
    }
}

impl Server {
    fn api(&self) -> Client {
        let info = &self.running.info;
        Client::new(
            ClientConfig::parse(&info.url())
                .unwrap()
                .with_trust(Trust::Pin(info.tls_fingerprint.clone()))
                .with_credential(Credential::Bearer(self.admin_token.clone())),
        )
        .unwrap()
    }

    fn origin(&self) -> String {
        format!("https://localhost:{}", self.running.info.addr.port())
    }

    async fn add_admin(&self, name: &str) -> AdminCreated {
        let body = serde_json::to_value(AdminCreate {
            name: name.into(),
            password: Secret::new(PASSWORD),
        })
        .unwrap();
        let (_, bytes) = self
            .api()
            .request(Method::POST, routes::ADMIN_ADMINS, Some(body))
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn browser(&self) -> Browser<'_> {
        Browser {
            srv: self,
            cookies: BTreeMap::new(),
        }
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// The value of the first `name="csrf"` hidden field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

/// Keeps cookies as a browser does (by name; `Max-Age=0` deletes) and sends the headers a
/// browser sends with a same-origin form.
struct Browser<'a> {
    srv: &'a Server,
    cookies: BTreeMap<String, String>,
}

impl Browser<'_> {
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let addr = self.srv.running.info.addr;
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(self.srv.tls.clone())
            .connect(name, tcp)
            .await
            .unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n",
            addr.port()
        );
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req.push_str(&format!("Cookie: {}\r\n", c.join("; ")));
        }
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if method == "POST" {
            req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body);
        tls.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let _ = tls.read_to_end(&mut raw).await;
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let a = Answer {
            status,
            headers,
            body: body.to_string(),
        };
        for c in a.all("set-cookie") {
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        a
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, &[], "").await
    }

    /// A same-origin form POST, as a browser sends it.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let origin = self.srv.origin();
        let body = form(fields);
        self.send(
            "POST",
            path,
            &[("Origin", &origin), ("Sec-Fetch-Site", "same-origin")],
            &body,
        )
        .await
    }

    /// Signs in as `name` with the password and a current code; returns the answer.
    async fn sign_in(&mut self, created: &AdminCreated, password: &str) -> Answer {
        let page = self.get(routes::UI_SIGNIN).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.csrf();
        let code = code_now(created);
        self.post(
            routes::UI_SIGNIN,
            &[
                ("csrf", &csrf),
                ("name", &created.name),
                ("password", password),
                ("code", &code),
            ],
        )
        .await
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", routes::encode_path_segment(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn code_now(created: &AdminCreated) -> String {
    let secret = latchkey_crypto::base32_decode(&created.secret).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    latchkey_crypto::otp::totp(&secret, now, 30, OtpAlgorithm::Sha1, 6)
}

fn assert_security_headers(a: &Answer, what: &str) {
    assert_eq!(a.header("content-security-policy"), Some(CSP), "{what}");
    assert_eq!(a.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        a.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(a.header("referrer-policy"), Some("no-referrer"), "{what}");
}

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
    let cookie = a
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("__Host-latchkey="))
        .expect("a session cookie");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
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
    let a = b
        .send(
            "GET",
            routes::UI_ADMIN,
            &[("Authorization", &admin_key)],
            "",
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = b
        .send(
            "GET",
            routes::UI_ADMIN,
            &[("Authorization", "Bearer lkm_not_a_session")],
            "",
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    // Even beside a live session cookie.
    assert_eq!(b.sign_in(&created, PASSWORD).await.status, 303);
    let a = b
        .send(
            "GET",
            routes::UI_ADMIN,
            &[("Authorization", &admin_key)],
            "",
        )
        .await;
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
