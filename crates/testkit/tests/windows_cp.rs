//! The Windows credential provider under Wine: a real latchkeyd on 127.0.0.1, the real
//! `latchkey-agent.exe` serving its named pipe under Wine, and `logonui-sim.exe` loading
//! `latchkey_cp.dll` as LogonUI does (DllGetClassObject, SetUsageScenario, Advise,
//! GetCredentialAt, SetStringValue, GetSerialization) and parsing the serialized credential.
//!
//! These tests need the Windows build: `scripts/test` runs `scripts/windows-toolchain build`
//! and then them with `--run-ignored only`. They share one Wine prefix (one pipe name), so a
//! file lock runs them one at a time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey_proto::TokenKind;
use latchkey_testkit::{TestServer, hotp_at};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PASSWORD: &str = "Corr3ct horse: battery staple!";

struct Win {
    wine: PathBuf,
    out: PathBuf,
    _lock: std::fs::File,
}

/// The Windows build and Wine, from the environment `scripts/windows-toolchain env` prints.
fn win() -> Win {
    let dir = PathBuf::from(std::env::var("LATCHKEY_WIN_DIR").expect(
        "LATCHKEY_WIN_DIR is not set: run `eval \"$(scripts/windows-toolchain env)\"` and `scripts/windows-toolchain build` first",
    ));
    let target = std::env::var("LATCHKEY_WIN_TARGET").unwrap_or("x86_64-pc-windows-gnu".into());
    let out = dir.join("cargo").join(target).join("debug");
    for f in ["latchkey_cp.dll", "logonui-sim.exe", "latchkey-agent.exe"] {
        assert!(
            out.join(f).exists(),
            "{} missing: run scripts/windows-toolchain build",
            out.join(f).display()
        );
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("wine-tests.lock"))
        .unwrap();
    // Released when the file closes (end of the test).
    lock.lock().unwrap();
    Win {
        wine: PathBuf::from(
            std::env::var("LATCHKEY_WINE").unwrap_or("/usr/lib/wine/wine64".into()),
        ),
        out,
        _lock: lock,
    }
}

/// A Unix path as Wine sees it (drive Z: is /).
fn z(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

struct WineAgent {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for WineAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Win {
    fn cmd(&self, exe: &str) -> Command {
        let mut c = Command::new(&self.wine);
        c.arg(self.out.join(exe));
        c
    }

    /// `latchkey-agent.exe join` under Wine into a fresh directory; returns it and the
    /// configuration directory as Wine sees it.
    async fn join(&self, server: &TestServer) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let conf = z(&dir.path().join("etc"));
        let token = server.join_token().await.unwrap();
        let join = self
            .cmd("latchkey-agent.exe")
            .args([
                "--config-dir",
                &conf,
                "join",
                "--server",
                &server.url(),
                "--pin",
            ])
            .arg(&server.info.tls_fingerprint)
            .args([
                "--join-token",
                &token,
                "--hostname",
                "wine-host",
                "--state-dir",
            ])
            .arg(z(&dir.path().join("state")))
            .output()
            .unwrap();
        assert!(
            join.status.success(),
            "join under Wine failed: {}{}",
            String::from_utf8_lossy(&join.stdout),
            String::from_utf8_lossy(&join.stderr)
        );
        (dir, conf)
    }

    /// `latchkey-agent.exe join` then `run` under Wine; returns once the pipe is listening.
    async fn agent(&self, server: &TestServer) -> WineAgent {
        let (dir, conf) = self.join(server).await;
        let mut child = self
            .cmd("latchkey-agent.exe")
            .args(["--config-dir", &conf, "run"])
            .env("LATCHKEY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[wine agent] {line}");
                if line.contains("latchkey-agent listening") {
                    let _ = tx.send(());
                }
            }
        });
        let agent = WineAgent { child, _dir: dir };
        tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(120)))
            .await
            .unwrap()
            .expect("the Windows agent did not start listening on its pipe");
        agent
    }

    /// Runs logonui-sim.exe and parses its JSON report.
    async fn sim(&self, args: &[&str]) -> Value {
        let mut c = self.cmd("logonui-sim.exe");
        c.arg(z(&self.out.join("latchkey_cp.dll"))).args(args);
        let out = tokio::task::spawn_blocking(move || c.output())
            .await
            .unwrap()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "logonui-sim failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .expect("no JSON report");
        serde_json::from_str(line).unwrap()
    }
}

