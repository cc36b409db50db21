//! `agent-login`: how much the agent adds to a login. The same HOTP logins run (a) straight
//! against latchkeyd's machine API and (b) through the agent's Unix socket protocol (agent and
//! server in this process, on loopback, over real TLS), sequentially and with 16 concurrent
//! logins. Prints p50/p99 of both and the difference (the agent's added latency).

use anyhow::{Context, Result};
use clap::Parser;
use latchkey_bench::latency::{Latencies, Samples};
use latchkey_crypto::otpauth::OtpAuthUri;
use latchkey_proto::TokenKind;
use latchkey_proto::agent::Step;
use latchkey_proto::login::{LoginOtp, LoginStart, LoginStartResult, LoginStepResult};
use latchkey_proto::routes;
use latchkey_proto::{ClientId, UserName};
use latchkey_testkit::agent::{TestAgent, socket_login};
use latchkey_testkit::token_app::SoftApp;
use latchkey_testkit::{TestServer, hotp_at};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Latency the agent adds to a login (agent and server on loopback)")]
struct Args {
    /// Logins per measurement.
    #[arg(long, default_value_t = 400)]
    logins: usize,
    /// Concurrent logins in the concurrent measurement.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Enable offline login for the users (each gets a token app), so every success carries
    /// an offline bundle that the agent checks and stores.
    #[arg(long)]
    offline: bool,
}

struct User {
    name: String,
    uri: OtpAuthUri,
    counter: AtomicU64,
}

impl User {
    fn next_code(&self) -> String {
        hotp_at(&self.uri, self.counter.fetch_add(1, Ordering::SeqCst))
    }
}

async fn direct(m: &latchkey_client::Client, u: &User) -> Result<()> {
    let start = LoginStart {
        user: UserName::parse(&u.name)?,
        client_id: ClientId::parse("login")?,
        rhost: None,
        tty: None,
        enroll: false,
    };
    let LoginStartResult::Challenge { tx, .. } = m.post(routes::LOGIN_START, &start).await? else {
        anyhow::bail!("no challenge")
    };
    let r: LoginStepResult = m
        .post(
            &routes::login_otp(&tx),
            &LoginOtp {
                code: u.next_code().into(),
            },
        )
        .await?;
    anyhow::ensure!(
        matches!(r, LoginStepResult::Success { .. }),
        "direct login failed: {r:?}"
    );
    Ok(())
}

async fn via_agent(agent: &TestAgent, u: &User) -> Result<()> {
    let socket = agent.socket.clone();
    let (name, code) = (u.name.clone(), u.next_code());
    let steps = tokio::task::spawn_blocking(move || socket_login(&socket, &name, "login", &[code]))
        .await??;
    anyhow::ensure!(
        matches!(steps.last(), Some(Step::Success { .. })),
        "agent login failed: {steps:?}"
    );
    Ok(())
}

/// Runs `n` logins with `conc` at a time; user `i % users.len()` each (one user per worker,
/// so HOTP counters stay in order).
async fn measure<F, Fut>(n: usize, conc: usize, f: F) -> Result<Latencies>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let mut set = tokio::task::JoinSet::new();
    for w in 0..conc {
        let f = f.clone();
        let per = n / conc;
        set.spawn(async move {
            let mut s = Samples::with_capacity(per);
            for _ in 0..per {
                let t = Instant::now();
                f(w).await?;
                s.record(t.elapsed());
            }
            Ok::<_, anyhow::Error>(s)
        });
    }
    let mut parts = Vec::new();
    while let Some(r) = set.join_next().await {
        parts.push(r??);
    }
    Ok(Latencies::merge(parts))
}

fn line(label: &str, l: &Latencies) -> String {
    format!(
        "{label:<28} n={:<5} p50 {:>7.2} ms   p99 {:>7.2} ms",
        l.len(),
        l.percentile_ms(50.0).unwrap_or(f64::NAN),
        l.percentile_ms(99.0).unwrap_or(f64::NAN)
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let srv = TestServer::start_with(|c| {
        c.machine_rate = 1_000_000;
        c.machine_burst = 1_000_000;
    })
    .await?;
    srv.set_policy("*", &[("lockout_threshold", "1000")])
        .await?;
    if args.offline {
        srv.set_policy("login", &[("offline.enabled", "true")])
            .await?;
    }
    let mut users = Vec::new();
    for i in 0..args.concurrency.max(1) {
        let name = format!("bench{i}");
        srv.add_user(&name, &[]).await?;
        let (_, uri) = srv.add_token(&name, TokenKind::Hotp).await?;
        if args.offline {
            // The registration is what makes bundles; the app itself is not used after it.
            SoftApp::register(&srv, &name).await?;
        }
        users.push(User {
            name,
            uri,
            counter: AtomicU64::new(0),
        });
    }
    let users = Arc::new(users);
    let (_, machine) = srv.join_machine("bench-host").await?;
    let agent = Arc::new(TestAgent::start(&srv).await.context("agent")?);

    // Warm up connections and caches.
    for u in users.iter() {
        direct(&machine, u).await?;
        via_agent(&agent, u).await?;
    }
    println!(
        "agent-login: {} logins per run; agent and server on loopback (TLS), one process{}",
        args.logins,
        if args.offline {
            "; offline enabled: every success carries a bundle"
        } else {
            ""
        }
    );
    for conc in [1, args.concurrency] {
        let (m, us) = (machine.clone(), users.clone());
        let d = measure(args.logins, conc, move |w| {
            let (m, us) = (m.clone(), us.clone());
            async move { direct(&m, &us[w]).await }
        })
        .await?;
        let (a, us) = (agent.clone(), users.clone());
        let v = measure(args.logins, conc, move |w| {
            let (a, us) = (a.clone(), us.clone());
            async move { via_agent(&a, &us[w]).await }
        })
        .await?;
        println!("concurrency {conc}:");
        println!("  {}", line("server API directly", &d));
        println!("  {}", line("through the agent socket", &v));
        let added = |p: f64| {
            v.percentile_ms(p).unwrap_or(f64::NAN) - d.percentile_ms(p).unwrap_or(f64::NAN)
        };
        println!(
            "  added by the agent            p50 {:>7.2} ms   p99 {:>7.2} ms   (target p50 < 5 ms)",
            added(50.0),
            added(99.0)
        );
    }
    if args.offline {
        // The runs measured what they claim only if the bundles arrived and were stored.
        let state = &agent.agent().context("agent not running")?.state;
        for u in users.iter() {
            anyhow::ensure!(
                state.bundle_get(&u.name)?.is_some(),
                "no offline bundle stored for {}",
                u.name
            );
        }
    }
    Ok(())
}
