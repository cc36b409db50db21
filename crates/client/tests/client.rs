//! The client against real sockets: trust (pin, CA file), client certificates, proxy,
//! timeouts, error mapping and connection reuse.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use latchkey_client::{Client, ClientConfig, Credential, Error, StatusCode, Trust, Url};
use serde_json::Value;
use std::time::{Duration, Instant};

fn config(url: &str) -> ClientConfig {
    ClientConfig::parse(url)
        .unwrap()
        .with_connect_timeout(Duration::from_millis(500))
        .with_request_timeout(Duration::from_millis(1000))
}

#[tokio::test]
async fn pinned_certificate_is_accepted() {
    let server = tls_server(None).await;
    let client =
        Client::new(config(&server.https_url()).with_trust(Trust::Pin(server.pin()))).unwrap();
    let v: Value = client.get("/ok").await.unwrap();
    assert_eq!(v["line"], "GET /ok HTTP/1.1");
}

#[tokio::test]
async fn pin_works_with_any_name_since_the_pin_is_the_identity() {
    let server = tls_server(None).await;
    // The certificate names localhost and 127.0.0.1, not 127.0.0.2.
    let url = format!("https://127.0.0.2:{}", server.addr.port());
    let url = if tokio::net::TcpStream::connect(("127.0.0.2", server.addr.port()))
        .await
        .is_ok()
    {
        url
    } else {
        format!("https://localhost:{}", server.addr.port())
    };
    let client = Client::new(config(&url).with_trust(Trust::Pin(server.pin()))).unwrap();
    let _: Value = client.get("/ok").await.unwrap();
}

#[tokio::test]
async fn wrong_pin_is_refused_as_tls_error() {
    let server = tls_server(None).await;
    let other = latchkey_client::cert_sha256_pin(self_signed().cert.der());
    let client = Client::new(config(&server.https_url()).with_trust(Trust::Pin(other))).unwrap();
    let err = client.get::<Value>("/ok").await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("pin did not match"), "{err}");
    assert!(err.is_unreachable());
}

#[tokio::test]
async fn ca_file_holding_the_self_signed_server_certificate_verifies() {
    let server = tls_server(None).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write_temp(&dir, "tls.crt", &server.cert.cert.pem());
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}", server.addr.port());
        let client = Client::new(config(&url).with_trust(Trust::WebPkiCaFile(ca.clone()))).unwrap();
        let v: Value = client.get("/ok").await.unwrap();
        assert_eq!(v["line"], "GET /ok HTTP/1.1", "via {host}");
    }
}

#[tokio::test]
async fn ca_file_with_another_certificate_is_refused() {
    let server = tls_server(None).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write_temp(&dir, "other.crt", &self_signed().cert.pem());
    let client =
        Client::new(config(&server.https_url()).with_trust(Trust::WebPkiCaFile(ca))).unwrap();
    let err = client.get::<Value>("/ok").await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
}

#[tokio::test]
async fn missing_or_empty_ca_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.crt");
    let err = Client::new(config("https://127.0.0.1:1").with_trust(Trust::WebPkiCaFile(missing)))
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let empty = write_temp(&dir, "empty.crt", "");
    let err = Client::new(config("https://127.0.0.1:1").with_trust(Trust::WebPkiCaFile(empty)))
        .unwrap_err();
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
}

#[tokio::test]
async fn connection_refused_is_connect_error_quickly() {
    let addr = closed_port().await;
    let client = Client::new(
        config(&format!("https://127.0.0.1:{}", addr.port()))
            .with_trust(Trust::Pin(latchkey_client::cert_sha256_pin(b"x"))),
    )
    .unwrap();
    let start = Instant::now();
    let err = client.get::<Value>("/ok").await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot reach https://127.0.0.1:{}: connection refused",
            addr.port()
        )
    );
    assert!(err.is_unreachable());
}

#[tokio::test]
async fn unresolvable_host_is_connect_error() {
    let client = Client::new(config("http://no-such-host.invalid:8443")).unwrap();
    let err = client.get::<Value>("/ok").await.unwrap_err();
    assert!(
        matches!(err, Error::Connect { .. } | Error::Timeout { .. }),
        "{err:?}"
    );
    assert!(err.is_unreachable());
}

#[tokio::test]
async fn silent_https_server_times_out_within_the_connect_timeout() {
    let addr = silent_listener().await;
    let client = Client::new(
        ClientConfig::parse(&format!("https://127.0.0.1:{}", addr.port()))
            .unwrap()
            .with_trust(Trust::Pin(latchkey_client::cert_sha256_pin(b"x")))
            .with_connect_timeout(Duration::from_millis(300))
            .with_request_timeout(Duration::from_millis(600)),
    )
    .unwrap();
    let start = Instant::now();
    let err = client.get::<Value>("/ok").await.unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(600),
        "{took:?}"
    );
    assert!(err.is_unreachable());
}

#[tokio::test]
async fn silent_http_server_times_out_within_the_request_timeout() {
    let addr = silent_listener().await;
    let client = Client::new(
        ClientConfig::parse(&format!("http://127.0.0.1:{}", addr.port()))
            .unwrap()
            .with_request_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let start = Instant::now();
    let err = client.get::<Value>("/ok").await.unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(took < Duration::from_millis(800), "{took:?}");
    assert!(
        err.to_string().contains("did not answer within 0.3 s"),
        "{err}"
    );
}

#[tokio::test]
async fn https_goes_through_a_connect_tunnel() {
    let server = tls_server(None).await;
    let (proxy_addr, seen) = proxy(false).await;
    let proxy_url = Url::parse(&format!("http://127.0.0.1:{}", proxy_addr.port())).unwrap();
    let client = Client::new(
        config(&server.https_url())
            .with_trust(Trust::Pin(server.pin()))
            .with_proxy(proxy_url),
    )
    .unwrap();
    let v: Value = client.get("/ok").await.unwrap();
    assert_eq!(
        v["line"], "GET /ok HTTP/1.1",
        "origin-form inside the tunnel"
    );
    let _: Value = client.get("/ok").await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![format!("CONNECT 127.0.0.1:{} HTTP/1.1", server.addr.port())],
        "one tunnel, reused"
    );
}

