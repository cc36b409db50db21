//! The `latchkey-token` CLI end to end, as a separate process against a real latchkeyd:
//! registration through an admin link, TOTP codes the server accepts, the token file at rest;
//! push approval and denial with number matching driven by a machine's login, badge and
//! revocation are in `push`. Run `cargo build -p latchkey-token` first (the tests run
//! target/debug/latchkey-token).

use base64::Engine;
use latchkey_client::{Client, Method as HttpMethod};
use latchkey_proto::Method;
use latchkey_proto::admin::{VerifyRequest, VerifyResult};
use latchkey_proto::app::{AppLinkCreate, AppLinkCreated, PushStartResult};
use latchkey_proto::login::{LoginStart, LoginStartResult, LoginStepResult};
use latchkey_testkit::TestServer;
use latchkey_token::TokenFile;
use latchkey_token::api::AppApi;
use latchkey_token::watch::{Answer, response};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

mod push;

const PASS: &str = "correct horse battery staple";

/// One installation of the token app: its own token file.
struct Token {
    _dir: TempDir,
    file: PathBuf,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Token {
    fn new() -> Token {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data").join("tokens.json");
        Token { _dir: dir, file }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(latchkey_testkit::workspace_bin("latchkey-token").unwrap());
        c.args(args)
            .env("LATCHKEY_TOKEN_FILE", &self.file)
            .env("LATCHKEY_TOKEN_PASSPHRASE", PASS)
            // Cheaper Argon2 for tests; the format and the code path are the same.
            .env("LATCHKEY_TOKEN_KDF_MEMORY_KIB", "1024")
            .stdin(Stdio::null());
        c
    }

    /// Runs the CLI off the async threads (the server under test runs on them).
    async fn run(&self, args: &[&str]) -> Out {
        self.run_env(args, &[]).await
    }

    async fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut c = self.cmd(args);
        c.envs(env.iter().copied());
        let out = tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
        out.stdout
    }

    fn open(&self) -> TokenFile {
        TokenFile::open(&self.file, PASS.as_bytes()).unwrap()
    }
}

/// Asserts a failure is exactly one `latchkey-token: ` line on stderr, and returns it.
fn one_error_line(out: &Out, code: i32) -> String {
    assert_eq!(
        out.code, code,
        "stdout: {} stderr: {}",
        out.stdout, out.stderr
    );
    let line = out.stderr.strip_suffix('\n').unwrap_or(&out.stderr);
    assert!(!line.contains('\n'), "more than one line: {:?}", out.stderr);
    assert!(line.starts_with("latchkey-token: "), "{line}");
    line.to_string()
}

/// What `latchkey token add-app USER` prints.
async fn link(srv: &TestServer, user: &str, expires_in: Option<u64>) -> String {
    let l: AppLinkCreated = srv
        .admin()
        .unwrap()
        .post(
            &format!("/v1/admin/users/{user}/apps"),
            &AppLinkCreate { expires_in },
        )
        .await
        .unwrap();
    format!(
        "{}/app/register?code={}&pin={}",
        srv.url(),
        l.code.expose(),
        l.tls_fingerprint
    )
}

async fn registered(srv: &TestServer, user: &str) -> Token {
    srv.add_user(user, &[]).await.unwrap();
    let t = Token::new();
    t.ok(&["register", &link(srv, user, None).await]).await;
    t
}

