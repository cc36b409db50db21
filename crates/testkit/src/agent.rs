//! Real agents for end-to-end tests: joined to test servers with a real join token, serving
//! the real socket protocol on a socket in a temporary directory.

use crate::TestServer;
use crate::pam_harness::PamConfDir;
use anyhow::{Context, Result};
use latchkey_agent::join::JoinOptions;
use latchkey_agent::{RunOptions, RunningAgent};
use latchkey_proto::agent::{AGENT_PROTOCOL_VERSION, AgentReply, AgentRequest, Step, blocking};
use latchkey_proto::{ClientId, Secret, UserName};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// (user, method, outcome, reason) of one offline authentication.
pub type OfflineOutcome = (String, String, String, String);

pub struct TestAgent {
    running: Option<RunningAgent>,
    pub config_dir: PathBuf,
    pub socket: PathBuf,
    /// The agent's state directory (`agent.db`).
    pub state_dir: PathBuf,
    _dir: TempDir,
}

/// Join settings a test may change before the agent joins.
pub struct AgentSetup {
    pub servers: Vec<String>,
    pub selection: String,
    pub connect_timeout: String,
    pub timeout: String,
    pub proxy: Option<String>,
    pub pin: Option<String>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `fido2_devices` written into agent.toml after the join (e.g. a SoftKey's spec).
    pub fido2_devices: Vec<String>,
    pub fido2_timeout: Option<String>,
    /// `smartcard_module` written into agent.toml after the join.
    pub smartcard_module: Option<PathBuf>,
    /// TOML appended to agent.toml after the join (e.g. `[events]`, `[session_lock]`
    /// sections, `breaker_base = …`: top-level keys must come before any table).
    pub config_append: String,
}

/// A joined agent that is not running yet (run it in-process or as a separate process).
pub struct PreparedAgent {
    pub config_dir: PathBuf,
    pub socket: PathBuf,
    pub dir: TempDir,
}

impl TestAgent {
    /// Joins `servers[0]` (all must share one data dir or one trust pin) and starts the agent.
    pub async fn start(server: &TestServer) -> Result<TestAgent> {
        Self::start_with(server, |_| {}).await
    }

    pub async fn start_with(
        server: &TestServer,
        tweak: impl FnOnce(&mut AgentSetup),
    ) -> Result<TestAgent> {
        let p = Self::prepare(server, tweak).await?;
        Self::run_prepared(p).await
    }

    /// Starts an agent over a prepared (joined) configuration.
    pub async fn run_prepared(p: PreparedAgent) -> Result<TestAgent> {
        let running = latchkey_agent::start(RunOptions {
            config_dir: p.config_dir.clone(),
            socket: None,
        })
        .await
        .map_err(anyhow::Error::msg)
        .context("agent start")?;
        Ok(TestAgent {
            running: Some(running),
            config_dir: p.config_dir,
            socket: p.socket,
            state_dir: p.dir.path().join("state"),
            _dir: p.dir,
        })
    }

    /// A PAM stack for `service` whose pam_latchkey.so talks to this agent.
    pub fn pam_conf(&self, service: &str) -> Result<PamConfDir> {
        PamConfDir::for_socket(service, &self.socket)
    }

    /// The running agent's library object (spool, sessions, state).
    pub fn agent(&self) -> Option<&std::sync::Arc<latchkey_agent::Agent>> {
        self.running.as_ref().map(|r| &r.agent)
    }

    /// Joins an agent without starting it.
    pub async fn prepare(
        server: &TestServer,
        tweak: impl FnOnce(&mut AgentSetup),
    ) -> Result<PreparedAgent> {
        let dir = tempfile::tempdir()?;
        let mut setup = AgentSetup {
            servers: vec![server.url()],
            selection: "ordered".into(),
            connect_timeout: "1.5s".into(),
            timeout: "10s".into(),
            proxy: None,
            pin: Some(server.info.tls_fingerprint.clone()),
            client_cert: None,
            fido2_devices: Vec::new(),
            fido2_timeout: None,
            smartcard_module: None,
            config_append: String::new(),
        };
        tweak(&mut setup);
        let config_dir = dir.path().join("etc");
        let socket = dir.path().join("agent.sock");
        let o = JoinOptions {
            servers: setup.servers.join(","),
            join_token: server.join_token().await?,
            ca_cert: None,
            pin: setup.pin,
            selection: setup.selection,
            connect_timeout: setup.connect_timeout,
            timeout: setup.timeout,
            proxy: setup.proxy,
            client_cert: setup.client_cert.as_ref().map(|c| c.0.clone()),
            client_key: setup.client_cert.as_ref().map(|c| c.1.clone()),
            config_dir: config_dir.clone(),
            state_dir: Some(dir.path().join("state")),
            socket: Some(socket.clone()),
            hostname: Some("test-host".into()),
        };
        latchkey_agent::join::join(&o)
            .await
            .map_err(anyhow::Error::msg)
            .context("agent join")?;
        if !setup.fido2_devices.is_empty() || setup.fido2_timeout.is_some() {
            let mut cfg = latchkey_agent::config::AgentConfig::load(&config_dir)
                .map_err(anyhow::Error::msg)?;
            cfg.fido2_devices = setup.fido2_devices.clone();
            if let Some(t) = &setup.fido2_timeout {
                cfg.fido2_timeout = latchkey_agent::config::duration::parse(t)?;
            }
            std::fs::write(
                config_dir.join(latchkey_agent::config::CONFIG_FILE),
                toml::to_string(&cfg)?,
            )?;
        }
        if let Some(module) = setup.smartcard_module {
            let mut cfg = latchkey_agent::config::AgentConfig::load(&config_dir)
                .map_err(anyhow::Error::msg)?;
            cfg.smartcard_module = Some(module);
            let path = config_dir.join(latchkey_agent::config::CONFIG_FILE);
            std::fs::write(path, toml::to_string(&cfg)?)?;
        }
        if !setup.config_append.is_empty() {
            let path = config_dir.join(latchkey_agent::config::CONFIG_FILE);
            let mut text = std::fs::read_to_string(&path)?;
            text.push('\n');
            text.push_str(&setup.config_append);
            std::fs::write(&path, text)?;
        }
        Ok(PreparedAgent {
            config_dir,
            socket,
            dir,
        })
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    /// Stops and starts the agent again with the same configuration and state.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await;
        let running = latchkey_agent::start(RunOptions {
            config_dir: self.config_dir.clone(),
            socket: None,
        })
        .await
        .map_err(anyhow::Error::msg)
        .context("agent restart")?;
        self.running = Some(running);
        Ok(())
    }

