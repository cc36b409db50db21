//! The `otp-load` scenario: server up, users seeded, one machine joined, warm-up, measured
//! phase with CPU read around it, server stopped.

use anyhow::{Context, Result, bail};
use latchkey_client::{Client, ClientConfig, Credential, Trust};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::h1::{H1Config, H1Conn};
use crate::load::{Conn, UserPool, run_phase};
use crate::procfs::{self, Target};
use crate::report::{Report, RunSettings, TARGET_RATE};
use crate::seed::{self, SeedPlan};
use crate::server::SpawnedServer;

/// Bounds that keep a run short and its memory small whatever the flags say.
pub const MAX_DURATION: Duration = Duration::from_secs(120);
pub const MAX_USERS: usize = 1_000_000;
pub const MAX_CONCURRENCY: usize = 4096;

/// Requests that take longer than this count as errors (a healthy p99 is milliseconds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub enum ServerTarget {
    /// Start this `latchkeyd` binary in a fresh temporary data directory.
    Spawn { server_bin: PathBuf },
    /// Use a running server. CPU and memory figures need its pid.
    Existing {
        url: String,
        pin: Option<String>,
        admin_token: String,
        pid: Option<u32>,
    },
}

/// The workers' HTTP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientKind {
    /// One lean HTTP/1.1 keep-alive connection per worker (`h1.rs`): the least CPU taken
    /// from the server under test.
    Lean,
    /// The agents' own client library (`latchkey_client::Client`, with its pool).
    Agent,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub target: ServerTarget,
    pub users: usize,
    pub user_prefix: String,
    pub seed_concurrency: usize,
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// The HTTP client the workers use.
    pub client: ClientKind,
    /// With `--client agent`: one `Client` (own connection pool) per worker instead of one
    /// shared client.
    pub client_per_worker: bool,
    /// Worker threads of the bench's runtime (for the report only; the caller builds it).
    pub bench_threads: usize,
    /// Write each measured verification's end time and latency here (`--timeline`).
    pub timeline: Option<std::path::PathBuf>,
}

impl Options {
    pub fn validate(&self) -> Result<()> {
        if self.duration.is_zero() || self.duration + self.warmup > MAX_DURATION {
            bail!("--duration must be > 0 and duration + warm-up at most {MAX_DURATION:?}");
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            bail!("--concurrency must be 1 to {MAX_CONCURRENCY}");
        }
        if self.users > MAX_USERS || self.users < self.concurrency {
            bail!("--users must be at least --concurrency and at most {MAX_USERS}");
        }
        if !(1..=256).contains(&self.seed_concurrency) {
            bail!("--seed-concurrency must be 1 to 256");
        }
        Ok(())
    }
}

fn client(url: &str, pin: Option<&str>, credential: Credential) -> Result<Client> {
    let mut cfg = ClientConfig::parse(url)?
        .with_credential(credential)
        .with_request_timeout(REQUEST_TIMEOUT);
    if let Some(pin) = pin {
        cfg = cfg.with_trust(Trust::Pin(pin.to_string()));
    }
    Ok(Client::new(cfg)?)
}

pub async fn run(opts: Options) -> Result<Report> {
    opts.validate()?;
    let (spawned, url, pin, admin_token, pid) = match &opts.target {
        ServerTarget::Spawn { server_bin } => {
            let s = SpawnedServer::start(server_bin)?;
            eprintln!(
                "started latchkeyd (pid {}) at {}; log {}",
                s.pid(),
                s.url,
                s.log_path.display()
            );
            let (url, pin, token, pid) = (
                s.url.clone(),
                Some(s.fingerprint.clone()),
                s.admin_token.clone(),
                Some(s.pid()),
            );
            (Some(s), url, pin, token, pid)
        }
        ServerTarget::Existing {
            url,
            pin,
            admin_token,
            pid,
        } => (None, url.clone(), pin.clone(), admin_token.clone(), *pid),
    };
    let result = scenario(&opts, &url, pin.as_deref(), &admin_token, pid).await;
    if let Some(s) = spawned {
        let tail = s.log_tail();
        let stopped = s.stop();
        // The scenario's own error says more than a failed stop that follows from it.
        if result.is_err() {
            eprintln!("latchkeyd log{tail}");
            return result;
        }
        let status = stopped?;
        if !status.success() {
            bail!("latchkeyd exited with {status}{tail}");
        }
    }
    result
}

