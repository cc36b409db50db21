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
use latchkey_testkit::token_cli::TokenCli;
use latchkey_testkit::{TestServer, hotp_at};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

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
    dir: tempfile::TempDir,
}

impl WineAgent {
    /// The agent's state database (its state directory is on the Linux side, drive Z:).
    fn state_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(
            self.dir
                .path()
                .join("state")
                .join(latchkey_agent::state::STATE_FILE),
        )
        .unwrap()
    }
}

/// A Wine prefix of its own (a copy of the test prefix), for a test that installs things the
/// other tests must not see (a service that would own the agent pipe). Its wineserver is
/// stopped when it is dropped.
struct OwnPrefix {
    dir: tempfile::TempDir,
}

impl OwnPrefix {
    fn copy_of_test_prefix() -> OwnPrefix {
        let from = PathBuf::from(std::env::var("WINEPREFIX").expect("WINEPREFIX"));
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", from.display()))
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "copying the Wine prefix");
        OwnPrefix { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn c_drive(&self, rel: &str) -> PathBuf {
        self.dir.path().join("drive_c").join(rel)
    }
}

impl Drop for OwnPrefix {
    fn drop(&mut self) {
        let _ = Command::new("/usr/lib/wine/wineserver")
            .env("WINEPREFIX", self.dir.path())
            .arg("-k")
            .status();
    }
}

/// `logonui-sim session`: one tile driven line by line, its output read as it comes.
struct Session {
    child: Child,
    stdin: ChildStdin,
    lines: UnboundedReceiver<Value>,
    /// Everything read so far, for failure messages.
    seen: Vec<Value>,
    dumps: tempfile::TempDir,
}

impl Session {
    fn send(&mut self, cmd: &[&str]) {
        writeln!(self.stdin, "{}", json!(cmd)).unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next output line of `kind` ("submit", "tile", "event"…); earlier lines are kept in
    /// `seen`.
    async fn next(&mut self, kind: &str) -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(90), self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} from logonui-sim after {:?}", self.seen))
                .unwrap_or_else(|| panic!("logonui-sim ended before {kind}: {:?}", self.seen));
            self.seen.push(line.clone());
            if line["kind"] == kind {
                return line;
            }
        }
    }

    /// Sets the fields and presses Submit; returns the Submit's report.
    async fn submit(&mut self, user: &str, password: &str, code: &str) -> Value {
        self.send(&["set", "user", user]);
        self.send(&["set", "password", password]);
        self.send(&["set", "code", code]);
        self.send(&["submit"]);
        self.next("submit").await
    }

    /// Events seen so far.
    fn events(&self) -> Vec<&Value> {
        self.seen.iter().filter(|v| v["kind"] == "event").collect()
    }

    /// A bitmap the harness dumped (PGM), as a PNG file a phone's camera would see.
    fn png_of(&self, dump: &Value) -> PathBuf {
        let name = dump["file"]
            .as_str()
            .unwrap_or_else(|| panic!("no bitmap dump: {dump}"));
        let pgm = std::fs::read(self.dumps.path().join(name)).unwrap();
        // "P5\nW H\n255\n" then one byte per pixel.
        let mut header = pgm.splitn(4, |b| *b == b'\n');
        assert_eq!(header.next().unwrap(), b"P5");
        let size = String::from_utf8(header.next().unwrap().to_vec()).unwrap();
        let (w, h) = size.split_once(' ').unwrap();
        let (w, h): (u32, u32) = (w.parse().unwrap(), h.parse().unwrap());
        assert_eq!(header.next().unwrap(), b"255");
        let px = header.next().unwrap();
        assert_eq!(px.len(), (w * h) as usize);
        let png_path = self.dumps.path().join(format!("{name}.png"));
        let file = std::fs::File::create(&png_path).unwrap();
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header().unwrap().write_image_data(px).unwrap();
        png_path
    }

    async fn quit(mut self) {
        self.send(&["quit"]);
        let _ = self.next("done").await;
        let status = tokio::task::spawn_blocking(move || self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "logonui-sim session: {status}");
    }
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

    /// `exe` from the build in `prefix` (None: the shared test prefix).
    fn cmd_in(&self, prefix: Option<&OwnPrefix>, exe: &str) -> Command {
        let mut c = self.cmd(exe);
        if let Some(p) = prefix {
            c.env("WINEPREFIX", p.path());
        }
        c
    }

    /// A Wine built-in program (`msiexec`, `reg`…) in `prefix`.
    fn builtin(&self, prefix: &OwnPrefix, program: &str) -> Command {
        let mut c = Command::new(&self.wine);
        c.env("WINEPREFIX", prefix.path()).arg(program);
        c
    }

    /// `latchkey-agent.exe join` under Wine into a fresh directory; returns it and the
    /// configuration directory as Wine sees it.
    async fn join(
        &self,
        prefix: Option<&OwnPrefix>,
        server: &TestServer,
    ) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let conf = z(&dir.path().join("etc"));
        let token = server.join_token().await.unwrap();
        let join = self
            .cmd_in(prefix, "latchkey-agent.exe")
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
        self.agent_in(None, server, &[]).await
    }

    /// The same in `prefix` (None: the shared test prefix), with more `run` arguments.
    async fn agent_in(
        &self,
        prefix: Option<&OwnPrefix>,
        server: &TestServer,
        run_args: &[&str],
    ) -> WineAgent {
        let (dir, conf) = self.join(prefix, server).await;
        let mut child = self
            .cmd_in(prefix, "latchkey-agent.exe")
            .args(["--config-dir", &conf, "run"])
            .args(run_args)
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
        let agent = WineAgent { child, dir };
        tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(120)))
            .await
            .unwrap()
            .expect("the Windows agent did not start listening on its pipe");
        agent
    }

    /// Starts `logonui-sim session SCENARIO` (see crates/wincp/harness).
    fn session(&self, scenario: &str) -> Session {
        self.session_in(None, scenario)
    }

    /// The same, in another Wine prefix than the shared test prefix.
    fn session_in(&self, prefix: Option<&OwnPrefix>, scenario: &str) -> Session {
        let dumps = tempfile::tempdir().unwrap();
        let mut child = self
            .cmd_in(prefix, "logonui-sim.exe")
            .arg(z(&self.out.join("latchkey_cp.dll")))
            .args(["session", scenario])
            .arg(z(dumps.path()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[logonui-sim] {line}");
            }
        });
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
                    let _ = tx.send(v);
                } else {
                    eprintln!("[logonui-sim] {line}");
                }
            }
        });
        Session {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            dumps,
        }
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