#[tokio::test]
async fn proxy_refusing_the_tunnel_is_connect_error() {
    let server = tls_server(None).await;
    let (proxy_addr, _) = proxy(true).await;
    let proxy_url = Url::parse(&format!("http://127.0.0.1:{}", proxy_addr.port())).unwrap();
    let client = Client::new(
        config(&server.https_url())
            .with_trust(Trust::Pin(server.pin()))
            .with_proxy(proxy_url),
    )
    .unwrap();
    let err = client.get::<Value>("/ok").await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("403"), "{err}");
}

#[tokio::test]
async fn plain_http_is_forwarded_in_absolute_form() {
    let (proxy_addr, seen) = proxy(false).await;
    let proxy_url = Url::parse(&format!("http://127.0.0.1:{}", proxy_addr.port())).unwrap();
    let client = Client::new(config("http://server.invalid:8080").with_proxy(proxy_url)).unwrap();
    let _: Value = client.get("/ok").await.unwrap();
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec!["GET http://server.invalid:8080/ok HTTP/1.1".to_string()]
    );
}

#[tokio::test]
async fn client_certificate_is_presented_to_a_server_that_requires_one() {
    let pki = client_pki();
    let server = tls_server(Some(&pki.ca)).await;
    let dir = tempfile::tempdir().unwrap();
    let cert_pem = write_temp(&dir, "client.crt", &pki.client.cert.pem());
    let key_pem = write_temp(&dir, "client.key", &pki.client.key_pair.serialize_pem());
    let client = Client::new(
        config(&server.https_url())
            .with_trust(Trust::Pin(server.pin()))
            .with_credential(Credential::ClientCert { cert_pem, key_pem }),
    )
    .unwrap();
    let v: Value = client.get("/ok").await.unwrap();
    assert_eq!(
        v["peer_cert"],
        latchkey_client::cert_sha256_pin(pki.client.cert.der())
    );
}

#[tokio::test]
async fn server_requiring_a_client_certificate_refuses_a_client_without_one() {
    let pki = client_pki();
    let server = tls_server(Some(&pki.ca)).await;
    let client =
        Client::new(config(&server.https_url()).with_trust(Trust::Pin(server.pin()))).unwrap();
    let err = client.get::<Value>("/ok").await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
}

#[tokio::test]
async fn bearer_token_is_sent_and_answers_are_mapped() {
    let server = tls_server(None).await;
    let client = Client::new(
        config(&server.https_url())
            .with_trust(Trust::Pin(server.pin()))
            .with_credential(Credential::Bearer("tok-123".into())),
    )
    .unwrap();
    let v: Value = client
        .post("/echo", &serde_json::json!({"name": "bob"}))
        .await
        .unwrap();
    assert_eq!(v["auth"], "Bearer tok-123");
    assert_eq!(v["line"], "POST /echo HTTP/1.1");
    assert_eq!(v["body"], r#"{"name":"bob"}"#);

    let v: Value = client
        .patch("/echo", &serde_json::json!({"enabled": false}))
        .await
        .unwrap();
    assert_eq!(v["line"], "PATCH /echo HTTP/1.1");

    client.delete("/gone").await.unwrap();

    let err = client.get::<Value>("/missing").await.unwrap_err();
    match &err {
        Error::Api {
            status,
            error,
            message,
        } => {
            assert_eq!(*status, StatusCode::NOT_FOUND);
            assert_eq!(error, "not_found");
            assert_eq!(message, "user \"bob\" not found");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_unreachable());
    assert!(!err.to_string().contains("tok-123"));

    let err = client.get::<Value>("/boom").await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(err.is_unreachable(), "5xx counts as unreachable");

    let err = client.get::<Value>("/notjson").await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");

    let (status, body) = client
        .request(latchkey_client::Method::GET, "/ok", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_are_reused() {
    let server = tls_server(None).await;
    let client =
        Client::new(config(&server.https_url()).with_trust(Trust::Pin(server.pin()))).unwrap();
    for _ in 0..50 {
        let _: Value = client.get("/ok").await.unwrap();
    }
    // hyper-util returns a connection to the pool asynchronously after the body is read, so
    // under load the next request sometimes races it and dials another connection. Reuse is
    // what matters: 50 requests must not take more than a handful of connections.
    assert!(
        server.accepted() <= 5,
        "sequential requests share a connection ({} accepted)",
        server.accepted()
    );

    // Concurrent requests open about as many connections as are in flight (hyper-util may
    // keep a connection that lost the race against a freed idle one), not one per request.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    let _: Value = c.get("/ok").await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(server.accepted() <= 17, "{} connections", server.accepted());
}

#[tokio::test]
async fn plain_http_server_works_without_trust() {
    let (addr, _) = plain_server().await;
    let client = Client::new(config(&format!("http://127.0.0.1:{}/", addr.port()))).unwrap();
    let v: Value = client.get("/ok").await.unwrap();
    assert_eq!(v["line"], "GET /ok HTTP/1.1");
}
