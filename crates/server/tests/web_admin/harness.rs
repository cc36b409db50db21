//! The harness: a real latchkeyd over loopback TLS and a small HTTPS/1.1 client that keeps
//! cookies like a browser.

use latchkey_client::{Client, ClientConfig, Credential, Method, Trust};
use latchkey_proto::admin::{AdminCreate, AdminCreated};
use latchkey_proto::{OtpAlgorithm, Secret, routes};
use latchkey_server::{RunningServer, ServerConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

    pub fn origin(&self) -> String {
        format!("https://localhost:{}", self.running.info.addr.port())
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

    pub fn browser(&self) -> Browser<'_> {
        Browser {
            srv: self,
            cookies: BTreeMap::new(),
        }
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// The value of the first `name="csrf"` hidden field.
    pub fn csrf(&self) -> String {
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
pub struct Browser<'a> {
    pub srv: &'a Server,
    pub cookies: BTreeMap<String, String>,
}

impl Browser<'_> {
    pub async fn send(
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

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, &[], "").await
    }

    /// A same-origin form POST, as a browser sends it.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
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

pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", routes::encode_path_segment(v)))
        .collect::<Vec<_>>()
        .join("&")
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

impl Server {
    /// A browser signed in as a new admin `root`.
    pub async fn console(&self) -> Browser<'_> {
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

impl Browser<'_> {
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