/// CredUI (UAC) maps to `elevation` and packs with CredPackAuthenticationBufferW, as
/// Microsoft's CredUI sample provider does. Wine 8's CredPackAuthenticationBufferW is a stub,
/// so under Wine the tile packs the structure Windows' function produces itself (a
/// KERB_INTERACTIVE_UNLOCK_LOGON, KerbInteractiveLogon); the buffer is checked either way.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn credui_elevation_runs_mfa_as_elevation_and_returns_a_packed_credential() {
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
    assert_eq!(s["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED", "{r}");
    let c = &s["credential"];
    assert!(c["error"].is_null(), "{r}");
    assert_eq!(c["password"], PASSWORD, "{r}");
    if c["format"] == "credui" {
        // A CredUnPackAuthenticationBufferW that works (Windows).
        assert!(c["user"].as_str().unwrap().ends_with("erin"), "{r}");
    } else {
        assert_eq!(c["format"], "kerb_interactive_unlock_logon", "{r}");
        assert_eq!(c["message_type"], 2, "KerbInteractiveLogon: {r}");
        assert_eq!(c["user"], "erin", "{r}");
        assert!(!c["domain"].as_str().unwrap().is_empty(), "{r}");
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

/// The agent received an offline bundle at an online login through the tile; then the server
/// stops. The next Submit shows the QR challenge as the tile image, the real `latchkey-token`
/// reads that image (as a phone's camera would) and its code logs in.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn server_stopped_the_offline_qr_tile_and_a_token_app_code_log_in() {
    let w = win();
    let mut server = TestServer::start().await.unwrap();
    server.add_user("grace", &[]).await.unwrap();
    let token = std::sync::Arc::new(TokenCli::register(&server, "grace").await.unwrap());
    let agent = w.agent(&server).await;

    // Online once, with the app's TOTP code: the agent stores the signed bundle.
    let t = token.clone();
    let code = tokio::task::spawn_blocking(move || t.totp().unwrap())
        .await
        .unwrap();
    let r = w.sim(&["login", "logon", "grace", PASSWORD, &code]).await;
    assert_eq!(
        r["submits"][0]["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED",
        "{r}"
    );
    let bundles: i64 = agent
        .state_db()
        .query_row(
            "SELECT count(*) FROM offline_bundles WHERE user_name = 'grace'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bundles, 1, "a bundle stored at the online login");
    server.stop().await;

    let mut s = w.session("logon");
    // Whatever was typed first cannot answer a challenge not shown yet.
    let first = s.submit("grace", PASSWORD, "").await;
    assert_eq!(
        first["response"], "CPGSR_NO_CREDENTIAL_NOT_FINISHED",
        "{first}"
    );
    assert!(first["credential"].is_null(), "{first}");
    assert_eq!(first["icon"], "warning", "{first}");
    assert_eq!(
        first["info"],
        latchkey_agent::offline::PROMPT_TEXT,
        "the instruction alone on the info line (the QR is the image): {first}"
    );
    assert_eq!(first["status"], first["info"]);
    // LogonUI was handed the QR as the tile image…
    let shown = s
        .events()
        .into_iter()
        .find(|e| e["event"] == "field_bitmap" && e["field"] == 0)
        .cloned()
        .unwrap_or_else(|| panic!("no SetFieldBitmap for the tile: {:?}", s.seen));
    assert!(shown["width"].as_i64().unwrap() >= 128, "{shown}");
    // …and GetBitmapValue (a repaint) draws it again.
    s.send(&["tile"]);
    let repaint = s.next("tile").await;

    // The person scans the picture with the token app (the real CLI reads the image).
    let mut codes = Vec::new();
    for dump in [&shown["dump"], &repaint["dump"]] {
        let png = s.png_of(dump);
        let t = token.clone();
        let out = tokio::task::spawn_blocking(move || {
            t.run(&["answer", "--image", png.to_str().unwrap()])
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(
            out.code, 0,
            "the token app could not read the tile: {}",
            out.stderr
        );
        let mut lines = out.stdout.lines();
        let context = lines.next().unwrap().to_string();
        assert!(context.starts_with("grace@"), "{context}");
        assert!(context.contains(", login, "), "client_id login: {context}");
        codes.push(lines.next().unwrap().trim().to_string());
    }
    assert_eq!(codes[0], codes[1], "both pictures carry the same challenge");
    assert_eq!(codes[0].len(), 8, "{codes:?}");

    let second = s.submit("grace", PASSWORD, &codes[0]).await;
    assert_eq!(
        second["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED",
        "{second} after {:?}",
        s.seen
    );
    let c = &second["credential"];
    assert_eq!(c["format"], "kerb_interactive_unlock_logon", "{second}");
    assert_eq!(c["message_type"], 2);
    assert_eq!(c["user"], "grace");
    assert_eq!(c["password"], PASSWORD);
    s.quit().await;

    let outcomes =
        latchkey_testkit::agent::offline_outcomes_in(&agent.dir.path().join("state")).unwrap();
    assert_eq!(
        outcomes
            .iter()
            .map(|(u, _, o, _)| (u.as_str(), o.as_str()))
            .collect::<Vec<_>>(),
        [("grace", "success")],
        "the offline login recorded: {outcomes:?}"
    );
}

/// `reg query KEY` in `prefix`: the output, or None when the key does not exist.
async fn reg_query(w: &Win, prefix: &OwnPrefix, key: &str) -> Option<String> {
    let mut c = w.builtin(prefix, "reg");
    c.args(["query", key]);
    let out = tokio::task::spawn_blocking(move || c.output())
        .await
        .unwrap()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `msiexec ARGS /qn /l*v LOG` in `prefix`; returns the log on success, panics with it
/// otherwise.
async fn msiexec(w: &Win, prefix: &OwnPrefix, args: &[String]) -> String {
    let log = prefix
        .path()
        .join(format!("msi-{}.log", args[0].trim_start_matches('/')));
    let mut c = w.builtin(prefix, "msiexec");
    c.args(args).args(["/qn", "/l*v"]).arg(z(&log));
    let out = tokio::task::spawn_blocking(move || c.output())
        .await
        .unwrap()
        .unwrap();
    let text = std::fs::read(&log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    assert!(
        out.status.success(),
        "msiexec {args:?}: {}\n{}{}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

const CLSID: &str = "{f4efd6f9-775c-4541-9dcb-303661afb99d}";

fn registry_keys() -> [String; 4] {
    [
        format!(r"HKCR\CLSID\{CLSID}\InprocServer32"),
        format!(
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Authentication\Credential Providers\{CLSID}"
        ),
        format!(
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Authentication\Credential Provider Filters\{CLSID}"
        ),
        r"HKLM\System\CurrentControlSet\Services\latchkey-agent".to_string(),
    ]
}

/// The silent install as an administrator would run it, in a prefix of its own: the MSI
/// installs the files, registers the COM class, the provider, the filter and the service,
/// and joins with the properties (through the given proxy); the service then runs the agent
/// and a logon through the tile works against it; uninstall removes it all again.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn msi_silent_install_joins_runs_the_agent_service_and_uninstalls() {
    let w = win();
    let msi = w.out.join("../../../latchkey.msi");
    assert!(
        msi.exists(),
        "{} missing: scripts/windows-toolchain build",
        msi.display()
    );
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "heidi").await;
    let proxy = latchkey_testkit::proxy::ConnectProxy::start()
        .await
        .unwrap();
    let prefix = OwnPrefix::copy_of_test_prefix();
    let token = server.join_token().await.unwrap();

    let log = msiexec(
        &w,
        &prefix,
        &[
            "/i".into(),
            z(&msi),
            format!("SERVER_URL={}", server.url()),
            format!("JOIN_TOKEN={token}"),
            format!("CA_CERT_PIN={}", server.info.tls_fingerprint),
            "SELECTION=balanced".into(),
            "CONNECT_TIMEOUT=2500ms".into(),
            format!("PROXY={}", proxy.url),
        ],
    )
    .await;
    assert!(log.contains("Join"), "the join custom action ran: {log}");

    // The files.
    for (installed, built) in [
        (
            "Program Files/latchkey/latchkey-agent.exe",
            "latchkey-agent.exe",
        ),
        ("windows/system32/latchkey_cp.dll", "latchkey_cp.dll"),
    ] {
        let got = std::fs::read(prefix.c_drive(installed))
            .unwrap_or_else(|e| panic!("{installed} not installed: {e}"));
        assert!(
            got == std::fs::read(w.out.join(built)).unwrap(),
            "{installed} differs from the build"
        );
    }

    // The agent configuration, from the properties.
    let conf_dir = prefix.c_drive("ProgramData/latchkey");
    let conf: toml::Value =
        toml::from_str(&std::fs::read_to_string(conf_dir.join("agent.toml")).unwrap()).unwrap();
    assert_eq!(
        conf["servers"].as_array().unwrap(),
        &[toml::Value::from(server.url())]
    );
    assert_eq!(conf["selection"].as_str(), Some("balanced"));
    assert_eq!(conf["connect_timeout"].as_str(), Some("2500ms"));
    assert_eq!(conf["proxy"].as_str(), Some(proxy.url.as_str()));
    assert_eq!(
        conf["pin"].as_str(),
        Some(server.info.tls_fingerprint.as_str())
    );
    assert_eq!(conf["socket"].as_str(), Some(r"\\.\pipe\latchkey-agent"));
    assert!(conf_dir.join("machine.key").exists());
    assert!(proxy.tunnels() >= 1, "the join went through PROXY");

    // The machine joined.
    let machines: Vec<latchkey_proto::admin::Machine> = server
        .admin()
        .unwrap()
        .get("/v1/admin/machines")
        .await
        .unwrap();
    let id = conf["machine_id"].as_str().unwrap();
    assert_eq!(
        machines.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [id],
        "{machines:?}"
    );

    // COM class, provider, filter, service.
    let [inproc, provider, filter, service] = registry_keys();
    let v = reg_query(&w, &prefix, &inproc)
        .await
        .expect("InprocServer32");
    assert!(
        v.contains("latchkey_cp.dll") && v.contains("Apartment"),
        "{v}"
    );
    assert!(
        reg_query(&w, &prefix, &provider).await.is_some(),
        "provider key"
    );
    assert!(
        reg_query(&w, &prefix, &filter).await.is_some(),
        "filter key"
    );
    let v = reg_query(&w, &prefix, &service).await.expect("service key");
    assert!(v.contains(r"latchkey\latchkey-agent.exe service"), "{v}");
    assert!(v.contains("LocalSystem"), "{v}");
    let start = v
        .lines()
        .find(|l| l.trim_start().starts_with("Start "))
        .unwrap_or_default();
    assert!(start.trim_end().ends_with("0x2"), "automatic start: {v}");

    // The service runs the agent (Wine starts automatic services with the prefix; they live
    // while a program runs in it, here the LogonUI stand-in), and a logon goes through it.
    let mut s = w.session_in(Some(&prefix), "logon");
    // Up to 80 s (a loaded machine starts Wine's services slowly), within `next`'s 90 s.
    s.send(&["wait-agent", "80000"]);
    let waited = s.next("wait-agent").await;
    assert!(
        waited["waited_ms"].is_u64(),
        "the service's pipe never came up: {waited}"
    );
    let r = s.submit("heidi", PASSWORD, &hotp_at(&uri, 0)).await;
    assert_eq!(r["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED", "{r}");
    assert_eq!(r["credential"]["user"], "heidi");
    assert_eq!(r["credential"]["password"], PASSWORD);
    s.quit().await;
    assert_eq!(server.login_count("otp", "success").await.unwrap(), 1);
    let agent_log = std::fs::read_to_string(conf_dir.join("agent.log")).unwrap_or_default();
    assert!(
        agent_log.contains("latchkey-agent listening"),
        "the service (which logs to agent.log) served the login: {agent_log}"
    );
    assert!(proxy.tunnels() >= 2, "the service's agent uses PROXY too");

    // Uninstall removes files, keys and the service; the joined configuration stays
    // (docs/windows.md: delete C:\ProgramData\latchkey by hand).
    //
    // Under Wine, every program started in a prefix whose wineserver is down boots it again
    // and starts the automatic services with it, so `msiexec /x` would race the agent it is
    // about to stop: a service still starting when StopServices runs keeps its .exe in use
    // and RemoveFiles leaves it behind. On Windows services start at boot, not with msiexec.
    // So: demand start (the automatic start was checked above), and wait until this
    // prefix's wineserver (and with it the service) is gone.
    let mut c = w.builtin(&prefix, "reg");
    c.args([
        "add",
        r"HKLM\SYSTEM\CurrentControlSet\Services\latchkey-agent",
        "/v",
        "Start",
        "/t",
        "REG_DWORD",
        "/d",
        "3",
        "/f",
    ]);
    let out = tokio::task::spawn_blocking(move || c.output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "reg add: {out:?}");
    let mut c = Command::new("/usr/lib/wine/wineserver");
    c.env("WINEPREFIX", prefix.path()).arg("-w");
    tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || c.status()),
    )
    .await
    .expect("the prefix's wineserver did not exit within 60 s")
    .unwrap()
    .unwrap();
    msiexec(&w, &prefix, &["/x".into(), z(&msi)]).await;
    assert!(
        !prefix
            .c_drive("Program Files/latchkey/latchkey-agent.exe")
            .exists()
    );
    assert!(!prefix.c_drive("windows/system32/latchkey_cp.dll").exists());
    for key in registry_keys() {
        assert!(
            reg_query(&w, &prefix, &key).await.is_none(),
            "{key} left behind"
        );
    }
    assert!(conf_dir.join("agent.toml").exists());
}

/// The push link: an empty code asks the agent for a push; the number to match is on the
/// tile's info line while the Submit still waits, the phone (SoftApp) approves with it, and
/// the Submit returns the credential.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn push_link_sends_a_push_and_the_approved_push_logs_in() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    server.add_user("ivan", &[]).await.unwrap();
    let app = latchkey_testkit::token_app::SoftApp::register(&server, "ivan")
        .await
        .unwrap();
    let _agent = w.agent(&server).await;
    let mut s = w.session("logon");
    s.send(&["set", "user", "ivan"]);
    s.send(&["set", "password", PASSWORD]);
    s.send(&["set", "code", "123"]);
    // The link empties the code field and says what Submit will do.
    s.send(&["push"]);
    s.next("push").await;
    assert!(
        s.events()
            .iter()
            .any(|e| e["event"] == "field_string" && e["field"] == 5 && e["value"] == ""),
        "code field emptied: {:?}",
        s.seen
    );
    s.send(&["submit"]);
    // While the Submit waits for the phone, the number arrives on the info line.
    let number = loop {
        let e = s.next("event").await;
        if e["event"] == "field_string" && e["field"] == 2 {
            let text = e["value"].as_str().unwrap().to_string();
            if let Some(n) = text.split_whitespace().find_map(|w| {
                w.trim_matches(|c: char| !c.is_ascii_digit())
                    .parse::<u32>()
                    .ok()
            }) {
                break n;
            }
        }
    };
    let reqs = app.pending(10).await.unwrap();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].user, "ivan");
    assert_eq!(reqs[0].client_id, "login");
    let v = app.approve(&reqs[0], number).await.unwrap();
    assert!(v.ok, "{v:?}");
    let r = s.next("submit").await;
    assert_eq!(
        r["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED",
        "{r} {:?}",
        s.seen
    );
    assert_eq!(r["credential"]["user"], "ivan");
    assert_eq!(r["credential"]["password"], PASSWORD);
    s.quit().await;
    let audit: Vec<latchkey_proto::admin::AuditEntry> = server
        .admin()
        .unwrap()
        .get("/v1/admin/audit?user=ivan")
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.result == "ok"
            && e.client_id.as_deref() == Some("login")
            && (e.action.contains("push") || e.detail.contains("push"))),
        "the server recorded the approved push: {audit:?}"
    );
}

/// `HKLM\SOFTWARE\latchkey` overrides the client_id of a scenario and the agent's pipe name
/// (in a prefix of its own, so the other tests keep the defaults).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn registry_overrides_the_client_id_and_the_pipe() {
    let w = win();
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "judy").await;
    let prefix = OwnPrefix::copy_of_test_prefix();
    let pipe = r"\\.\pipe\latchkey-agent-other";
    for (name, value) in [("ClientIdLogon", "elevation"), ("AgentPipe", pipe)] {
        let mut c = w.builtin(&prefix, "reg");
        c.args([
            "add",
            r"HKLM\SOFTWARE\latchkey",
            "/v",
            name,
            "/t",
            "REG_SZ",
            "/d",
            value,
            "/f",
        ]);
        let out = tokio::task::spawn_blocking(move || c.output())
            .await
            .unwrap()
            .unwrap();
        assert!(out.status.success(), "reg add {name}: {out:?}");
    }
    let _agent = w
        .agent_in(Some(&prefix), &server, &["--socket", pipe])
        .await;
    let mut s = w.session_in(Some(&prefix), "logon");
    let r = s.submit("judy", PASSWORD, &hotp_at(&uri, 0)).await;
    assert_eq!(r["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED", "{r}");
    assert_eq!(
        r["credential"]["message_type"], 2,
        "still a logon credential: {r}"
    );
    s.quit().await;
    assert_eq!(
        client_ids(&server, "judy").await,
        ["elevation"],
        "a logon under the client_id from the registry"
    );
}

/// An interactive-style install (no properties): nothing to join with, yet the install must
/// not roll back. The service runs and waits; `latchkey-agent join` by hand afterwards is
/// picked up by the running service, which then serves logons.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Windows build and Wine: scripts/test runs it"]
async fn msi_without_properties_installs_and_the_service_waits_for_join() {
    let w = win();
    let msi = w.out.join("../../../latchkey.msi");
    let server = TestServer::start().await.unwrap();
    let uri = user_with_hotp(&server, "kim").await;
    let prefix = OwnPrefix::copy_of_test_prefix();
    msiexec(&w, &prefix, &["/i".into(), z(&msi)]).await;
    let conf_dir = prefix.c_drive("ProgramData/latchkey");
    assert!(!conf_dir.join("agent.toml").exists(), "nothing joined yet");
    assert!(
        prefix
            .c_drive("Program Files/latchkey/latchkey-agent.exe")
            .exists()
    );

    // The prefix runs (and with it the automatic service) while the tile is up.
    let mut s = w.session_in(Some(&prefix), "logon");
    let r = s.submit("kim", PASSWORD, &hotp_at(&uri, 0)).await;
    assert_eq!(
        r["response"], "CPGSR_NO_CREDENTIAL_FINISHED",
        "not joined: no credential: {r}"
    );
    assert!(r["credential"].is_null());

    let token = server.join_token().await.unwrap();
    let mut join = w.builtin(&prefix, r"C:\Program Files\latchkey\latchkey-agent.exe");
    join.args([
        "join",
        "--server",
        &server.url(),
        "--join-token",
        &token,
        "--pin",
    ])
    .arg(&server.info.tls_fingerprint);
    let out = tokio::task::spawn_blocking(move || join.output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "join by hand: {out:?}");
    assert!(conf_dir.join("agent.toml").exists());

    s.send(&["wait-agent", "80000"]);
    let waited = s.next("wait-agent").await;
    assert!(
        waited["waited_ms"].is_u64(),
        "the waiting service never started the agent: {waited}"
    );
    let r = s.submit("kim", PASSWORD, &hotp_at(&uri, 0)).await;
    assert_eq!(r["response"], "CPGSR_RETURN_CREDENTIAL_FINISHED", "{r}");
    assert_eq!(r["credential"]["user"], "kim");
    s.quit().await;
    let log = std::fs::read_to_string(conf_dir.join("agent.log")).unwrap_or_default();
    assert!(
        log.contains("the machine joined: starting the agent"),
        "{log}"
    );
}
