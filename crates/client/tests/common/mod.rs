//! In-test servers for the client tests: a tiny HTTP/1.1 server (TLS or plain, optionally
//! requiring a client certificate), a CONNECT/forwarding proxy, and a silent listener.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use latchkey_client::cert_sha256_pin;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedKey, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed end-entity certificate for `localhost` and `127.0.0.1`, as the server makes.
pub fn self_signed() -> CertifiedKey {
    rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap()
}

/// A CA and a client certificate it signed (TLS client authentication).
pub struct ClientPki {
    pub ca: CertifiedKey,
    pub client: CertifiedKey,
}

pub fn client_pki() -> ClientPki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["machine-1".into()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = params.signed_by(&client_key, &ca_cert, &ca_key).unwrap();
    ClientPki {
        ca: CertifiedKey {
            cert: ca_cert,
            key_pair: ca_key,
        },
        client: CertifiedKey {
            cert: client_cert,
            key_pair: client_key,
        },
    }
}

pub fn write_temp(dir: &tempfile::TempDir, name: &str, contents: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub cert: CertifiedKey,
    pub control: Arc<Control>,
}

/// Switches for a running [`tls_server`], to play a server that dies or misbehaves.
pub struct Control {
    /// Requests answered (any status).
    requests: AtomicUsize,
    /// When set, connections are closed at once and requests are dropped unanswered.
    down: AtomicBool,
    /// When non-zero, every request is answered with this status and an API error body.
    forced_status: AtomicU16,
    stop: watch::Sender<bool>,
}

impl Control {
    fn new() -> Arc<Control> {
        Arc::new(Control {
            requests: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            forced_status: AtomicU16::new(0),
            stop: watch::channel(false).0,
        })
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Resolves once `stop` was called; never if it was not.
    async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        if rx.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl TestServer {
    /// Requests this server answered.
    pub fn requests(&self) -> usize {
        self.control.requests.load(Ordering::SeqCst)
    }
    /// Closes the listener and every open connection: later connects are refused.
    pub fn stop(&self) {
        self.control.stop.send_replace(true);
    }
    /// While down, the port still accepts TCP but closes each connection at once, and requests
    /// on kept-alive connections are dropped unanswered.
    pub fn set_down(&self, down: bool) {
        self.control.down.store(down, Ordering::SeqCst);
    }
    /// Answer every request with `status` (e.g. 503), or normally again with `None`.
    pub fn force_status(&self, status: Option<u16>) {
        self.control
            .forced_status
            .store(status.unwrap_or(0), Ordering::SeqCst);
    }
    pub fn pin(&self) -> String {
        cert_sha256_pin(self.cert.cert.der())
    }
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }
    pub fn accepted(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// HTTPS server with a fresh self-signed certificate. With `client_ca`, a client certificate
/// signed by that CA is required.
pub async fn tls_server(client_ca: Option<&CertifiedKey>) -> TestServer {
    let cert = self_signed();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.cert.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let control = Control::new();
    let ctl = control.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = ctl.stopped() => return,
            };
            let Ok((tcp, _)) = accepted else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            if ctl.is_down() {
                continue;
            }
            let acceptor = acceptor.clone();
            let ctl = ctl.clone();
            tokio::spawn(async move {
                let conn = async {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let peer = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c: &CertificateDer<'_>| cert_sha256_pin(c.as_ref()));
                    serve_with(tls, peer, Some(&ctl)).await;
                };
                tokio::select! {
                    _ = conn => {}
                    _ = ctl.stopped() => {}
                }
            });
        }
    });
    TestServer {
        addr,
        connections,
        cert,
        control,
    }
}

/// Plain HTTP server with the same routes.
pub async fn plain_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(tcp, None));
        }
    });
    (addr, connections)
}

/// Accepts TCP connections and never sends a byte (keeps them open).
pub async fn silent_listener() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    addr
}

/// Like [`silent_listener`], counting the connections it accepted.
pub async fn counted_silent_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            held.push(tcp);
        }
    });
    (addr, count)
}

/// A port with nothing listening.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

pub struct Request {
    pub line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request head + Content-Length body; `None` at end of stream.
pub async fn read_request<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Option<Request> {
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    buf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < len {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf.drain(..len).collect();
    Some(Request {
        line,
        headers,
        body,
    })
}

/// Routes: `/ok` echoes what the server saw; `/missing` is a 404 API error; `/gone` a 204;
/// `/boom` a 503 API error; `/notjson` a 200 with a non-JSON body.
fn route(req: &Request, peer: &Option<String>) -> (u16, String) {
    let path = req.line.split(' ').nth(1).unwrap_or("");
    let path = path
        .strip_prefix("http://")
        .and_then(|p| p.find('/').map(|i| &p[i..]))
        .unwrap_or(path);
    match path {
        "/ok" | "/echo" => (
            200,
            serde_json::json!({
                "line": req.line,
                "host": req.header("host"),
                "auth": req.header("authorization"),
                "peer_cert": peer,
                "body": String::from_utf8_lossy(&req.body),
            })
            .to_string(),
        ),
        "/missing" => (
            404,
            r#"{"error":"not_found","message":"user \"bob\" not found"}"#.into(),
        ),
        "/boom" => (
            503,
            r#"{"error":"unavailable","message":"store is down"}"#.into(),
        ),
        "/gone" => (204, String::new()),
        "/notjson" => (200, "hello".into()),
        _ => (404, r#"{"error":"not_found","message":"no route"}"#.into()),
    }
}

pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(s: S, peer: Option<String>) {
    serve_with(s, peer, None).await
}

async fn serve_with<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    peer: Option<String>,
    control: Option<&Control>,
) {
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut s, &mut buf).await {
        let forced = match control {
            Some(c) if c.is_down() => return,
            Some(c) => {
                c.requests.fetch_add(1, Ordering::SeqCst);
                c.forced_status.load(Ordering::SeqCst)
            }
            None => 0,
        };
        let (status, body) = if forced != 0 {
            (
                forced,
                format!(r#"{{"error":"forced","message":"forced status {forced}"}}"#),
            )
        } else {
            route(&req, &peer)
        };
        let head = if status == 204 {
            "HTTP/1.1 204 No Content\r\n\r\n".to_string()
        } else {
            format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
        };
        if s.write_all(format!("{head}{body}").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// An HTTP proxy: CONNECT tunnels (or refuses with 403 when `refuse`), and answers
/// absolute-form requests itself with the normal routes. Records every request line.
pub async fn proxy(refuse: bool) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let Some(req) = read_request(&mut tcp, &mut buf).await else {
                    return;
                };
                log.lock().unwrap().push(req.line.clone());
                if let Some(target) = req.line.strip_prefix("CONNECT ") {
                    let target = target.split(' ').next().unwrap_or("").to_string();
                    if refuse {
                        let _ = tcp.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
                        return;
                    }
                    let Ok(mut upstream) = TcpStream::connect(&target).await else {
                        let _ = tcp.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    let _ = tcp
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await;
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut upstream).await;
                } else {
                    let (status, body) = route(&req, &None);
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = tcp.write_all(format!("{head}{body}").as_bytes()).await;
                }
            });
        }
    });
    (addr, seen)
}
