//! A real browser for end-to-end tests: Debian's Chromium driven by playwright-core through
//! `crates/testkit/browser/driver.mjs`, a Node process speaking one JSON line a request and
//! one a reply (the protocol is described at the top of that file).
//!
//! Why a separate process and not a Rust CDP client: Playwright's waiting, selectors and
//! screenshots are what web developers know, and the driver stays generic (it knows no
//! page), so the token app's tests and the web console's can share it.
//!
//! Needs `/usr/bin/chromium`, `node` and `crates/testkit/browser/node_modules` (from its
//! committed package-lock.json); `scripts/test` installs all three, and the tests that use
//! this (`browser::` of the e2e binary) are `#[ignore]`d in the plain run.
//!
//! latchkeyd's self-signed certificate is trusted by the SHA-256 of its public key
//! (`--ignore-certificate-errors-spki-list`, see [`spki_sha256_base64`]): the page then has a
//! valid TLS state, which service workers need; Playwright's `ignoreHTTPSErrors` is not
//! enough (a service worker refuses to register on an origin with a certificate error).

use crate::TestServer;
use anyhow::{Context, Result, anyhow, bail, ensure};
use base64::Engine;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;
use x509_cert::der::{Decode, Encode};

mod credentials;

pub use credentials::{Cookie, HeldCredential, VirtualAuthenticator};

const CHROMIUM: &str = "/usr/bin/chromium";
/// How long one command may take in the driver, unless the call says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Chromium's first start on a cold disk, with two cores, takes a few seconds.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
/// The driver answers a command that ran out of time itself; this side waits that much
/// longer before deciding the driver is stuck.
const REPLY_GRACE: Duration = Duration::from_secs(10);

/// What `prefers-color-scheme` the page sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorScheme {
    Light,
    Dark,
}

/// The element states [`Browser::wait`] waits for (Playwright's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitState {
    Visible,
    Hidden,
    Attached,
    Detached,
}

impl WaitState {
    fn as_str(self) -> &'static str {
        match self {
            WaitState::Visible => "visible",
            WaitState::Hidden => "hidden",
            WaitState::Attached => "attached",
            WaitState::Detached => "detached",
        }
    }
}

/// How to start the browser. [`LaunchOptions::new`] gives a phone-sized light page with
/// nothing trusted; [`LaunchOptions::for_server`] trusts a test server's certificate.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// Names the artefacts directory; defaults to the running test's name (libtest runs
    /// each test on a thread named after it, and `#[tokio::test]` polls the test there).
    pub test_name: String,
    /// Extra Chromium flags, after the driver's own.
    pub args: Vec<String>,
    pub viewport: (u32, u32),
    pub color_scheme: ColorScheme,
    /// Base64 SHA-256 of SubjectPublicKeyInfos whose certificates Chromium accepts.
    pub spki: Vec<String>,
    /// A YUV4MPEG2 file played as the camera (see [`crate::camera`]).
    pub camera: Option<PathBuf>,
    /// Permissions granted up front ("camera", "notifications", …), for `origin` if set.
    pub permissions: Vec<String>,
    pub origin: Option<String>,
    /// The default time limit of each command.
    pub timeout: Duration,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl LaunchOptions {
    pub fn new() -> LaunchOptions {
        let test_name = std::thread::current()
            .name()
            .filter(|n| *n != "main")
            .unwrap_or("browser")
            .to_string();
        LaunchOptions {
            test_name,
            args: Vec::new(),
            // A common phone's CSS viewport: the token app is a phone app.
            viewport: (412, 915),
            color_scheme: ColorScheme::Light,
            spki: Vec::new(),
            camera: None,
            permissions: Vec::new(),
            origin: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Trusts `srv`'s TLS certificate (its `tls.crt`) and takes its URL as the origin that
    /// permissions are granted to.
    pub fn for_server(srv: &TestServer) -> Result<LaunchOptions> {
        let cert_path = srv.data_dir().join("tls.crt");
        let cert = std::fs::read(&cert_path).with_context(|| cert_path.display().to_string())?;
        let mut opts = LaunchOptions::new();
        opts.spki.push(spki_sha256_base64(&cert)?);
        opts.origin = Some(srv.url());
        Ok(opts)
    }

    /// Plays `y4m` as the camera and grants the origin the camera permission.
    pub fn camera(mut self, y4m: &Path) -> LaunchOptions {
        self.camera = Some(y4m.to_path_buf());
        self.permissions.push("camera".into());
        self
    }

    pub fn viewport(mut self, width: u32, height: u32) -> LaunchOptions {
        self.viewport = (width, height);
        self
    }

    pub fn dark(mut self) -> LaunchOptions {
        self.color_scheme = ColorScheme::Dark;
        self
    }
}

/// What the page logged since the last [`Browser::console`] call.
#[derive(Debug, Clone, Default)]
pub struct ConsoleLog {
    /// (type, text): "log", "warning", "error", …
    pub messages: Vec<(String, String)>,
    /// Uncaught exceptions and unhandled rejections of the page.
    pub errors: Vec<String>,
}

/// A running Chromium with one page. Dropping it kills the driver (and with it the browser).
pub struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: mpsc::UnboundedReceiver<Value>,
    /// Told (or dropped) when the driver's stdout ends, i.e. it exited.
    exited: std::sync::mpsc::Receiver<()>,
    next_id: u64,
    timeout: Duration,
    artefacts: PathBuf,
    shots: u32,
}

/// The driver's folder inside this crate.
fn driver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Where artefacts go: `$CARGO_TARGET_DIR` (relative to the workspace root, as cargo reads
/// it) or the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace.join(dir),
        _ => workspace.join("target"),
    }
}

