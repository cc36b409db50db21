//! A `latchkeyd` child process in a throw-away data directory, on a kernel-chosen loopback
//! port, with the per-machine login rate limit raised out of the way.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a fresh server may take to create its keys, certificate and schema.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// latchkeyd lets open requests finish for up to 10 s after SIGTERM; allow a little more.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The bench sends every login from one machine; the default 50/s would measure the limiter.
const UNLIMITED_RATE: &str = "1000000";

pub struct SpawnedServer {
    child: Option<Child>,
    pid: u32,
    pub url: String,
    /// `sha256:HEX` printed by the server.
    pub fingerprint: String,
    pub admin_token: String,
    /// The server's stderr (its logs, one line per audit record at the default level).
    pub log_path: PathBuf,
    // Dropped (deleted) after the child has been stopped: fields drop in declaration order
    // after `Drop::drop` ran.
    _data: tempfile::TempDir,
}

impl SpawnedServer {
    /// Starts `bin` and waits until it printed its URL and certificate fingerprint.
    pub fn start(bin: &Path) -> Result<SpawnedServer> {
        if !bin.is_file() {
            bail!(
                "server binary {} not found: build it with `cargo build --release -p latchkey-server` \
                 or pass --server-bin / --url",
                bin.display()
            );
        }
        let data = tempfile::Builder::new()
            .prefix("latchkey-bench-")
            .tempdir()
            .context("cannot create a temporary data directory")?;
        let data_dir = data.path().join("data");
        let log_path = data.path().join("latchkeyd.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .args([
                "--machine-rate",
                UNLIMITED_RATE,
                "--machine-burst",
                UNLIMITED_RATE,
            ])
            // A `latchkeyd.toml` in the caller's directory must not change the server.
            .current_dir(data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut server = SpawnedServer {
            child: Some(child),
            pid,
            url: String::new(),
            fingerprint: String::new(),
            admin_token: String::new(),
            log_path,
            _data: data,
        };
        server.read_banner(stdout)?;
        let token_path = data_dir.join("admin.token");
        server.admin_token = std::fs::read_to_string(&token_path)
            .with_context(|| format!("cannot read {}", token_path.display()))?
            .trim()
            .to_string();
        Ok(server)
    }

    /// Reads stdout lines until the URL and fingerprint are known. A thread keeps draining
    /// stdout afterwards so the server never blocks on (or dies from) a full or closed pipe.
    fn read_banner(&mut self, stdout: std::process::ChildStdout) -> Result<()> {
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The receiver is gone once the banner was read; keep draining anyway.
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        while self.url.is_empty() || self.fingerprint.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!(
                        "latchkeyd did not start within {START_TIMEOUT:?}{}",
                        self.log_tail()
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("latchkeyd exited during start-up{}", self.log_tail())
                }
            };
            if let Some(url) = line.strip_prefix("latchkeyd listening on ") {
                self.url = url.trim().to_string();
            } else if let Some((_, fp)) = line.split_once("(agents pin this): ") {
                self.fingerprint = fp.trim().to_string();
            }
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// SIGTERM (graceful: open requests finish, the audit log is flushed), then wait.
    pub fn stop(mut self) -> Result<ExitStatus> {
        let mut child = self.child.take().context("server already stopped")?;
        signal(self.pid, "-TERM")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(STOP_TIMEOUT) {
            Ok(status) => Ok(status.context("waiting for latchkeyd")?),
            Err(_) => {
                // Still unreaped, so the pid is still ours.
                signal(self.pid, "-KILL")?;
                let status = rx.recv().context("waiting for latchkeyd after SIGKILL")?;
                bail!(
                    "latchkeyd did not stop within {STOP_TIMEOUT:?} of SIGTERM and was killed ({:?})",
                    status.ok()
                )
            }
        }
    }

    /// The last lines of the server log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n  ");
        if tail.is_empty() {
            String::new()
        } else {
            format!("; server log:\n  {tail}")
        }
    }
}

impl Drop for SpawnedServer {
    /// On an early error the server must not outlive the bench.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(pid: u32, sig: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .context("cannot run kill")?;
    if !status.success() {
        bail!("kill {sig} {pid} failed: {status}");
    }
    Ok(())
}
