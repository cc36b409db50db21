//! `otp-load`: closed-loop TOTP verification load against latchkeyd.
//!
//! By default it starts `target/release/latchkeyd` itself in a temporary data directory on
//! a free loopback port, seeds users with known TOTP seeds, joins one machine, then runs
//! `--concurrency` clients doing login/start + login/otp for `--duration` seconds and
//! prints the figures next to the targets. Progress goes to stderr, the report to stdout.

use anyhow::{Context, Result, bail};
use clap::Parser;
use latchkey_bench::run::{ClientKind, Options, ServerTarget, run};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "otp-load",
    about = "Closed-loop TOTP verification load against latchkeyd"
)]
struct Args {
    /// latchkeyd binary to start [default: WORKSPACE/target/release/latchkeyd].
    #[arg(long, conflicts_with = "url")]
    server_bin: Option<PathBuf>,
    /// Target a running server instead of starting one (needs --admin-token, and --pin for https).
    #[arg(long, requires = "admin_token")]
    url: Option<String>,
    /// `sha256:HEX` certificate pin of the --url server.
    #[arg(long, requires = "url")]
    pin: Option<String>,
    /// Admin API key of the --url server.
    #[arg(
        long,
        env = "LATCHKEY_ADMIN_TOKEN",
        requires = "url",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// Pid of the --url server, for its CPU and memory figures.
    #[arg(long, requires = "url")]
    pid: Option<u32>,
    /// Allow a --url that is not a loopback address (the bench creates thousands of users).
    #[arg(long)]
    allow_remote: bool,
    /// Users to seed; each can be verified about twice per 30 s step.
    #[arg(long, default_value_t = 150_000)]
    users: usize,
    /// Bench user names are PREFIX-0, PREFIX-1, …
    #[arg(long, default_value = "bench-user")]
    user_prefix: String,
    /// Admin requests in flight while seeding.
    #[arg(long, default_value_t = 32)]
    seed_concurrency: usize,
    /// Concurrent clients (each runs one verification at a time).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured seconds before (TLS handshakes, caches).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// HTTP client of the workers: `lean` (one HTTP/1.1 keep-alive connection per worker,
    /// the least CPU taken from the server) or `agent` (the agents' client library).
    #[arg(long, value_enum, default_value_t = ClientKind::Lean)]
    client: ClientKind,
    /// With `--client agent`: one client (own pool) per worker instead of one shared client.
    #[arg(long)]
    client_per_worker: bool,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Write each measured verification as `END_MS LATENCY_MS` (ms from the start of the
    /// measured phase) to this file, to see when the slow ones happened.
    #[arg(long)]
    timeline: Option<PathBuf>,
}

fn seconds(flag: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v)
        .with_context(|| format!("--{flag} must be a number of seconds ≥ 0"))
}

fn is_loopback(url: &str) -> Result<bool> {
    let url = latchkey_client::Url::parse(url).with_context(|| format!("invalid --url {url:?}"))?;
    let host = url.host_str().unwrap_or_default();
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    Ok(host == "localhost"
        || ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()))
}

fn options(args: &Args) -> Result<Options> {
    let target = match &args.url {
        Some(url) => {
            if !args.allow_remote && !is_loopback(url)? {
                bail!("--url {url} is not a loopback address; pass --allow-remote if you mean it");
            }
            ServerTarget::Existing {
                url: url.clone(),
                pin: args.pin.clone(),
                admin_token: args
                    .admin_token
                    .clone()
                    .context("--url needs --admin-token")?,
                pid: args.pid,
            }
        }
        None => ServerTarget::Spawn {
            server_bin: args.server_bin.clone().unwrap_or_else(|| {
                PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../target/release/latchkeyd"
                ))
            }),
        },
    };
    if args.client_per_worker && args.client != ClientKind::Agent {
        bail!("--client-per-worker goes with --client agent");
    }
    Ok(Options {
        target,
        users: args.users,
        user_prefix: args.user_prefix.clone(),
        seed_concurrency: args.seed_concurrency,
        concurrency: args.concurrency,
        duration: seconds("duration", args.duration)?,
        warmup: seconds("warmup", args.warmup)?,
        client: args.client,
        client_per_worker: args.client_per_worker,
        bench_threads: args.threads,
        timeline: args.timeline.clone(),
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    match main_inner(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("otp-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ok(false) when the run completed but not every verification succeeded.
fn main_inner(args: &Args) -> Result<bool> {
    let opts = options(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.clamp(1, 64))
        .enable_all()
        .build()
        .context("cannot build the async runtime")?;
    let report = runtime.block_on(run(opts))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(report.healthy())
}
