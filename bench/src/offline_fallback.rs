//! `offline-fallback`: how fast a login falls back to the offline QR challenge when no server
//! answers, and how long the offline checks take.
//!
//! A real latchkeyd and agent run in this process on loopback. One online login (HOTP) gives
//! the agent a signed bundle (the user has a token app). Then the agent's `agent.toml` is
//! pointed at an address that does not answer, the agent restarts (fresh circuit breaker),
//! and the time from `Begin` to the `Qr` step is measured over the Unix socket:
//!
//! - *silent*: a TCP listener that never calls accept(): the kernel completes the handshake
//!   (backlog), the TLS ClientHello gets no answer, so the agent waits its connect timeout.
//!   (Dropped packets in a network namespace would give the same wait for the TCP handshake;
//!   this needs no privileges.) First login after the restart, then a second one (the
//!   circuit breaker now skips the server without touching the network).
//! - *refused*: a port where nothing listens (connection refused at once).
//!
//! Offline verification is measured in-process on the agent's own code (`Attempt::begin`:
//! check the stored bundle's signature and limits, seal the code with HPKE, draw the QR
//! code; `Attempt::answer`: compare the code and count the login durably in SQLite).

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Parser;
use latchkey_agent::agent_db::AgentDb;
use latchkey_agent::config::AgentConfig;
use latchkey_agent::offline::{Clock, Offline, Verdict};
use latchkey_proto::TokenKind;
use latchkey_proto::agent::Step;
use latchkey_proto::offline::{BUNDLE_VERSION, Bundle, OfflineApp, SignedBundle};
use latchkey_testkit::agent::{TestAgent, socket_login};
use latchkey_testkit::token_app::SoftApp;
use latchkey_testkit::{TestServer, hotp_at};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Time to the offline prompt when no server answers, and offline check time")]
struct Args {
    /// Runs per scenario (each with a freshly restarted agent).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The agent's connect timeout.
    #[arg(long, default_value = "1.5s")]
    connect_timeout: String,
    /// Offline verifications to time.
    #[arg(long, default_value_t = 300)]
    verifications: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Time from Begin to the first step, which must be the offline QR challenge.
async fn time_to_qr(agent: &TestAgent) -> Result<Duration> {
    let socket = agent.socket.clone();
    let t0 = Instant::now();
    let steps =
        tokio::task::spawn_blocking(move || socket_login(&socket, "alice", "login", &[])).await??;
    let took = t0.elapsed();
    anyhow::ensure!(
        matches!(steps.first(), Some(Step::Qr { .. })),
        "expected the offline QR step, got {steps:?}"
    );
    Ok(took)
}

async fn point_agent_at(agent: &mut TestAgent, original: &str, url: &str, ct: &str) -> Result<()> {
    let mut cfg: AgentConfig = toml::from_str(original)?;
    cfg.servers = vec![url.to_string()];
    cfg.connect_timeout = latchkey_agent::config::duration::parse(ct)?;
    std::fs::write(agent.config_dir.join("agent.toml"), toml::to_string(&cfg)?)?;
    agent.restart().await
}

async fn fallback(args: &Args) -> Result<()> {
    let srv = TestServer::start().await?;
    srv.add_user("alice", &[]).await?;
    let (_, uri) = srv.add_token("alice", TokenKind::Hotp).await?;
    SoftApp::register(&srv, "alice").await?;
    let mut agent = TestAgent::start(&srv).await?;
    let steps = agent.login("alice", "login", &[&hotp_at(&uri, 0)]).await?;
    anyhow::ensure!(
        matches!(steps.last(), Some(Step::Success { .. })),
        "online login failed: {steps:?}"
    );
    let original = std::fs::read_to_string(agent.config_dir.join("agent.toml"))?;

    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let silent_url = format!("https://{}", silent.local_addr()?);
    let refused_url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        format!("https://{}", l.local_addr()?)
    };
    let (mut first, mut second, mut refused) = (vec![], vec![], vec![]);
    for _ in 0..args.runs {
        point_agent_at(&mut agent, &original, &silent_url, &args.connect_timeout).await?;
        first.push(ms(time_to_qr(&agent).await?));
        second.push(ms(time_to_qr(&agent).await?));
        point_agent_at(&mut agent, &original, &refused_url, &args.connect_timeout).await?;
        refused.push(ms(time_to_qr(&agent).await?));
    }
    let ct = humantime::parse_duration(&args.connect_timeout).context("connect timeout")?;
    println!(
        "Begin → offline QR step (median of {} runs, ms):",
        args.runs
    );
    println!(
        "  silent server, first login : {:8.1}   (target ≤ {:.0}: connect timeout + 100)   runs {first:.1?}",
        median(first.clone()),
        ms(ct) + 100.0
    );
    println!(
        "  silent server, second login: {:8.1}   (target < 50: circuit breaker)   runs {second:.1?}",
        median(second.clone())
    );
    println!(
        "  port refused, first login  : {:8.1}   (target < 50)   runs {refused:.1?}",
        median(refused.clone())
    );
    agent.stop().await;
    Ok(())
}

