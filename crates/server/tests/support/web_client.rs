//! A small HTTPS/1.1 client that keeps cookies like a browser, for the server's web tests.
//!
//! Not a test target of its own (cargo builds only `tests/*.rs` and `tests/*/main.rs`): each
//! test crate takes it in with `#[path = "…/support/web_client.rs"] mod web_client;` and
//! adds what is its own (an admin's sign-in, an invite's redemption) in its own files.
//! `parse_head` also serves the plain-HTTP tests, which use nothing else here.

#![allow(dead_code)]

use latchkey_proto::routes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TLS client configuration that trusts the certificates in the PEM file at `pem_path`
/// (the server's own `tls.crt`).
pub fn tls_trusting(pem_path: &std::path::Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(pem_path).unwrap();
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
    Arc::new(tls)
}

/// An answer's head: the status and the header fields in order, names in lowercase. Every
/// line after the status line must be a `name: value` field.
pub fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("not a header field: {l:?}"));
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    (status, headers)
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
        self.between("name=\"csrf\" value=\"", "\"")
    }

    /// The body's text from the first `start` to the next `end`.
    pub fn between(&self, start: &str, end: &str) -> String {
        let at = self
            .body
            .find(start)
            .unwrap_or_else(|| panic!("{start} in {}", self.body));
        let rest = &self.body[at + start.len()..];
        rest[..rest.find(end).unwrap()].to_string()
    }
}

/// Keeps cookies as a browser does (by name; `Max-Age=0` deletes) and sends the headers a
/// browser sends with a same-origin form. One request a connection (`Connection: close`),
/// to `localhost` at the server's port.
pub struct Browser {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    /// A browser with no cookies yet, for the server at `addr` whose certificate `tls`
    /// trusts.
    pub fn new(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Self {
        Browser {
            addr,
            tls,
            cookies: BTreeMap::new(),
        }
    }

    /// The origin a same-origin page of the server has.
    pub fn origin(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n",
            self.addr.port()
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
        let (status, headers) = parse_head(head);
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
        let origin = self.origin();
        let body = form(fields);
        self.send(
            "POST",
            path,
            &[("Origin", &origin), ("Sec-Fetch-Site", "same-origin")],
            &body,
        )
        .await
    }
}

/// Form fields as a browser encodes them for `application/x-www-form-urlencoded`.
pub fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", routes::encode_path_segment(v)))
        .collect::<Vec<_>>()
        .join("&")
}
