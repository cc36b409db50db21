//! The `latchkeyd` binary itself: first start creates its key material and prints what an
//! operator needs once; SIGTERM stops it cleanly; a second start reuses everything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey_client::{Client, ClientConfig, Credential, Trust};
use latchkey_proto::routes;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    lines: Vec<String>,
}

fn spawn(dir: &std::path::Path, extra: &[&str]) -> Daemon {
    spawn_logging_to(dir, extra, Stdio::null())
}

fn spawn_logging_to(dir: &std::path::Path, extra: &[&str], stderr: Stdio) -> Daemon {
    let expects_token = !dir.join("latchkey-data/admin.token").exists();
    let mut child = Command::new(env!("CARGO_BIN_EXE_latchkeyd"))
        .current_dir(dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("RUST_LOG")
        .env_remove("LATCHKEY_LOG")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    // The banner ends with the fingerprint line (HTTPS) — read until it or the admin key.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
            break;
        }
        lines.push(line.trim_end().to_string());
        let done_tls = lines
            .iter()
            .any(|l| l.starts_with("TLS certificate fingerprint"));
        if done_tls && (!expects_token || lines.iter().any(|l| l.starts_with("  lka_"))) {
            break;
        }
    }
    Daemon { child, lines }
}

impl Daemon {
    fn url(&self) -> String {
        self.lines[0].rsplit(' ').next().unwrap().to_string()
    }
    fn pin(&self) -> String {
        self.lines
            .iter()
            .find(|l| l.starts_with("TLS"))
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    }
    /// An admin client of this daemon, pinned to its certificate.
    fn admin(&self, token: &str) -> Client {
        Client::new(
            ClientConfig::parse(&self.url())
                .unwrap()
                .with_trust(Trust::Pin(self.pin()))
                .with_credential(Credential::Bearer(token.to_string())),
        )
        .unwrap()
    }
    fn sigterm_and_wait(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "latchkeyd did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test]
async fn first_start_bootstraps_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = spawn(dir.path(), &[]);
    assert!(
        d.lines[0].starts_with("latchkeyd listening on https://127.0.0.1:"),
        "{:?}",
        d.lines
    );
    let token_line = d
        .lines
        .iter()
        .find(|l| l.starts_with("  lka_"))
        .expect("admin key printed once");
    let token = token_line.trim().to_string();
    let data = dir.path().join("latchkey-data");
    assert_eq!(
        std::fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim(),
        token
    );

    let admin = d.admin(&token);
    let _: serde_json::Value = admin
        .post(routes::ADMIN_USERS, &serde_json::json!({"name": "alice"}))
        .await
        .unwrap();
    let first_pin = d.pin();
    let status = d.sigterm_and_wait();
    assert!(status.success(), "{status:?}");

    // Second start: same certificate, same admin key (not printed again), data kept.
    let d = spawn(dir.path(), &[]);
    assert_eq!(d.pin(), first_pin);
    assert!(!d.lines.iter().any(|l| l.contains("lka_")), "{:?}", d.lines);
    let admin = d.admin(&token);
    let users: Vec<serde_json::Value> = admin.get(routes::ADMIN_USERS).await.unwrap();
    assert_eq!(users.len(), 1);
    let audit: Vec<serde_json::Value> = admin.get(routes::ADMIN_AUDIT).await.unwrap();
    assert!(
        audit.iter().any(|a| a["action"] == "user.add"),
        "audit flushed before the first stop"
    );
    assert!(d.sigterm_and_wait().success());
}

/// Log lines are written by a thread of their own, in batches: every line logged before
/// SIGTERM, up to the last one, is in the log when the process has exited.
#[tokio::test]
async fn every_log_line_reaches_stderr_by_exit() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let d = spawn_logging_to(dir.path(), &[], Stdio::from(log));
    let token = d
        .lines
        .iter()
        .find(|l| l.starts_with("  lka_"))
        .unwrap()
        .trim()
        .to_string();
    let admin = d.admin(&token);
    for i in 0..200 {
        let _: serde_json::Value = admin
            .post(
                routes::ADMIN_USERS,
                &serde_json::json!({"name": format!("u{i}")}),
            )
            .await
            .unwrap();
    }
    assert!(d.sigterm_and_wait().success());
    let text = std::fs::read_to_string(&log_path).unwrap();
    let audit_lines = text
        .lines()
        .filter(|l| l.contains("latchkey::audit") && l.contains("action=user.add"))
        .count();
    assert_eq!(audit_lines, 200, "{text}");
    assert!(
        text.lines()
            .last()
            .unwrap_or("")
            .contains("latchkeyd stopped"),
        "the last line logged is the last line written: {text}"
    );
}

#[test]
fn bad_configuration_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("latchkeyd.toml"), "listen = 12\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_latchkeyd"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("latchkeyd: ") && err.contains("latchkeyd.toml"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_latchkeyd"))
        .current_dir(dir.path())
        .args(["--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A world-readable master key is refused (as ssh refuses such keys).
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("latchkey-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("master.key"), "AAAA\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        data.join("master.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_latchkeyd"))
        .current_dir(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("master.key") && err.contains("chmod 600"),
        "{err}"
    );
}