/// A user with an HOTP token (codes are predictable and each is good once).
async fn user_with_hotp(server: &TestServer, name: &str) -> latchkey_crypto::otpauth::OtpAuthUri {
    server.add_user(name, &[]).await.unwrap();
    server.add_token(name, TokenKind::Hotp).await.unwrap().1
}

/// The client_ids the server recorded for a user's logins (audit log).
async fn client_ids(server: &TestServer, user: &str) -> Vec<String> {
    let entries: Vec<latchkey_proto::admin::AuditEntry> = server
        .admin()
        .unwrap()
        .get(&format!("/v1/admin/audit?user={user}"))
        .await
        .unwrap();
    let mut ids: Vec<String> = entries.into_iter().filter_map(|e| e.client_id).collect();
    ids.sort();
    ids.dedup();
    ids
}

fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| {
            if c == '9' {
                '0'
            } else {
                char::from(c as u8 + 1)
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn correct_code_returns_a_packed_logon_credential() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "alice").await;
    let _agent = w.agent(&server).await;
    let code = hotp_at(&uri, 0);
    let r = w.sim(&["login", "logon", "alice", PASSWORD, &code]).await;

    assert_eq!(r["descriptors"].as_array().unwrap().len(), 8, "{r}");
    assert_eq!(r["tile"]["v2"], true, "ICredentialProviderCredential2: {r}");
    assert_eq!(r["tile"]["autologon"], false);
    assert_eq!(r["tile"]["tile_bitmap"][0], 128, "the logo tile image: {r}");
    let s = &r["submits"][0];
    assert_eq!(s["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED", "{r}");
    let c = &s["credential"];
    assert_eq!(c["format"], "kerb_interactive_unlock_logon", "{r}");
    assert_eq!(c["message_type"], 2, "KerbInteractiveLogon: {r}");
    assert_eq!(c["user"], "alice");
    assert_eq!(c["password"], PASSWORD);
    assert!(
        !c["domain"].as_str().unwrap().is_empty(),
        "local accounts carry the computer name: {r}"
    );
    assert_eq!(
        c["clsid"].as_str().unwrap().to_lowercase(),
        "f4efd6f9-775c-4541-9dcb-303661afb99d"
    );
    assert_eq!(server.login_count("otp", "success").await.unwrap(), 1);
    assert_eq!(client_ids(&server, "alice").await, ["login"]);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn wrong_code_gives_no_credential_and_the_agents_message() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "bob").await;
    let _agent = w.agent(&server).await;
    let right = hotp_at(&uri, 0);
    // Two Submits on one tile: a wrong code, then the right one in the same conversation.
    let r = w
        .sim(&["login", "logon", "bob", PASSWORD, &wrong(&right), &right])
        .await;

    let first = &r["submits"][0];
    assert_ne!(first["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED", "{r}");
    assert!(first["credential"].is_null(), "{r}");
    let status = first["status"].as_str().unwrap();
    assert!(
        status.starts_with("Code rejected"),
        "the server's words as status text: {r}"
    );
    assert_eq!(r["info"], status, "and on the info line: {r}");
    assert!(
        r["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "field_string" && e["field"] == 2 && e["value"] == status),
        "LogonUI told through ICredentialProviderCredentialEvents: {r}"
    );
    let second = &r["submits"][1];
    assert_eq!(
        second["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED",
        "{r}"
    );
    assert_eq!(second["credential"]["user"], "bob");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn denied_login_finishes_without_credential() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    user_with_hotp(&server, "carol").await;
    let _agent = w.agent(&server).await;
    // An unknown user is refused at once by the server.
    let r = w
        .sim(&["login", "logon", "mallory", PASSWORD, "123456"])
        .await;
    let s = &r["submits"][0];
    assert_eq!(s["response"], "CPGSR_NO_CREDENTIAL_FINISHED", "{r}");
    assert!(s["credential"].is_null());
    assert_eq!(s["icon"], "error");
    assert!(
        s["status"].as_str().unwrap().contains("Login refused"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn unlock_serializes_a_workstation_unlock_logon() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "dave").await;
    let _agent = w.agent(&server).await;
    let r = w
        .sim(&[
            "login",
            "unlock",
            "WINEHOST\\dave",
            PASSWORD,
            &hotp_at(&uri, 0),
        ])
        .await;
    let c = &r["submits"][0]["credential"];
    assert_eq!(c["message_type"], 7, "KerbWorkstationUnlockLogon: {r}");
    assert_eq!(c["domain"], "WINEHOST", "{r}");
    assert_eq!(c["user"], "dave");
    assert_eq!(c["password"], PASSWORD);
    assert_eq!(
        client_ids(&server, "dave").await,
        ["unlock"],
        "the domain is not part of the MFA name"
    );
}

/// CredUI (UAC) maps to `elevation` and packs with CredPackAuthenticationBufferW. Wine 8's
/// CredPackAuthenticationBufferW is a stub that fails, so under Wine this checks that the MFA
/// ran in the right context and that a packing failure gives no credential (fail closed); the
/// packed buffer itself is only produced on Windows.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn credui_elevation_runs_mfa_as_elevation_and_fails_closed_without_credpack() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "erin").await;
    let _agent = w.agent(&server).await;
    let r = w
        .sim(&["login", "credui", "erin", PASSWORD, &hotp_at(&uri, 0)])
        .await;
    assert_eq!(
        server.login_count("otp", "success").await.unwrap(),
        1,
        "MFA passed: {r}"
    );
    assert_eq!(client_ids(&server, "erin").await, ["elevation"]);
    let s = &r["submits"][0];
    if s["response"] == "CPGSR_RETURN_CREDENTIAL_FINISHED" {
        // A Wine with a real CredPackAuthenticationBufferW: the buffer must read back.
        let c = &s["credential"];
        assert!(c["error"].is_null(), "{r}");
        assert!(c["user"].as_str().unwrap().ends_with("erin"), "{r}");
        assert_eq!(c["password"], PASSWORD);
    } else {
        assert!(s["credential"].is_null(), "{r}");
        assert_eq!(s["icon"], "error", "{r}");
        assert!(
            s["status"]
                .as_str()
                .unwrap()
                .starts_with("MFA passed, but the Windows credential could not be prepared"),
            "{r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn no_agent_means_no_credential() {
    let w = win();
    // No agent runs in the prefix: the tile must refuse, not fall back to the password.
    let r = w
        .sim(&["login", "logon", "alice", PASSWORD, "123456"])
        .await;
    let s = &r["submits"][0];
    assert_eq!(s["response"], "CPGSR_NO_CREDENTIAL_FINISHED", "{r}");
    assert!(s["credential"].is_null());
    assert!(
        s["status"]
            .as_str()
            .unwrap()
            .contains("agent is not available"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn filter_hides_the_password_providers() {
    let w = win();
    let r = w.sim(&["filter"]).await;
    for scenario in ["logon", "unlock", "credui"] {
        let s = &r[scenario];
        assert_eq!(s["password_v2"], false, "{scenario}: {r}");
        assert_eq!(s["password_v1"], false, "{scenario}: {r}");
        assert_eq!(s["latchkey"], true, "{scenario}: {r}");
    }
    // Changing a password is left to Windows: the filter does not touch that scenario.
    assert_eq!(r["change_password"]["password_v2"], true, "{r}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn rdp_credential_goes_through_the_tile_as_remote() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "frank").await;
    let _agent = w.agent(&server).await;
    let code = hotp_at(&uri, 0);
    let r = w.sim(&["remote", "frank", PASSWORD, &code]).await;
    assert_eq!(
        r["redirected_to"].as_str().unwrap().to_lowercase(),
        "f4efd6f9-775c-4541-9dcb-303661afb99d",
        "{r}"
    );
    assert_eq!(r["redirected_same_bytes"], true, "{r}");
    assert!(
        r["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "credentials_changed" && e["context"] == 42),
        "{r}"
    );
    assert_eq!(r["tile"]["default"], 0, "our tile is the default: {r}");
    assert_eq!(
        r["tile"]["autologon"], false,
        "but never logs on by itself: {r}"
    );
    assert_eq!(r["prefilled_user"], "frank");
    let s = &r["submit"];
    assert_eq!(s["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED", "{r}");
    assert_eq!(s["credential"]["user"], "frank");
    assert_eq!(s["credential"]["password"], PASSWORD);
    assert_eq!(
        server.login_count("otp", "success").await.unwrap(),
        1,
        "the code was checked"
    );
    assert_eq!(client_ids(&server, "frank").await, ["remote"]);
}
