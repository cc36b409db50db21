//! The `latchkey` binary against a real latchkeyd: the README's five-minute tour and the
//! error contract (one clear line, non-zero exit).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey_crypto::otpauth::OtpAuthUri;
use latchkey_testkit::{TestServer, totp_now};
use std::process::Output;

struct Cli {
    url: String,
    pin: String,
    token: String,
    cwd: tempfile::TempDir,
}

impl Cli {
    fn new(srv: &TestServer) -> Cli {
        Cli {
            url: srv.url(),
            pin: srv.info.tls_fingerprint.clone(),
            token: srv.admin_token.clone(),
            cwd: tempfile::tempdir().unwrap(),
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
        cmd.current_dir(self.cwd.path())
            .env_clear()
            .env("LATCHKEY_SERVER", &self.url)
            .env("LATCHKEY_PIN", &self.pin)
            .env("LATCHKEY_ADMIN_TOKEN", &self.token)
            .args(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }
}

impl Cli {
    /// As `run`, with `input` on standard input.
    async fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
        cmd.current_dir(self.cwd.path())
            .env_clear()
            .env("LATCHKEY_SERVER", &self.url)
            .env("LATCHKEY_PIN", &self.pin)
            .env("LATCHKEY_ADMIN_TOKEN", &self.token)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let input = input.to_string();
        tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn assert_one_line_error(o: &Output, needle: &str) {
    assert!(!o.status.success(), "must fail: {}", stdout(o));
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("latchkey: "), "{err:?}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_minute_tour_add_user_add_totp_check_a_code() {
    let srv = TestServer::start().await.unwrap();
    let cli = Cli::new(&srv);

    let o = cli
        .run(&[
            "user",
            "add",
            "alice",
            "--display-name",
            "Alice Liddell",
            "--group",
            "staff",
        ])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli.run(&["token", "add-totp", "alice"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let uri_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("otpauth://"))
        .expect("otpauth URI printed");
    let uri = OtpAuthUri::parse(uri_line.trim()).unwrap();
    assert_eq!(uri.account, "alice");
    // The QR code is drawn with half blocks.
    assert!(
        out.contains('▀') || out.contains('▄') || out.contains('█'),
        "{out}"
    );

    let o = cli
        .run(&["token", "verify", "alice", &totp_now(&uri)])
        .await;
    assert!(o.status.success(), "{} {}", stdout(&o), stderr(&o));
    // The same code again: refused, exit 1.
    let o = cli
        .run(&["token", "verify", "alice", &totp_now(&uri)])
        .await;
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!((stdout(&o) + &stderr(&o)).contains("already used"));

    let o = cli.run(&["--json", "user", "list"]).await;
    let users: Vec<latchkey_proto::admin::User> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(
        (users[0].display_name.as_str(), users[0].token_count),
        ("Alice Liddell", 1)
    );
    let o = cli.run(&["user", "list"]).await;
    assert!(
        stdout(&o).contains("alice") && stdout(&o).contains("staff"),
        "{}",
        stdout(&o)
    );

    let o = cli.run(&["--json", "token", "list", "alice"]).await;
    let tokens: Vec<latchkey_proto::admin::TokenInfo> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(tokens.len(), 1);

    let o = cli
        .run(&[
            "policy",
            "set",
            "login",
            "lockout_threshold=4",
            "offline.max_days=2",
        ])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli.run(&["--json", "policy", "show", "login"]).await;
    let p: latchkey_proto::admin::Policy = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((p.lockout_threshold, p.offline.max_days), (4, 2));

    let o = cli.run(&["machine", "join-token", "--expires", "1h"]).await;
    assert!(
        o.status.success() && stdout(&o).contains("lkj_"),
        "{}",
        stdout(&o)
    );

    let o = cli
        .run(&["--json", "audit", "--user", "alice", "--since", "1h"])
        .await;
    let audit: Vec<latchkey_proto::admin::AuditEntry> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "token.verify" && a.result == "ok")
    );
    assert!(
        audit
            .iter()
            .any(|a| a.action == "token.verify" && a.result == "fail")
    );

    let o = cli.run(&["user", "disable", "alice"]).await;
    assert!(o.status.success());
    let o = cli.run(&["--json", "user", "show", "alice"]).await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["user"]["enabled"], false);
    let o = cli.run(&["user", "remove", "alice"]).await;
    assert!(o.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_clear_line_and_a_non_zero_exit() {
    let srv = TestServer::start().await.unwrap();
    let cli = Cli::new(&srv);
    assert_one_line_error(&cli.run(&["user", "show", "ghost"]).await, "not found");
    assert_one_line_error(
        &cli.run(&["policy", "set", "login", "mfa_required=perhaps"])
            .await,
        "mfa_required",
    );
    assert_one_line_error(&cli.run(&["token", "add-totp", "ghost"]).await, "not found");

    let wrong_pin = Cli {
        pin: format!("sha256:{}", "0".repeat(64)),
        ..Cli::new(&srv)
    };
    assert_one_line_error(&wrong_pin.run(&["user", "list"]).await, "pin");
    let wrong_token = Cli {
        token: "lka_wrong".into(),
        ..Cli::new(&srv)
    };
    assert_one_line_error(&wrong_token.run(&["user", "list"]).await, "admin key");
    let nobody = Cli {
        url: "https://127.0.0.1:1".into(),
        ..Cli::new(&srv)
    };
    assert_one_line_error(&nobody.run(&["user", "list"]).await, "127.0.0.1:1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_app_prints_a_registration_link_with_its_qr_code() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("alice", &[]).await.unwrap();
    let cli = Cli::new(&srv);
    let o = cli
        .run(&["token", "add-app", "alice", "--expires", "10m"])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let link = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("https://") && l.contains("/app/register?code=lkr_"))
        .expect("the link is printed");
    assert!(link.starts_with(&srv.url()), "{link}");
    assert!(
        link.ends_with(&format!("&pin={}", srv.info.tls_fingerprint)),
        "{link}"
    );
    assert!(
        out.contains('▀') || out.contains('▄') || out.contains('█'),
        "QR code drawn"
    );
    assert_one_line_error(&cli.run(&["token", "add-app", "ghost"]).await, "not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_invite_prints_a_self_service_link_with_its_qr_code() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("alice", &[]).await.unwrap();
    let cli = Cli::new(&srv);
    let o = cli
        .run(&["user", "invite", "alice", "--expires", "2h"])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let link = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("https://") && l.contains("/ui/invite/"))
        .expect("the link is printed");
    // The host the admin reached the server by, then 32 random bytes in base32.
    assert!(
        link.starts_with(&format!("{}/ui/invite/", srv.url())),
        "{link}"
    );
    assert_eq!(link.rsplit('/').next().unwrap().len(), 52, "{link}");
    assert!(out.contains('█') || out.contains('▀'), "QR code drawn");
    let again = stdout(&cli.run(&["user", "invite", "alice"]).await);
    assert!(!again.contains(link), "a new code each time");
    assert_one_line_error(&cli.run(&["user", "invite", "ghost"]).await, "not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_offline_names_a_machine_by_id_or_hostname() {
    let srv = TestServer::start().await.unwrap();
    let (joined, _) = srv.join_machine("laptop-7").await.unwrap();
    let cli = Cli::new(&srv);
    let o = cli
        .run(&["machine", "forget-offline", "laptop-7", "alice"])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        format!(
            "Machine {} will wipe the offline login of alice at its next contact with the server.",
            joined.machine_id
        )
    );
    let o = cli
        .run(&["machine", "forget-offline", &joined.machine_id, "alice"])
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli
        .run(&["machine", "forget-offline", "no-such-host", "alice"])
        .await;
    assert_one_line_error(&o, "not found");
    let o = cli
        .run(&["--json", "audit", "--user", "alice", "--since", "1h"])
        .await;
    let audit: Vec<latchkey_proto::admin::AuditEntry> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "offline.forget")
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_add_shows_the_totp_secret_once_then_list_and_remove() {
    let srv = TestServer::start().await.unwrap();
    let cli = Cli::new(&srv);
    let o = cli
        .run_with_stdin(&["admin", "add", "root", "--password-stdin"], "short\n")
        .await;
    assert_one_line_error(&o, "at least 12 characters");
    let o = cli
        .run_with_stdin(
            &["admin", "add", "root", "--password-stdin"],
            "correct horse battery\n",
        )
        .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let uri = out
        .lines()
        .find(|l| l.starts_with("otpauth://totp/"))
        .expect("otpauth URI printed");
    let parsed = OtpAuthUri::parse(uri).unwrap();
    assert_eq!(parsed.account, "root");
    assert!(out.contains('█'), "a QR code is drawn: {out}");
    let o = cli.run(&["admin", "list"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("root"), "{}", stdout(&o));
    assert!(
        !stdout(&o).contains("otpauth"),
        "the secret is shown only at add"
    );
    let o = cli
        .run_with_stdin(
            &["admin", "add", "root", "--password-stdin"],
            "correct horse battery\n",
        )
        .await;
    assert_one_line_error(&o, "already exists");
    let o = cli.run(&["admin", "unlock", "root"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Cleared the lockout of web console admin root."),
        "{}",
        stdout(&o)
    );
    let o = cli.run(&["admin", "remove", "root"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli.run(&["admin", "remove", "root"]).await;
    assert_one_line_error(&o, "not found");
    let o = cli.run(&["admin", "unlock", "root"]).await;
    assert_one_line_error(&o, "not found");
}
