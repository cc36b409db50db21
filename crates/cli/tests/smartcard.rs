//! `latchkey token add-smartcard` against a real latchkeyd.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey_testkit::TestServer;
use rcgen::{CertificateParams, DnType, KeyPair};
use std::process::Output;

async fn run(srv: &TestServer, cwd: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.current_dir(cwd)
        .env_clear()
        .env("LATCHKEY_SERVER", srv.url())
        .env("LATCHKEY_PIN", &srv.info.tls_fingerprint)
        .env("LATCHKEY_ADMIN_TOKEN", &srv.admin_token)
        .args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn cert_pem(cn: &str, not_after: i64) -> String {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = time::OffsetDateTime::from_unix_timestamp(1_600_000_000).unwrap();
    p.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
    p.self_signed(&key).unwrap().pem()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_smartcard_registers_a_certificate_or_prints_an_enrollment_code() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("alice", &[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("alice.pem"),
        cert_pem("Alice", 4_000_000_000),
    )
    .unwrap();
    std::fs::write(dir.path().join("old.pem"), cert_pem("Old", 1_700_000_000)).unwrap();

    let o = run(
        &srv,
        dir.path(),
        &[
            "token",
            "add-smartcard",
            "alice",
            "--cert",
            "alice.pem",
            "--label",
            "badge",
        ],
    )
    .await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    assert!(
        out.starts_with("Smartcard token ") && out.contains("CN=Alice"),
        "{out}"
    );

    let o = run(&srv, dir.path(), &["token", "list", "alice"]).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("smartcard") && out.contains("badge CN=Alice (until 2096-"),
        "{out}"
    );

    let o = run(
        &srv,
        dir.path(),
        &["token", "add-smartcard", "alice", "--cert", "old.pem"],
    )
    .await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("expired"), "{err}");

    let o = run(
        &srv,
        dir.path(),
        &[
            "token",
            "add-smartcard",
            "alice",
            "--enroll",
            "--expires",
            "5m",
        ],
    )
    .await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    assert!(
        out.contains("latchkey-agent enroll-smartcard alice --code lks_"),
        "{out}"
    );

    let o = run(&srv, dir.path(), &["token", "add-smartcard", "alice"]).await;
    assert_eq!(
        o.status.code(),
        Some(2),
        "--cert or --enroll is required: {o:?}"
    );
}
