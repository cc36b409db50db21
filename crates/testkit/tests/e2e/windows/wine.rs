//! The Wine harness the Windows tests share (`cp.rs`, `msi.rs`): the
//! Windows build and Wine from the environment `scripts/windows-toolchain env` prints, the
//! Windows agent joined and run under Wine, `logonui-sim.exe` driven line by line, Wine
//! prefixes of their own for installs, `reg` and `msiexec`.

use latchkey_proto::TokenKind;
use latchkey_testkit::TestServer;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

pub const PASSWORD: &str = "Corr3ct horse: battery staple!";

pub struct Win {
    pub wine: PathBuf,
    pub out: PathBuf,
    pub _lock: std::fs::File,
}

/// The Windows build and Wine, from the environment `scripts/windows-toolchain env` prints.
pub fn win() -> Win {
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
pub fn z(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

pub struct WineAgent {
    pub child: Child,
    pub dir: tempfile::TempDir,
}

impl WineAgent {
    /// The agent's state database (its state directory is on the Linux side, drive Z:).
    pub fn state_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(
            self.dir
                .path()
                .join("state")
                .join(latchkey_agent::agent_db::STATE_FILE),
        )
        .unwrap()
    }
}

/// A Wine prefix of its own (a copy of the test prefix), for a test that installs things the
/// other tests must not see (a service that would own the agent pipe). Its wineserver is
/// stopped when it is dropped.
pub struct OwnPrefix {
    pub dir: tempfile::TempDir,
}

impl OwnPrefix {
    pub fn copy_of_test_prefix() -> OwnPrefix {
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

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn c_drive(&self, rel: &str) -> PathBuf {
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
pub struct Session {
    pub child: Child,
    pub stdin: ChildStdin,
    pub lines: UnboundedReceiver<Value>,
    /// Everything read so far, for failure messages.
    pub seen: Vec<Value>,
    pub dumps: tempfile::TempDir,
}

impl Session {
    pub fn send(&mut self, cmd: &[&str]) {
        writeln!(self.stdin, "{}", json!(cmd)).unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next output line of `kind` ("submit", "tile", "event"…); earlier lines are kept in
    /// `seen`.
    pub async fn next(&mut self, kind: &str) -> Value {
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
    pub async fn submit(&mut self, user: &str, password: &str, code: &str) -> Value {
        self.send(&["set", "user", user]);
        self.send(&["set", "password", password]);
        self.send(&["set", "code", code]);
        self.send(&["submit"]);
        self.next("submit").await
    }

    /// Events seen so far.
    pub fn events(&self) -> Vec<&Value> {
        self.seen.iter().filter(|v| v["kind"] == "event").collect()
    }

    /// A bitmap the harness dumped (PGM), as a PNG file a phone's camera would see.
    pub fn png_of(&self, dump: &Value) -> PathBuf {
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

    pub async fn quit(mut self) {
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
    pub fn cmd(&self, exe: &str) -> Command {
        let mut c = Command::new(&self.wine);
        c.arg(self.out.join(exe));
        c
    }

    /// `exe` from the build in `prefix` (None: the shared test prefix).
    pub fn cmd_in(&self, prefix: Option<&OwnPrefix>, exe: &str) -> Command {
        let mut c = self.cmd(exe);
        if let Some(p) = prefix {
            c.env("WINEPREFIX", p.path());
        }
        c
    }

    /// A Wine built-in program (`msiexec`, `reg`…) in `prefix`.
    pub fn builtin(&self, prefix: &OwnPrefix, program: &str) -> Command {
        let mut c = Command::new(&self.wine);
        c.env("WINEPREFIX", prefix.path()).arg(program);
        c
    }

    /// `latchkey-agent.exe join` under Wine into a fresh directory; returns it and the
    /// configuration directory as Wine sees it.
    pub async fn join(
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
    pub async fn agent(&self, server: &TestServer) -> WineAgent {
        self.agent_in(None, server, &[]).await
    }

    /// The same in `prefix` (None: the shared test prefix), with more `run` arguments.
    pub async fn agent_in(
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
    pub fn session(&self, scenario: &str) -> Session {
        self.session_in(None, scenario)
    }

    /// The same, in another Wine prefix than the shared test prefix.
    pub fn session_in(&self, prefix: Option<&OwnPrefix>, scenario: &str) -> Session {
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
    pub async fn sim(&self, args: &[&str]) -> Value {
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
pub async fn user_with_hotp(
    server: &TestServer,
    name: &str,
) -> latchkey_crypto::otpauth::OtpAuthUri {
    server
        .add_user_with_token(name, TokenKind::Hotp)
        .await
        .unwrap()
}

/// The client_ids the server recorded for a user's logins (audit log).
pub async fn client_ids(server: &TestServer, user: &str) -> Vec<String> {
    let entries = server.audit(user).await.unwrap();
    let mut ids: Vec<String> = entries.into_iter().filter_map(|e| e.client_id).collect();
    ids.sort();
    ids.dedup();
    ids
}

pub use crate::support::wrong;
/// `reg query KEY` in `prefix`: the output, or None when the key does not exist.
pub async fn reg_query(w: &Win, prefix: &OwnPrefix, key: &str) -> Option<String> {
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
pub async fn msiexec(w: &Win, prefix: &OwnPrefix, args: &[String]) -> String {
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