/// Fails clearly when what the browser needs is missing, instead of a Node stack trace.
fn check_installed() -> Result<()> {
    ensure!(
        Path::new(CHROMIUM).exists(),
        "chromium is not installed: run scripts/test (it installs it)"
    );
    let pw = driver_dir().join("node_modules/playwright-core/package.json");
    ensure!(
        pw.exists(),
        "{} is missing: run scripts/test (it runs npm ci there)",
        pw.display()
    );
    Ok(())
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Browser {
    /// Starts the driver and Chromium. The test's artefacts directory is emptied first, so
    /// what is in it after a run is that run's.
    pub async fn launch(opts: LaunchOptions) -> Result<Browser> {
        check_installed()?;
        let artefacts = target_dir()
            .join("browser-artefacts")
            .join(sanitize(&opts.test_name));
        let _ = std::fs::remove_dir_all(&artefacts);
        std::fs::create_dir_all(&artefacts).with_context(|| artefacts.display().to_string())?;

        let mut child = Command::new("node")
            .arg(driver_dir().join("driver.mjs"))
            .current_dir(driver_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // The driver's log and Playwright's errors land in the test's output.
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting node (scripts/test installs Debian's nodejs)")?;
        let stdin = child.stdin.take().context("driver stdin")?;
        let stdout = child.stdout.take().context("driver stdout")?;
        let (tx, replies) = mpsc::unbounded_channel();
        let (exit_tx, exited) = std::sync::mpsc::channel();
        // A thread, not a task: the pipe is a blocking std handle, and the thread ends by
        // itself at EOF when the driver exits.
        std::thread::Builder::new()
            .name("browser-driver-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) => {
                            if tx.send(v).is_err() {
                                break;
                            }
                        }
                        Err(_) => eprintln!("browser driver (not JSON): {line}"),
                    }
                }
                let _ = exit_tx.send(());
            })?;

        let mut browser = Browser {
            child,
            stdin: Some(stdin),
            replies,
            exited,
            next_id: 0,
            timeout: opts.timeout,
            artefacts,
            shots: 0,
        };
        let color = match opts.color_scheme {
            ColorScheme::Light => "light",
            ColorScheme::Dark => "dark",
        };
        let mut req = json!({
            "args": opts.args,
            "viewport": {"width": opts.viewport.0, "height": opts.viewport.1},
            "colorScheme": color,
            "spki": opts.spki,
            "camera": opts.camera.as_ref().map(|p| p.display().to_string()),
            "permissions": opts.permissions,
            "origin": opts.origin,
        });
        req["timeout_ms"] = json!(LAUNCH_TIMEOUT.max(opts.timeout).as_millis() as u64);
        browser.call("launch", req).await?;
        Ok(browser)
    }

    /// Sends one command and waits for its reply. `req` holds the command's fields; a
    /// `timeout_ms` in it overrides the default limit.
    pub async fn call(&mut self, cmd: &str, mut req: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let limit = req
            .get("timeout_ms")
            .and_then(Value::as_u64)
            .map(Duration::from_millis)
            .unwrap_or(self.timeout);
        req["id"] = json!(id);
        req["cmd"] = json!(cmd);
        req["timeout_ms"] = json!(limit.as_millis() as u64);
        let stdin = self.stdin.as_mut().context("browser is closed")?;
        let mut line = serde_json::to_vec(&req)?;
        line.push(b'\n');
        stdin
            .write_all(&line)
            .and_then(|()| stdin.flush())
            .map_err(|e| anyhow!("browser {cmd}: the driver is gone ({e}); see its stderr"))?;

        let wait = async {
            loop {
                let Some(reply) = self.replies.recv().await else {
                    bail!("browser {cmd}: the driver exited; see its stderr");
                };
                // A reply to an earlier command this side gave up on: not ours.
                if reply.get("id").and_then(Value::as_u64) != Some(id) {
                    continue;
                }
                if reply.get("ok").and_then(Value::as_bool) == Some(true) {
                    return Ok(reply.get("value").cloned().unwrap_or(Value::Null));
                }
                let error = reply.get("error").and_then(Value::as_str).unwrap_or("?");
                bail!("browser {error}");
            }
        };
        tokio::time::timeout(limit + REPLY_GRACE, wait)
            .await
            .map_err(|_| anyhow!("browser {cmd}: no reply in {:?}", limit + REPLY_GRACE))?
    }

    /// Opens `url` and waits for its load event; returns the HTTP status.
    pub async fn goto(&mut self, url: &str) -> Result<Option<u16>> {
        let v = self.call("goto", json!({ "url": url })).await?;
        Ok(v["status"].as_u64().and_then(|s| u16::try_from(s).ok()))
    }

    pub async fn reload(&mut self) -> Result<Option<u16>> {
        let v = self.call("reload", json!({})).await?;
        Ok(v["status"].as_u64().and_then(|s| u16::try_from(s).ok()))
    }

    /// Clicks the first element matching `selector` (a Playwright selector: CSS, `text=…`).
    pub async fn click(&mut self, selector: &str) -> Result<()> {
        self.call("click", json!({ "selector": selector }))
            .await
            .map(drop)
    }

    pub async fn fill(&mut self, selector: &str, text: &str) -> Result<()> {
        self.call("fill", json!({ "selector": selector, "text": text }))
            .await
            .map(drop)
    }

    /// Presses `key` ("Enter", "Tab", "a") in the first element matching `selector`.
    pub async fn press(&mut self, selector: &str, key: &str) -> Result<()> {
        self.call("press", json!({ "selector": selector, "key": key }))
            .await
            .map(drop)
    }

    /// The rendered text (innerText) of the first match, once there is one.
    pub async fn text(&mut self, selector: &str) -> Result<String> {
        let v = self.call("text", json!({ "selector": selector })).await?;
        v.as_str().map(str::to_string).context("text: not a string")
    }

    /// How many elements match now (no waiting).
    pub async fn count(&mut self, selector: &str) -> Result<usize> {
        let v = self.call("count", json!({ "selector": selector })).await?;
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .context("count: not a number")
    }

    pub async fn wait(&mut self, selector: &str, state: WaitState, limit: Duration) -> Result<()> {
        let req = json!({
            "selector": selector,
            "state": state.as_str(),
            "timeout_ms": limit.as_millis() as u64,
        });
        self.call("wait", req).await.map(drop)
    }

    /// Waits until the text of the first element matching the CSS `selector` matches the JS
    /// regular expression `pattern`; returns the matched part.
    pub async fn wait_text(
        &mut self,
        selector: &str,
        pattern: &str,
        limit: Duration,
    ) -> Result<String> {
        let req = json!({
            "selector": selector,
            "pattern": pattern,
            "timeout_ms": limit.as_millis() as u64,
        });
        let v = self.call("wait_text", req).await?;
        v.as_str()
            .map(str::to_string)
            .context("wait_text: not a string")
    }

    /// Runs `body` as the body of an async function in the page and returns its result
    /// (JSON). `arg` is there as `arg`.
    pub async fn eval_with(&mut self, body: &str, arg: Value) -> Result<Value> {
        self.call("eval", json!({ "expr": body, "arg": arg })).await
    }

    pub async fn eval(&mut self, body: &str) -> Result<Value> {
        self.eval_with(body, Value::Null).await
    }

    /// Saves the viewport as `NN-name.png` in this test's artefacts directory
    /// (`<target>/browser-artefacts/<test>/`), numbered in the order taken.
    pub async fn screenshot(&mut self, name: &str) -> Result<PathBuf> {
        self.shot(name, false).await
    }

    /// As [`Browser::screenshot`], the whole scrollable page.
    pub async fn screenshot_full(&mut self, name: &str) -> Result<PathBuf> {
        self.shot(name, true).await
    }

    /// As [`Browser::screenshot`], one element only (a QR code to decode, say).
    pub async fn screenshot_element(&mut self, selector: &str, name: &str) -> Result<PathBuf> {
        self.shot_of(name, json!({ "element": selector })).await
    }

    async fn shot(&mut self, name: &str, full_page: bool) -> Result<PathBuf> {
        self.shot_of(name, json!({ "full_page": full_page })).await
    }

    async fn shot_of(&mut self, name: &str, mut req: Value) -> Result<PathBuf> {
        self.shots += 1;
        let path = self
            .artefacts
            .join(format!("{:02}-{}.png", self.shots, sanitize(name)));
        req["path"] = json!(path.display().to_string());
        self.call("screenshot", req).await?;
        Ok(path)
    }

    /// This test's artefacts directory.
    pub fn artefacts(&self) -> &Path {
        &self.artefacts
    }

    /// Cuts the page off the network (or back on), as a phone in a tunnel.
    pub async fn set_offline(&mut self, offline: bool) -> Result<()> {
        self.call("set_offline", json!({ "offline": offline }))
            .await
            .map(drop)
    }

    /// What the page logged and threw since the last call (and clears it).
    pub async fn console(&mut self) -> Result<ConsoleLog> {
        let v = self.call("console", json!({})).await?;
        let messages = v["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
                (s("type"), s("text"))
            })
            .collect();
        let errors = v["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e.as_str().unwrap_or_default().to_string())
            .collect();
        Ok(ConsoleLog { messages, errors })
    }

    /// Fails if the page threw since the last look, listing what it threw.
    pub async fn assert_no_page_errors(&mut self) -> Result<()> {
        let log = self.console().await?;
        ensure!(log.errors.is_empty(), "page errors: {:?}", log.errors);
        Ok(())
    }

    /// Closes the browser and waits for the driver to exit (its stdout ends).
    pub async fn close(mut self) -> Result<()> {
        self.call("close", json!({})).await?;
        drop(self.stdin.take());
        let ended = async { while self.replies.recv().await.is_some() {} };
        tokio::time::timeout(EXIT_GRACE, ended)
            .await
            .map_err(|_| anyhow!("browser driver did not exit after close"))?;
        Ok(())
    }
}

/// How long the driver gets to close Chromium before it is stopped by a signal.
const EXIT_GRACE: Duration = Duration::from_secs(5);

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing stdin lets the driver close Chromium itself; the kill is for a stuck
        // driver (Chromium then exits when its debugging pipe to the driver closes).
        drop(self.stdin.take());
        if self.exited.recv_timeout(EXIT_GRACE).is_err() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Base64 of the SHA-256 of a certificate's SubjectPublicKeyInfo (DER), as Chromium's
/// `--ignore-certificate-errors-spki-list` and HPKP pins write it. Takes PEM or DER.
pub fn spki_sha256_base64(cert: &[u8]) -> Result<String> {
    let der = match std::str::from_utf8(cert) {
        Ok(text) if text.contains("-----BEGIN") => latchkey_crypto::x509::pem_to_der(text)?,
        _ => cert.to_vec(),
    };
    let parsed = x509_cert::Certificate::from_der(&der)
        .map_err(|e| anyhow!("not an X.509 certificate: {e}"))?;
    let spki = parsed
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| anyhow!("re-encoding the public key: {e}"))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
    Ok(base64::engine::general_purpose::STANDARD.encode(digest.as_ref()))
}