/// Checks a code as a login would (`POST /v1/admin/users/{user}/verify`).
async fn server_accepts(srv: &TestServer, user: &str, code: &str) -> VerifyResult {
    srv.admin()
        .unwrap()
        .post(
            &format!("/v1/admin/users/{user}/verify"),
            &VerifyRequest {
                code: code.trim().into(),
            },
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_through_an_admin_link_then_codes_are_accepted() {
    use std::os::unix::fs::PermissionsExt;
    let srv = TestServer::start().await.unwrap();
    srv.add_user("alice", &[]).await.unwrap();
    let t = Token::new();
    let out = t.ok(&["register", &link(&srv, "alice", None).await]).await;
    assert!(
        out.starts_with("Registered alice@127.0.0.1: user alice on https://127.0.0.1:"),
        "{out}"
    );
    let mode = std::fs::metadata(&t.file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let list = t.ok(&["list"]).await;
    assert!(
        list.starts_with("alice@127.0.0.1\tuser alice on "),
        "{list}"
    );

    let code = t.ok(&["code"]).await;
    let code = code.trim();
    assert!(
        code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()),
        "{code:?}"
    );
    let v = server_accepts(&srv, "alice", code).await;
    assert!(v.ok, "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_link_works_only_once() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("bob", &[]).await.unwrap();
    let l = link(&srv, "bob", None).await;
    Token::new().ok(&["register", &l]).await;
    let second = Token::new();
    let out = second.run(&["register", &l]).await;
    let line = one_error_line(&out, 1);
    assert!(line.contains("refused this registration link"), "{line}");
    assert!(!second.file.exists(), "a failed registration wrote a file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_registration_link_is_refused() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("carol", &[]).await.unwrap();
    let l = link(&srv, "carol", Some(1)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = Token::new();
    let line = one_error_line(&t.run(&["register", &l]).await, 1);
    assert!(line.contains("refused this registration link"), "{line}");
    assert!(line.contains("expired"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_link_is_a_clear_error_without_network() {
    let t = Token::new();
    let out = t
        .run(&["register", "https://127.0.0.1:1/app/register?code=x"])
        .await;
    assert_eq!(
        one_error_line(&out, 1),
        "latchkey-token: invalid registration link: the pin is missing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_character_passphrase_is_refused_before_the_link_is_used() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("alice", &[]).await.unwrap();
    let l = link(&srv, "alice", None).await;
    let t = Token::new();
    let out = t
        .run_env(&["register", &l], &[("LATCHKEY_TOKEN_PASSPHRASE", "x")])
        .await;
    assert_eq!(
        one_error_line(&out, 1),
        "latchkey-token: the passphrase is too short: a new token file needs at least 8 characters"
    );
    assert!(!t.file.exists(), "nothing sealed with it");
    // The link was not spent: registering with a real passphrase works.
    t.ok(&["register", &l]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_file_holds_no_key_or_seed_in_plaintext() {
    let srv = TestServer::start().await.unwrap();
    let t = registered(&srv, "dave").await;
    let file = std::fs::read(&t.file).unwrap();
    let lower = String::from_utf8_lossy(&file).to_ascii_lowercase();
    let f = t.open();
    let a = &f.accounts[0];
    let totp = latchkey_crypto::otpauth::OtpAuthUri::parse(a.otpauth_uri.expose()).unwrap();
    let secrets: [(&str, Vec<u8>); 4] = [
        ("X25519 secret", a.x25519_secret.expose().to_vec()),
        ("Ed25519 seed", a.ed25519_seed.expose().to_vec()),
        ("TOTP seed", totp.secret.to_vec()),
        ("app key", a.app_key.expose().as_bytes().to_vec()),
    ];
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    for (what, raw) in secrets {
        assert!(
            !file.windows(raw.len()).any(|w| w == raw.as_slice()),
            "{what} in raw bytes"
        );
        for (enc, text) in [
            ("base64", b64.encode(&raw).trim_end_matches('=').to_string()),
            ("base64url", b64url.encode(&raw)),
            ("base32", latchkey_crypto::base32_encode(&raw)),
            ("hex", data_encoding::HEXLOWER.encode(&raw)),
        ] {
            assert!(
                !lower.contains(&text.to_ascii_lowercase()),
                "{what} in {enc}"
            );
        }
    }
    // Nor who or where: the account's names are sealed too.
    for public in ["dave@127.0.0.1", "127.0.0.1", &a.app_id] {
        assert!(!lower.contains(&public.to_ascii_lowercase()), "{public}");
    }
    // A wrong passphrase gets one clear line.
    let out = t
        .run_env(&["code"], &[("LATCHKEY_TOKEN_PASSPHRASE", "not it")])
        .await;
    assert_eq!(
        one_error_line(&out, 1),
        "latchkey-token: wrong passphrase or damaged token file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_accounts_in_one_file_need_a_name() {
    let srv = TestServer::start().await.unwrap();
    let t = registered(&srv, "nina").await;
    srv.add_user("omar", &[]).await.unwrap();
    t.ok(&["register", &link(&srv, "omar", None).await]).await;
    let other = TestServer::start().await.unwrap();
    other.add_user("nina", &[]).await.unwrap();
    t.ok(&["register", &link(&other, "nina", None).await]).await;
    // The same user on another server (same host name here) gets a distinct default name.
    let names: Vec<String> = t.open().accounts.iter().map(|a| a.name.clone()).collect();
    assert_eq!(
        names,
        ["nina@127.0.0.1", "omar@127.0.0.1", "nina@127.0.0.1-2"]
    );
    let line = one_error_line(&t.run(&["code"]).await, 2);
    assert_eq!(
        line,
        "latchkey-token: several accounts: name one of: nina@127.0.0.1, omar@127.0.0.1, nina@127.0.0.1-2"
    );
    let code = t.ok(&["code", "omar@127.0.0.1"]).await;
    let v = server_accepts(&srv, "omar", &code).await;
    assert!(v.ok, "{v:?}");
    let code = t.ok(&["code", "nina@127.0.0.1-2"]).await;
    let v = server_accepts(&other, "nina", &code).await;
    assert!(v.ok, "{v:?}");
    // Forgetting one account leaves the others.
    t.ok(&["remove", "omar@127.0.0.1"]).await;
    let list = t.ok(&["list"]).await;
    assert!(
        !list.contains("omar") && list.lines().count() == 2,
        "{list}"
    );
}