async fn scenario(
    opts: &Options,
    url: &str,
    pin: Option<&str>,
    admin_token: &str,
    pid: Option<u32>,
) -> Result<Report> {
    let expected = TARGET_RATE * (opts.duration + opts.warmup).as_secs_f64();
    if (opts.users as f64) < expected {
        eprintln!(
            "WARNING: {} users for up to {expected:.0} verifications ({TARGET_RATE} /s for the warm-up and \
             measured phases); each user has only one or two fresh codes per 30 s step, so a fast server \
             may exhaust them and end the run early",
            opts.users
        );
    }
    let admin = client(url, pin, Credential::Bearer(admin_token.to_string()))?;
    eprintln!(
        "seeding {} users ({} requests in flight)…",
        opts.users, opts.seed_concurrency
    );
    let plan = SeedPlan {
        prefix: opts.user_prefix.clone(),
        users: opts.users,
        concurrency: opts.seed_concurrency,
        server: pid,
    };
    let seed = seed::seed_users(&admin, &plan).await?;
    let api_key = seed::join_machine(&admin, "otp-load.bench.invalid").await?;
    drop(admin);

    let mut conns: Vec<Conn> = match opts.client {
        ClientKind::Lean => {
            let pin = pin.context("the lean client needs the server's --pin (HTTPS)")?;
            let cfg = Arc::new(H1Config::new(url, pin, &api_key, REQUEST_TIMEOUT)?);
            (0..opts.concurrency)
                .map(|_| Conn::Lean(Box::new(H1Conn::new(cfg.clone()))))
                .collect()
        }
        ClientKind::Agent => {
            let n_clients = if opts.client_per_worker {
                opts.concurrency
            } else {
                1
            };
            let clients = (0..n_clients)
                .map(|_| client(url, pin, Credential::Bearer(api_key.clone())))
                .collect::<Result<Vec<_>>>()?;
            (0..opts.concurrency)
                .map(|w| Conn::Agent(clients[w % n_clients].clone()))
                .collect()
        }
    };
    let pool = Arc::new(UserPool::new(&opts.user_prefix, opts.users));

    // Warm-up: TLS handshakes, pool growth, SQLite page cache; not measured.
    let warmup = if opts.warmup.is_zero() {
        Default::default()
    } else {
        eprintln!(
            "warm-up {:?} with {} clients…",
            opts.warmup, opts.concurrency
        );
        let (warmup, back) = run_phase(conns, pool.clone(), opts.warmup).await?;
        conns = back;
        warmup
    };
    eprintln!(
        "measuring {:?} with {} clients…",
        opts.duration, opts.concurrency
    );
    let server_cpu_before = pid.map(|p| procfs::cpu_ms(Target::Pid(p))).transpose()?;
    let bench_cpu_before = procfs::cpu_ms(Target::Myself)?;
    let machine_before = procfs::machine_cpu()?;
    let (phase, conns) = run_phase(conns, pool.clone(), opts.duration).await?;
    let machine_after = procfs::machine_cpu()?;
    if let Some(path) = &opts.timeline {
        write_timeline(path, phase.started_unix_ms, &phase.timeline)?;
    }
    let bench_cpu_ms = procfs::cpu_ms(Target::Myself)?.saturating_sub(bench_cpu_before);
    let server_cpu_ms = match (pid, server_cpu_before) {
        (Some(p), Some(before)) => Some(procfs::cpu_ms(Target::Pid(p))?.saturating_sub(before)),
        _ => None,
    };
    let server_memory_end = pid.map(|p| procfs::memory(Target::Pid(p))).transpose()?;
    // Close the keep-alive connections before the server is asked to stop.
    drop(conns);

    let mut error_samples = warmup.error_samples;
    error_samples.extend(phase.error_samples);
    error_samples.truncate(5);
    Ok(Report {
        settings: RunSettings {
            concurrency: opts.concurrency,
            duration: opts.duration,
            warmup: opts.warmup,
            users: opts.users,
            client_mode: match (opts.client, opts.client_per_worker) {
                (ClientKind::Lean, _) => "lean HTTP/1.1",
                (ClientKind::Agent, true) => "per-worker agent",
                (ClientKind::Agent, false) => "shared agent",
            },
            server: match &opts.target {
                ServerTarget::Spawn { .. } => "spawned".to_string(),
                ServerTarget::Existing { url, .. } => url.clone(),
            },
            bench_threads: opts.bench_threads,
            cpus: procfs::cpu_count()?,
        },
        seed,
        warmup: warmup.counts,
        counts: phase.counts,
        elapsed: phase.elapsed,
        exhausted: warmup.exhausted || phase.exhausted,
        latencies: phase.latencies,
        server_cpu_ms,
        bench_cpu_ms,
        machine_cpu: machine_after.since(machine_before),
        server_memory_end,
        error_samples,
    })
}

/// A first line `# phase start (Unix ms): N`, then one line per verification, sorted by end
/// time: `END_MS LATENCY_MS`, END_MS counted from the phase's start.
fn write_timeline(
    path: &std::path::Path,
    started_unix_ms: u128,
    timeline: &[(u32, u32)],
) -> Result<()> {
    use std::fmt::Write as _;
    let mut sorted = timeline.to_vec();
    sorted.sort_unstable();
    let mut text = String::with_capacity(sorted.len() * 16 + 40);
    let _ = writeln!(text, "# phase start (Unix ms): {started_unix_ms}");
    for (end, took) in sorted {
        let _ = writeln!(
            text,
            "{:.3} {:.3}",
            f64::from(end) / 1e3,
            f64::from(took) / 1e3
        );
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
