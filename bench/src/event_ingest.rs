//! `event-ingest`: how fast latchkeyd stores agent event batches (`POST /v1/events`, target
//! ≥ 20,000 events/s) and how fast an agent writes its durable spool (one fsync'd SQLite
//! transaction per event, as logins and session hooks do, and per batch of 100, as the
//! journal follower does under load).
//!
//! It starts `target/release/latchkeyd` in a temporary data directory, joins one machine per
//! uploader, and has `--concurrency` uploaders post batches of `--batch` fresh events (each a
//! new UUID, so every event is a real insert) for `--duration` seconds, `--runs` times; it
//! prints each run and the median.

use anyhow::{Context, Result, ensure};
use clap::Parser;
use latchkey_agent::agent_db::AgentDb;
use latchkey_agent::events::{Events, new_event};
use latchkey_bench::procfs::{Target, cpu_ms};
use latchkey_bench::seed::join_machine;
use latchkey_bench::server::SpawnedServer;
use latchkey_client::{Client, ClientConfig, Credential, Trust};
use latchkey_proto::events::{Event, EventBatch, EventKind, EventsAccepted};
use latchkey_proto::routes;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Event ingest rate of latchkeyd and spool write rate of the agent")]
struct Args {
    /// latchkeyd binary [default: WORKSPACE/target/release/latchkeyd].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Events per upload.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Uploaders (each its own machine).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seconds per measured run.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Measured runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Events written per spool measurement.
    #[arg(long, default_value_t = 2000)]
    spool_events: usize,
}

fn event(i: usize) -> Event {
    let kind = match i % 4 {
        0 => EventKind::Logon,
        1 => EventKind::AuthSuccess,
        2 => EventKind::Journal,
        _ => EventKind::Logoff,
    };
    let mut e = new_event(kind);
    e.user = Some(format!("user{:05}", i % 10_000));
    e.service = Some("sshd".into());
    e.client_id = Some("remote".into());
    e.rhost = Some("10.1.2.3".into());
    e.session_id = Some(format!("{:012x}", i));
    if kind == EventKind::Journal {
        e.message = Some(format!(
            "Failed password for user{i} from 10.1.2.3 port 22 ssh2"
        ));
        e.fields.insert("rule".into(), "ssh-failures".into());
        e.fields
            .insert("_SYSTEMD_UNIT".into(), "sshd.service".into());
    }
    e
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

async fn upload_for(client: Client, batch: usize, until: Instant) -> Result<u64> {
    let mut n = 0u64;
    let mut i = 0usize;
    while Instant::now() < until {
        let events: Vec<Event> = (0..batch).map(|k| event(i + k)).collect();
        i += batch;
        let acc: EventsAccepted = client
            .post(routes::EVENTS, &EventBatch { events })
            .await
            .context("uploading a batch")?;
        ensure!(
            acc.accepted.len() == batch && acc.inserted == batch as u64,
            "the server stored {} of {batch}",
            acc.inserted
        );
        n += batch as u64;
    }
    Ok(n)
}

fn spool_rate(n: usize, per_tx: usize) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let db = Arc::new(AgentDb::open(dir.path())?);
    let events = Events::open(
        db,
        latchkey_agent::events::spool::Limits {
            cap: n + 1000,
            caller_quota: 1000,
        },
    )?;
    let batches: Vec<Vec<Event>> = (0..n / per_tx)
        .map(|b| (0..per_tx).map(|k| event(b * per_tx + k)).collect())
        .collect();
    let t0 = Instant::now();
    for b in &batches {
        events.record_with(b, |_| Ok(()))?;
    }
    Ok((batches.len() * per_tx) as f64 / t0.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        (1..=1000).contains(&args.batch),
        "--batch must be 1 to 1000"
    );
    let bin = args.server_bin.clone().unwrap_or_else(|| {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/latchkeyd"
        ))
    });
    let server = SpawnedServer::start(&bin)?;
    let cfg = |cred| -> Result<Client> {
        Ok(Client::new(
            ClientConfig::parse(&server.url)?
                .with_trust(Trust::Pin(server.fingerprint.clone()))
                .with_request_timeout(Duration::from_secs(60))
                .with_credential(cred),
        )?)
    };
    let admin = cfg(Credential::Bearer(server.admin_token.clone()))?;
    let mut machines = Vec::new();
    for i in 0..args.concurrency {
        let key = join_machine(&admin, &format!("bench-{i}")).await?;
        machines.push(cfg(Credential::Bearer(key))?);
    }
    // Warm-up: connections, pool growth, the first pages of the table.
    let warm = Instant::now() + Duration::from_secs(1);
    upload_for(machines[0].clone(), args.batch, warm).await?;

    println!(
        "server ingest: batch {}, {} uploaders, {} s per run",
        args.batch, args.concurrency, args.duration
    );
    let mut rates = Vec::new();
    for run in 1..=args.runs {
        let cpu0 = cpu_ms(Target::Pid(server.pid()))?;
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs(args.duration);
        let tasks: Vec<_> = machines
            .iter()
            .map(|m| tokio::spawn(upload_for(m.clone(), args.batch, until)))
            .collect();
        let mut n = 0;
        for t in tasks {
            n += t.await??;
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_ms(Target::Pid(server.pid()))? - cpu0;
        let rate = n as f64 / secs;
        println!(
            "  run {run}: {n} events in {secs:.2} s = {rate:.0} events/s, server CPU {:.1} µs/event",
            cpu as f64 * 1000.0 / n.max(1) as f64
        );
        rates.push(rate);
    }
    let ingest = median(rates);
    println!(
        "  median: {ingest:.0} events/s (target >= 20000: {})",
        if ingest >= 20_000.0 { "met" } else { "NOT met" }
    );
    server.stop()?;

    println!(
        "agent spool writes ({} events per measurement):",
        args.spool_events
    );
    for per_tx in [1usize, 100] {
        let mut r = Vec::new();
        for _ in 0..args.runs {
            r.push(spool_rate(args.spool_events, per_tx)?);
        }
        println!(
            "  {per_tx:>3} per transaction: median {:.0} events/s ({})",
            median(r.clone()),
            r.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
