//! Service workers need a valid TLS state: they refuse to register on an origin with a
//! certificate error, which is why the harness pins latchkeyd's key
//! (`--ignore-certificate-errors-spki-list`) instead of ignoring certificate errors.
//!
//! latchkeyd itself serves no script outside the token app (its own tests register the
//! app's worker at `/app/`), so this serves a page and a worker with latchkeyd's own
//! certificate and key from its data directory, on another loopback port.

use latchkey_testkit::TestServer;
use latchkey_testkit::browser::{Browser, LaunchOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PAGE: &str = "<!doctype html><title>sw</title><p id=state>page</p>";
const WORKER: &str = "self.addEventListener('install', () => self.skipWaiting());\n\
    self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));\n";

/// A static HTTPS server of two files with `srv`'s certificate; returns its origin.
async fn serve_with_server_cert(srv: &TestServer) -> (String, tokio::task::JoinHandle<()>) {
    let data = srv.data_dir();
    let cert = CertificateDer::from_pem_file(data.join("tls.crt")).unwrap();
    let key = PrivateKeyDer::from_pem_file(data.join("tls.key")).unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("https://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head);
                let path = line.split_whitespace().nth(1).unwrap_or("/");
                let (status, kind, body) = match path {
                    "/" => ("200 OK", "text/html", PAGE),
                    "/sw.js" => ("200 OK", "text/javascript", WORKER),
                    _ => ("404 Not Found", "text/plain", "not found"),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
                     Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (origin, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the driver's node_modules: scripts/test runs it"]
async fn a_service_worker_registers_on_an_origin_with_the_pinned_certificate() {
    let srv = TestServer::start().await.unwrap();
    let (origin, task) = serve_with_server_cert(&srv).await;
    let mut b = Browser::launch(LaunchOptions::for_server(&srv).unwrap())
        .await
        .unwrap();
    assert_eq!(b.goto(&format!("{origin}/")).await.unwrap(), Some(200));
    let reg = b
        .eval(
            "const r = await navigator.serviceWorker.register('/sw.js');\n\
             const ready = await navigator.serviceWorker.ready;\n\
             return { scope: r.scope, active: ready.active && ready.active.state };",
        )
        .await
        .unwrap();
    assert_eq!(reg["scope"], json!(format!("{origin}/")), "{reg}");
    assert!(
        reg["active"] == "activated" || reg["active"] == "activating",
        "{reg}"
    );
    assert!(b.console().await.unwrap().errors.is_empty());
    task.abort();
}
