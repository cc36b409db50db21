//! `latchkey-agent`: join, run, login, status.

use clap::{Parser, Subcommand};
use latchkey_agent::AgentError;
use latchkey_agent::config::{AgentConfig, DEFAULT_CONFIG_DIR};
use latchkey_agent::join::{JoinOptions, join};
use latchkey_proto::{ClientId, Secret, UserName};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "latchkey-agent", version, about = "latchkey endpoint agent")]
struct Cli {
    /// Directory of agent.toml and the machine credential.
    #[arg(long, global = true, env = "LATCHKEY_AGENT_CONFIG_DIR", default_value = DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Join this machine to the latchkey servers (non-interactive).
    Join(Box<JoinOptions>),
    /// Run the agent service.
    Run {
        /// Socket path (overrides agent.toml).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Log format: text or json.
        #[arg(long, default_value = "text")]
        log_format: String,
    },
    /// Run as a Windows service (started by the Service Control Manager).
    #[cfg(windows)]
    Service,
    /// Run a login through the running agent in this terminal.
    Login {
        user: UserName,
        #[arg(long)]
        client_id: Option<ClientId>,
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Register the FIDO2 security key plugged into this machine for USER, with the
    /// one-time code from `latchkey token add-fido2 USER`.
    EnrollFido2 {
        user: UserName,
        #[arg(long)]
        code: Secret,
    },
    /// Register the certificate on a smartcard for a user (needs a one-time code from
    /// `latchkey token add-smartcard USER --enroll`).
    EnrollSmartcard(latchkey_agent::smartcard::enroll::EnrollOptions),
    /// Show the servers, their circuit state and last contact.
    Status {
        #[arg(long)]
        socket: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn socket_path(cli_dir: &std::path::Path, given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        AgentConfig::load(cli_dir)
            .map(|c| c.socket)
            .unwrap_or_else(|_| PathBuf::from(latchkey_proto::agent::DEFAULT_SOCKET))
    })
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == "json" {
        b.json().init()
    } else {
        b.init()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("latchkey-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, AgentError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AgentError::Local(format!("cannot start the runtime: {e}")))
}

fn run(cli: Cli) -> Result<ExitCode, AgentError> {
    match cli.cmd {
        Cmd::Join(mut o) => {
            o.config_dir = cli.config_dir.clone();
            let cfg = runtime()?.block_on(join(&o))?;
            println!(
                "joined as machine {}; configuration written to {}",
                cfg.machine_id,
                cli.config_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { socket, log_format } => {
            init_logs(&log_format);
            let rt = runtime()?;
            rt.block_on(async {
                let agent = latchkey_agent::start(latchkey_agent::RunOptions {
                    config_dir: cli.config_dir.clone(),
                    socket,
                })
                .await?;
                wait_for_signal().await;
                tracing::info!("shutdown requested");
                agent.stop().await;
                Ok::<_, AgentError>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(windows)]
        Cmd::Service => {
            latchkey_agent::service::dispatch(cli.config_dir.clone())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Login {
            user,
            client_id,
            socket,
        } => {
            let ok = latchkey_agent::terminal::login(
                &socket_path(&cli.config_dir, socket),
                &user,
                client_id.as_ref(),
            )?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::EnrollFido2 { user, code } => {
            let opts = latchkey_agent::fido2::enroll::EnrollOptions {
                config_dir: cli.config_dir.clone(),
                user,
                code,
            };
            let done = runtime()?.block_on(latchkey_agent::fido2::enroll::enroll(
                &opts,
                latchkey_agent::fido2::enroll::TerminalUi,
            ))?;
            println!(
                "Security key registered for {} (token {}, credential {}, user verification {}).",
                done.token.user,
                done.token.id,
                done.credential_id,
                if done.user_verified {
                    "done"
                } else {
                    "not done"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::EnrollSmartcard(o) => {
            let t = runtime()?.block_on(latchkey_agent::smartcard::enroll::enroll(
                &cli.config_dir,
                &o,
            ))?;
            let sc = t.smartcard.as_ref();
            println!(
                "smartcard token {} registered for {}: {} (sha256 {})",
                t.id,
                t.user,
                sc.map(|s| s.subject.as_str()).unwrap_or("-"),
                sc.map(|s| s.fingerprint.as_str()).unwrap_or("-"),
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status { socket, json } => {
            let st = latchkey_agent::terminal::status(&socket_path(&cli.config_dir, socket))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&st)
                        .map_err(|e| AgentError::Local(e.to_string()))?
                );
            } else {
                latchkey_agent::terminal::print_status(&st);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(windows)]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
