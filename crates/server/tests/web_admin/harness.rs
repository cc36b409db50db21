//! The harness: a real latchkeyd over loopback TLS, the shared browser-like client
//! (`support/web_client.rs`) and what the console's tests add to it: an admin's sign-in, a
//! form submitted with its page's token, the API's view of what the console did.

use latchkey_client::{Client, ClientConfig, Credential, Method, Trust};
use latchkey_proto::admin::{AdminCreate, AdminCreated};
use latchkey_proto::{OtpAlgorithm, Secret, routes};
use latchkey_server::{RunningServer, ServerConfig};
use std::sync::Arc;

#[path = "../support/web_client.rs"]
mod web_client;
use web_client::tls_trusting;
pub use web_client::{Answer, Browser, form};

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
pub const PASSWORD: &str = "correct horse battery";

pub struct Server {
    pub running: RunningServer,
    pub admin_token: String,
    pub tls: Arc<rustls::ClientConfig>,
    pub _dir: tempfile::TempDir,
}

pub async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new(dir.path().join("data"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    let running = latchkey_server::start(cfg.clone()).await.unwrap();
    let admin_token = std::fs::read_to_string(cfg.data_dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    Server {
        running,
        admin_token,
        tls: tls_trusting(&cfg.data_dir.join("tls.crt")),
        _dir: dir,
    }
}

impl Server {
    pub fn api(&self) -> Client {
        let info = &self.running.info;
        Client::new(
            ClientConfig::parse(&info.url())
                .unwrap()
                .with_trust(Trust::Pin(info.tls_fingerprint.clone()))
                .with_credential(Credential::Bearer(self.admin_token.clone())),
        )
        .unwrap()
    }

    pub async fn add_admin(&self, name: &str) -> AdminCreated {
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

    pub fn browser(&self) -> Browser {
        Browser::new(self.running.info.addr, self.tls.clone())
    }
}

impl Browser {
    /// Signs in as `name` with the password and a current code; returns the answer.
    pub async fn sign_in(&mut self, created: &AdminCreated, password: &str) -> Answer {
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

pub fn code_now(created: &AdminCreated) -> String {
    let secret = latchkey_crypto::base32_decode(&created.secret).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    latchkey_crypto::otp::totp(&secret, now, 30, OtpAlgorithm::Sha1, 6)
}

pub fn assert_security_headers(a: &Answer, what: &str) {
    assert_eq!(a.header("content-security-policy"), Some(CSP), "{what}");
    assert_eq!(a.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        a.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(a.header("referrer-policy"), Some("same-origin"), "{what}");
}

/// The answer sets the session cookie, host-only (no `Domain`), `Secure`, `HttpOnly`,
/// `SameSite=Strict` and for the whole site.
pub fn assert_session_cookie(a: &Answer) {
    let cookie = a
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("__Host-latchkey="))
        .expect("a session cookie");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
}

impl Server {
    /// A browser signed in as a new admin `root`.
    pub async fn console(&self) -> Browser {
        let created = self.add_admin("root").await;
        let mut b = self.browser();
        let a = b.sign_in(&created, PASSWORD).await;
        assert_eq!(a.status, 303, "{}", a.body);
        b
    }

    /// The audit log as the API reads it.
    pub async fn audit(&self) -> Vec<latchkey_proto::admin::AuditEntry> {
        let (_, log) = self
            .api()
            .request(Method::GET, routes::ADMIN_AUDIT, None)
            .await
            .unwrap();
        serde_json::from_slice(&log).unwrap()
    }

    /// Whether the audit log holds `action` by `admin:root`.
    pub async fn audited(&self, action: &str) -> bool {
        self.audit()
            .await
            .iter()
            .any(|e| e.action == action && e.actor == "admin:root")
    }
}

impl Browser {
    /// GET `path`, then POST `fields` with the page's CSRF token to `action`.
    pub async fn submit(&mut self, path: &str, action: &str, fields: &[(&str, &str)]) -> Answer {
        let page = self.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let csrf = page.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }
}

/// The text of the element with id `id` (its first text run), HTML entities left as sent.
pub fn text_of(body: &str, id: &str) -> Option<String> {
    let at = body.find(&format!("id=\"{id}\""))?;
    let rest = &body[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')?;
    Some(rest[start..start + end].to_string())
}

impl Server {
    pub async fn api_tokens(&self, user: &str) -> Vec<latchkey_proto::admin::TokenInfo> {
        let (_, b) = self
            .api()
            .request(Method::GET, &routes::admin_user_tokens(user), None)
            .await
            .unwrap();
        serde_json::from_slice(&b).unwrap()
    }

    pub async fn api_token_add(&self, user: &str) {
        let body = serde_json::json!({ "kind": "totp" });
        self.api()
            .request(Method::POST, &routes::admin_user_tokens(user), Some(body))
            .await
            .unwrap();
    }

    pub async fn api_verify(&self, user: &str, code: &str) {
        let body = serde_json::json!({ "code": code });
        let _ = self
            .api()
            .request(Method::POST, &routes::admin_user_verify(user), Some(body))
            .await;
    }
}