/// The agent's own offline code over a state database on disk, with a bundle signed by a key
/// made here (the agent pins it as it would pin the server's).
fn verification(args: &Args) -> Result<()> {
    let server = latchkey_crypto::keys::SigningKeyPair::generate()?;
    let app_secret: [u8; 32] = latchkey_crypto::random_bytes(32)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("random"))?;
    let dir = tempfile::tempdir()?;
    let cfg: AgentConfig = toml::from_str(&format!(
        "servers = [\"https://unused\"]\nmachine_id = \"m1\"\nserver_signing_key = \"{}\"\n",
        B64.encode(server.public_bytes())
    ))?;
    let db = Arc::new(AgentDb::open(dir.path()).map_err(|e| anyhow::anyhow!("{e}"))?);
    let offline = Offline::new(&cfg, db, Arc::new(Clock::default())).map_err(anyhow::Error::msg)?;
    let now = offline.now();
    let bundle = Bundle {
        version: BUNDLE_VERSION,
        id: "bench".into(),
        user: "alice".into(),
        machine_id: "m1".into(),
        client_ids: vec!["login".into()],
        issued_at: now,
        not_after: now + 86_400,
        max_logins: u32::MAX,
        max_failures: 5,
        apps: vec![OfflineApp {
            id: "app".into(),
            x25519_public: B64.encode(latchkey_crypto::hpke::public_key(&app_secret)),
            device_name: "phone".into(),
        }],
        fido2: vec![],
        smartcards: vec![],
        methods: Default::default(),
    };
    let payload = bundle.encode().map_err(|e| anyhow::anyhow!("{e}"))?;
    let signed = SignedBundle {
        payload: B64.encode(&payload),
        signature: B64.encode(latchkey_crypto::bundle::sign(&server, &payload)),
    };
    offline
        .store(&signed, "alice")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut begin, mut answer, mut checks) = (vec![], vec![], vec![]);
    for _ in 0..args.verifications {
        let t = Instant::now();
        offline
            .verify(&signed, "alice")
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        checks.push(ms(t.elapsed()));
        let t0 = Instant::now();
        let ch = offline
            .attempt()
            .begin("alice", "login")
            .map_err(|e| anyhow::anyhow!("{}", e.0))?;
        begin.push(ms(t0.elapsed()));
        // What the token app does (not timed).
        let c = latchkey_crypto::challenge::from_text(&ch.payload)?;
        let code = latchkey_crypto::challenge::open(&app_secret, &c)?;
        let t1 = Instant::now();
        let v = offline.attempt().answer(&ch, &code);
        answer.push(ms(t1.elapsed()));
        anyhow::ensure!(
            matches!(v, Verdict::Passed(_)),
            "offline answer refused: {v:?}"
        );
    }
    let p99 = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[(v.len() * 99 / 100).min(v.len() - 1)]
    };
    println!(
        "Offline checks ({} logins, ms; target < 2):",
        args.verifications
    );
    println!(
        "  bundle check (Ed25519 signature + strict decode)   : median {:.3}  p99 {:.3}",
        median(checks.clone()),
        p99(checks)
    );
    println!(
        "  begin  (bundle check + limits + clock guard write + HPKE seal + QR): median {:.3}  p99 {:.3}",
        median(begin.clone()),
        p99(begin)
    );
    println!(
        "  answer (constant-time compare + count and event, one fsync'd transaction): median {:.3}  p99 {:.3}",
        median(answer.clone()),
        p99(answer)
    );
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(fallback(&args))?;
    verification(&args)
}
