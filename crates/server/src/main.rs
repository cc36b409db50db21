//! `latchkeyd`: parse configuration, start the server, stop on SIGTERM/SIGINT.

use clap::Parser;
use latchkey_server::{Args, config};
use std::process::ExitCode;

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let (cfg, log_format) = match config::resolve(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("latchkeyd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logs(&log_format);
    let data_dir = cfg.data_dir.clone();
    let server = match latchkey_server::start(cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("latchkeyd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let info = &server.info;
    println!("latchkeyd listening on {}", info.url());
    if !info.tls_fingerprint.is_empty() {
        println!(
            "TLS certificate fingerprint (agents pin this): {}",
            info.tls_fingerprint
        );
    }
    if let Some(token) = &info.new_admin_token {
        println!(
            "Bootstrap admin API key (shown once, saved in {}):",
            data_dir.join("admin.token").display()
        );
        println!("  {token}");
    }
    wait_for_signal().await;
    tracing::info!("shutdown requested");
    server.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
