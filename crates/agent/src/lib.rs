//! latchkey-agent: the endpoint service. It owns the login engine and is the only part of a
//! machine that talks to the latchkey servers; shells (the PAM module, the Windows credential
//! provider, `latchkey-agent login`) only render its steps.

pub mod agent_db;
pub mod callers;
pub mod config;
pub mod engine;
pub mod error;
pub mod events;
pub mod fido2;
mod first_factor;
pub mod join;
pub mod offline;
#[cfg(windows)]
mod pipe;
pub(crate) mod qr;
#[cfg(windows)]
pub mod service;
pub mod sessions;
pub mod smartcard;
mod socket;
mod sys;
pub mod terminal;
pub mod upstream;

pub use error::{AgentError, Result};

use config::AgentConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;
use upstream::Upstream;

pub struct Agent {
    pub config: AgentConfig,
    /// The login engine, holding the servers (`Upstream`), the offline store and the
    /// event recorder.
    pub engine: engine::LoginEngine<Upstream>,
    pub sessions: sessions::Sessions,
    pub state: Arc<agent_db::AgentDb>,
    /// The event spool: every event goes here first.
    pub events: Arc<events::Events>,
    pub timings: events::config::Timings,
    pub clock: Arc<offline::Clock>,
    /// What each local caller may hold and start.
    pub limits: Arc<callers::Limits>,
}

impl Agent {
    pub fn new(config: AgentConfig, config_dir: &Path) -> Result<Agent> {
        let state = Arc::new(agent_db::AgentDb::open(&config.state_dir)?);
        let clock = Arc::new(offline::Clock::default());
        let offline = offline::Offline::new(&config, state.clone(), clock.clone())?;
        // The time the agent starts at counts for the clock guard (then every minute).
        offline.tick();
        let upstream = Upstream::new(&config, config_dir)?;
        let timings = events::config::validate(&config.events, &config.session_lock)?;
        let mut limits = callers::Limits::new(&config.socket_limits)?;
        match callers::raise_nofile() {
            Some(nofile) if limits.fit_descriptors(nofile) => {
                let (per_user, users, root) = limits.caps();
                tracing::warn!(
                    nofile,
                    per_user,
                    users,
                    root,
                    "few descriptors (set LimitNOFILE=65536 in the unit): socket connection caps lowered"
                );
            }
            _ => {}
        }
        let events = Arc::new(events::Events::open(
            state.clone(),
            config.events.spool_limits(),
        )?);
        // Outcomes an agent before this version left in its own table: moved once, here.
        match events.import_legacy_offline() {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                n,
                "offline login events of an earlier agent moved into the spool"
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot move earlier offline login events into the spool")
            }
        }
        Ok(Agent {
            config,
            engine: engine::LoginEngine::new(upstream, Some(Arc::new(offline)), events.clone()),
            sessions: sessions::Sessions::new(events.clone()),
            state,
            events,
            timings,
            clock,
            limits: Arc::new(limits),
        })
    }
}

/// Options of `latchkey-agent run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config_dir: PathBuf,
    /// Overrides the socket path from agent.toml.
    pub socket: Option<PathBuf>,
}

pub struct RunningAgent {
    pub socket: PathBuf,
    pub agent: Arc<Agent>,
    /// The agent's clock (end-to-end tests move it; nothing else can).
    pub clock: Arc<offline::Clock>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningAgent {
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        #[cfg(unix)]
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Loads the configuration, binds the socket (a named pipe on Windows) and serves until `stop`.
pub async fn start(opts: RunOptions) -> Result<RunningAgent> {
    let mut config = AgentConfig::load(&opts.config_dir)?;
    if let Some(s) = opts.socket {
        config.socket = s;
    }
    let socket = config.socket.clone();
    let agent = Arc::new(Agent::new(config, &opts.config_dir)?);
    let clock = agent.clock.clone();
    let (shutdown, rx) = watch::channel(false);
    #[cfg(unix)]
    let serve = {
        let listener = socket::bind(&socket).await?;
        tokio::spawn(socket::serve(agent.clone(), listener, rx.clone()))
    };
    #[cfg(windows)]
    let serve = {
        let listener = pipe::bind(&socket.to_string_lossy())?;
        tokio::spawn(pipe::serve(agent.clone(), listener, rx.clone()))
    };
    let mut tasks = vec![
        serve,
        tokio::spawn(events::upload::run(agent.clone(), rx.clone())),
    ];
    if !agent.config.events.journal.rules.is_empty() {
        tasks.push(tokio::spawn(events::journal::run(
            agent.clone(),
            rx.clone(),
        )));
    }
    if let Some(o) = agent.engine.offline_shared() {
        tasks.push(tokio::spawn(o.run_guard(rx.clone())));
    }
    if agent.config.session_lock.enabled {
        tasks.push(tokio::spawn(events::lock::run(agent.clone(), rx)));
    }
    tracing::info!(socket = %socket.display(), spooled = agent.events.spool().len(), "latchkey-agent listening");
    Ok(RunningAgent {
        socket,
        agent,
        clock,
        shutdown,
        tasks,
    })
}
