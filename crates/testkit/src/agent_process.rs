//! `latchkey-agent run` as a process of its own over a [`PreparedAgent`]'s configuration, for
//! tests that must kill the agent without a shutdown (SIGKILL mid-upload) or run it under a
//! descriptor limit, which an agent inside the test process cannot have.

use crate::agent::PreparedAgent;
use crate::pam_harness::PamConfDir;
use crate::workspace_bin;
use anyhow::{Context, Result};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How the agent process is run.
pub struct ProcessOptions {
    /// `LATCHKEY_LOG` of the process; its log goes to `agent.log` in the prepared directory.
    pub log_level: &'static str,
    /// Runs it under `prlimit --nofile=N:N` (soft and hard), as a service unit without
    /// `LimitNOFILE` would.
    pub nofile: Option<u64>,
}

/// A running agent process; killed when dropped.
pub struct AgentProcess {
    child: Child,
    pub socket: PathBuf,
    /// The agent's state directory (`agent.db`).
    pub state_dir: PathBuf,
    pub log: PathBuf,
}

impl AgentProcess {
    /// Starts the agent and waits until its socket answers (20 s at most).
    pub async fn spawn(p: &PreparedAgent, opts: &ProcessOptions) -> Result<AgentProcess> {
        // A killed agent leaves its socket file behind.
        let _ = std::fs::remove_file(&p.socket);
        let bin = workspace_bin("latchkey-agent")?;
        let mut cmd = match opts.nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let log = p.dir.path().join("agent.log");
        let child = cmd
            .arg("--config-dir")
            .arg(&p.config_dir)
            .arg("run")
            .env("LATCHKEY_LOG", opts.log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting latchkey-agent (prlimit is util-linux's)")?;
        let mut agent = AgentProcess {
            child,
            socket: p.socket.clone(),
            state_dir: p.dir.path().join("state"),
            log,
        };
        // The agent process says nothing when its socket is ready; connecting is the signal.
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&agent.socket).is_err() {
            if let Some(status) = agent.child.try_wait()? {
                anyhow::bail!("the agent exited with {status}: {}", agent.log_text());
            }
            anyhow::ensure!(Instant::now() < deadline, "the agent socket did not open");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(agent)
    }

    /// A PAM stack for `service` whose pam_latchkey.so talks to this agent.
    pub fn pam_conf(&self, service: &str) -> Result<PamConfDir> {
        PamConfDir::for_socket(service, &self.socket)
    }

    /// Kills the agent with SIGKILL: no shutdown, no flush.
    pub fn kill9(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Descriptors the agent process has open now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// What the agent logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