    /// Moves the running agent's clock `secs` away from the system clock.
    pub fn set_clock_offset(&self, secs: i64) {
        if let Some(r) = &self.running {
            r.clock.set_offset(secs);
        }
    }

    /// The agent's state database, opened beside the agent (tests inspect and damage it).
    pub fn state_db(&self) -> Result<rusqlite::Connection> {
        Ok(rusqlite::Connection::open(
            self.state_dir.join(latchkey_agent::agent_db::STATE_FILE),
        )?)
    }

    /// Every offline authentication outcome the agent recorded, oldest first, as
    /// (user, method, outcome, reason). They are in the spool until uploaded; an agent
    /// before the one event path wrote them to `offline_events`, so that table is read too.
    pub fn offline_outcomes(&self) -> Result<Vec<OfflineOutcome>> {
        offline_outcomes_in(&self.state_dir)
    }

    /// Runs a whole login over the socket on a blocking thread, answering prompts from
    /// `answers` in order; returns every step seen.
    pub async fn login(&self, user: &str, client_id: &str, answers: &[&str]) -> Result<Vec<Step>> {
        let socket = self.socket.clone();
        let (user, client_id) = (user.to_string(), client_id.to_string());
        let answers: Vec<String> = answers.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || socket_login(&socket, &user, &client_id, &answers))
            .await?
    }
}

/// A complete login conversation as a shell would run it.
pub fn socket_login(
    socket: &Path,
    user: &str,
    client_id: &str,
    answers: &[String],
) -> Result<Vec<Step>> {
    let mut s =
        UnixStream::connect(socket).with_context(|| format!("connect {}", socket.display()))?;
    let mut answers = answers.iter();
    let mut req = AgentRequest::Begin {
        version: AGENT_PROTOCOL_VERSION,
        user: UserName::parse(user)?,
        service: "test".into(),
        client_id: Some(ClientId::parse(client_id)?),
        rhost: None,
        tty: None,
        enroll: None,
    };
    let mut steps = Vec::new();
    loop {
        blocking::write(&mut s, &req)?;
        let reply: AgentReply = blocking::read(&mut s)?;
        let AgentReply::Step(step) = reply else {
            anyhow::bail!("agent replied {reply:?}")
        };
        steps.push(step.clone());
        req = match step {
            Step::Prompt { .. } => match answers.next() {
                Some(a) => AgentRequest::Answer {
                    text: Secret::from(a.as_str()),
                },
                None => return Ok(steps),
            },
            Step::Success { .. } | Step::Failure { .. } => return Ok(steps),
            _ => AgentRequest::Continue,
        };
    }
}

/// The offline outcomes an agent recorded in the state directory `state_dir` (see
/// [`TestAgent::offline_outcomes`]; also for an agent run as another program, e.g. under Wine).
pub fn offline_outcomes_in(state_dir: &Path) -> Result<Vec<OfflineOutcome>> {
    use latchkey_proto::events::{Event, EventKind};
    let db = rusqlite::Connection::open(state_dir.join(latchkey_agent::agent_db::STATE_FILE))?;
    let mut rows: Vec<(i64, String, OfflineOutcome)> = Vec::new();
    let mut stmt =
        db.prepare("SELECT time, uuid, user_name, method, outcome, reason FROM offline_events")?;
    for r in stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
        ))
    })? {
        let (time, uuid, o) = r?;
        // offline_events keeps seconds; the spool milliseconds.
        rows.push((time * 1000, uuid, o));
    }
    let mut stmt = db.prepare("SELECT body FROM event_spool")?;
    for body in stmt.query_map([], |r| r.get::<_, String>(0))? {
        let e: Event = serde_json::from_str(&body?)?;
        let outcome = match e.kind {
            EventKind::AuthSuccess => "success",
            EventKind::AuthFailure => "failure",
            _ => continue,
        };
        if e.online != Some(false) {
            continue;
        }
        rows.push((
            e.time_ms,
            e.id,
            (
                e.user.unwrap_or_default(),
                e.method.unwrap_or_default(),
                outcome.to_string(),
                e.reason.unwrap_or_default(),
            ),
        ));
    }
    rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(rows.into_iter().map(|r| r.2).collect())
}
