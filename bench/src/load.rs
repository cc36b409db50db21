//! The closed-loop generator: each worker verifies one user after another (login/start,
//! then login/otp with the user's current TOTP code) until the phase's deadline, and records
//! how long each whole verification took.

use crate::h1::H1Conn;
use anyhow::{Context, Result};
use latchkey_client::Client;
use latchkey_crypto::otp::totp;
use latchkey_proto::login::{LoginOtp, LoginStart, LoginStartResult, LoginStepResult};
use latchkey_proto::routes;
use latchkey_proto::{ClientId, OtpAlgorithm, UserName};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::latency::{Latencies, Samples};
use crate::seed::{SEED_LEN, user_name, user_seed};

const PERIOD: u32 = 30;
/// Error messages kept per phase to show what went wrong (the count is always exact).
const ERROR_SAMPLES: usize = 5;

/// The bench users and, per user, the last TOTP step it was verified with.
///
/// The server accepts each step once per user, within ±1 step of its clock. So a user can be
/// verified once with the current step's code and once more with the next step's; after
/// that it is free again only when the clock moves on. Users are handed out round-robin;
/// when the next user has no fresh step left the pool is exhausted and the phase ends
/// early, rather than sending replays the server would (rightly) refuse.
pub struct UserPool {
    names: Vec<String>,
    seeds: Vec<[u8; SEED_LEN]>,
    /// 0 = never used (real steps are around 5.8e7).
    last_step: Vec<AtomicU64>,
    next: AtomicUsize,
    exhausted: AtomicBool,
}

struct Reserved {
    index: usize,
    step: u64,
}

impl UserPool {
    pub fn new(prefix: &str, users: usize) -> UserPool {
        let names: Vec<String> = (0..users).map(|i| user_name(prefix, i)).collect();
        let seeds = names.iter().map(|n| user_seed(n)).collect();
        let last_step = (0..users).map(|_| AtomicU64::new(0)).collect();
        UserPool {
            names,
            seeds,
            last_step,
            next: AtomicUsize::new(0),
            exhausted: AtomicBool::new(false),
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Verifications handed out so far (all phases).
    pub fn handed_out(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    pub fn exhausted(&self) -> bool {
        self.exhausted.load(Ordering::Relaxed)
    }

    /// The next user and a step it may still use, or `None` when the pool is exhausted.
    fn reserve(&self, unix_now: u64) -> Option<Reserved> {
        if self.names.is_empty() || self.exhausted() {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.names.len();
        let current = unix_now / u64::from(PERIOD);
        let slot = self.last_step.get(index)?;
        // Atomic so a user can never be given the same step twice, even if more workers
        // than users were configured.
        let reserved = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
            let step = current.max(last + 1);
            (step <= current + 1).then_some(step)
        });
        match reserved {
            Ok(last) => Some(Reserved {
                index,
                step: current.max(last + 1),
            }),
            Err(_) => {
                self.exhausted.store(true, Ordering::Relaxed);
                None
            }
        }
    }
}

/// Answers of the measured verifications.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// `success` from login/otp: the only valid verification.
    pub success: u64,
    /// `retry` from login/otp (wrong or replayed code).
    pub retry: u64,
    /// `deny` from login/otp.
    pub deny: u64,
    /// login/start answered `allow` or `deny` instead of a challenge.
    pub start_refused: u64,
    /// Transport errors and non-2xx answers (429, 5xx, …).
    pub errors: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.success += o.success;
        self.retry += o.retry;
        self.deny += o.deny;
        self.start_refused += o.start_refused;
        self.errors += o.errors;
    }

    pub fn failures(&self) -> u64 {
        self.retry + self.deny + self.start_refused + self.errors
    }
}

#[derive(Debug, Default)]
pub struct PhaseResult {
    pub counts: Counts,
    /// Latency of each successful verification (both requests).
    pub latencies: Latencies,
    /// From the start of the phase until the last worker finished its last verification.
    pub elapsed: Duration,
    /// The phase ended early because every user had used its fresh codes.
    pub exhausted: bool,
    pub error_samples: Vec<String>,
    /// Each successful verification as (µs from the phase start to its end, its latency in
    /// µs), in no particular order: shows whether slow ones come together in time.
    pub timeline: Vec<(u32, u32)>,
    /// Wall-clock time of the phase's start (Unix milliseconds), to line the timeline up
    /// with the server's log.
    pub started_unix_ms: u128,
}

/// One worker's way to the server, kept from phase to phase (no handshakes in the measured
/// phase).
pub enum Conn {
    /// The agents' client (`--client agent`): shared, or one per worker.
    Agent(Client),
    /// The lean HTTP/1.1 connection ([`crate::h1`]), the default (boxed: its TLS state is
    /// large).
    Lean(Box<H1Conn>),
}

impl Conn {
    async fn post<B: Serialize, T: DeserializeOwned>(&mut self, path: &str, body: &B) -> Result<T> {
        match self {
            Conn::Agent(c) => Ok(c.post(path, body).await?),
            Conn::Lean(c) => c.post(path, body).await,
        }
    }
}

struct WorkerResult {
    counts: Counts,
    samples: Samples,
    timeline: Vec<(u32, u32)>,
    errors: Vec<String>,
}

enum Outcome {
    Success,
    Retry,
    Deny,
    StartRefused,
}

/// Runs one worker per connection of `conns` until `duration` has passed; gives the
/// connections back for the next phase.
pub async fn run_phase(
    conns: Vec<Conn>,
    pool: Arc<UserPool>,
    duration: Duration,
) -> Result<(PhaseResult, Vec<Conn>)> {
    anyhow::ensure!(!conns.is_empty(), "no connection to the server");
    let t0 = Instant::now();
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let deadline = t0 + duration;
    // Room for the expected samples without regrowth in the measured loop.
    let per_worker = 4096;
    let mut tasks = Vec::with_capacity(conns.len());
    for conn in conns {
        let pool = pool.clone();
        tasks.push(tokio::spawn(worker(conn, pool, t0, deadline, per_worker)));
    }
    let mut result = PhaseResult {
        started_unix_ms,
        ..PhaseResult::default()
    };
    let mut parts = Vec::with_capacity(tasks.len());
    let mut conns = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (w, conn) = task.await.context("load worker panicked")?;
        result.counts.add(&w.counts);
        for e in w.errors {
            if result.error_samples.len() < ERROR_SAMPLES {
                result.error_samples.push(e);
            }
        }
        parts.push(w.samples);
        result.timeline.extend(w.timeline);
        conns.push(conn);
    }
    result.elapsed = t0.elapsed();
    result.latencies = Latencies::merge(parts);
    result.exhausted = pool.exhausted();
    Ok((result, conns))
}

async fn worker(
    mut conn: Conn,
    pool: Arc<UserPool>,
    phase_start: Instant,
    deadline: Instant,
    capacity: usize,
) -> (WorkerResult, Conn) {
    let mut out = WorkerResult {
        counts: Counts::default(),
        samples: Samples::with_capacity(capacity),
        timeline: Vec::with_capacity(capacity),
        errors: vec![],
    };
    let micros = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    while Instant::now() < deadline {
        let Some(r) = pool.reserve(unix_now()) else {
            break;
        };
        let (Some(name), Some(seed)) = (pool.names.get(r.index), pool.seeds.get(r.index)) else {
            break;
        };
        let code = totp(
            seed,
            r.step * u64::from(PERIOD),
            PERIOD,
            OtpAlgorithm::Sha1,
            6,
        );
        let t0 = Instant::now();
        match verify(&mut conn, name, code).await {
            Ok(Outcome::Success) => {
                let took = t0.elapsed();
                out.samples.record(took);
                out.timeline
                    .push((micros(phase_start.elapsed()), micros(took)));
                out.counts.success += 1;
            }
            Ok(Outcome::Retry) => out.counts.retry += 1,
            Ok(Outcome::Deny) => out.counts.deny += 1,
            Ok(Outcome::StartRefused) => out.counts.start_refused += 1,
            Err(e) => {
                out.counts.errors += 1;
                if out.errors.len() < ERROR_SAMPLES {
                    out.errors.push(format!("{name}: {e}"));
                }
            }
        }
    }
    (out, conn)
}

/// One verification as an agent does it: start the login, answer the challenge.
async fn verify(conn: &mut Conn, user: &str, code: String) -> Result<Outcome> {
    let start = LoginStart {
        user: UserName::parse(user)?,
        client_id: ClientId::parse("login")?,
        rhost: None,
        tty: None,
        enroll: false,
    };
    let tx = match conn.post(routes::LOGIN_START, &start).await? {
        LoginStartResult::Challenge { tx, .. } => tx,
        LoginStartResult::Allow { .. }
        | LoginStartResult::Deny { .. }
        | LoginStartResult::Enroll { .. } => {
            return Ok(Outcome::StartRefused);
        }
    };
    let path = routes::login_otp(&tx);
    Ok(
        match conn.post(&path, &LoginOtp { code: code.into() }).await? {
            LoginStepResult::Success { .. } => Outcome::Success,
            LoginStepResult::Retry { .. } => Outcome::Retry,
            LoginStepResult::Deny { .. } => Outcome::Deny,
            // Only push waits answer Pending; a code never does.
            LoginStepResult::Pending { .. } => Outcome::Deny,
        },
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_user_gets_the_current_step_then_the_next_then_nothing() {
        let pool = UserPool::new("t", 2);
        let now = 1_000 * 30 + 7;
        let steps: Vec<_> = (0..4)
            .map(|_| pool.reserve(now).map(|r| (r.index, r.step)))
            .collect();
        assert_eq!(
            steps,
            vec![
                Some((0, 1000)),
                Some((1, 1000)),
                Some((0, 1001)),
                Some((1, 1001))
            ]
        );
        assert!(pool.reserve(now).is_none());
        assert!(pool.exhausted());
    }

    #[test]
    fn a_new_time_step_does_not_give_a_user_a_step_it_already_used() {
        let pool = UserPool::new("t", 1);
        assert_eq!(pool.reserve(1000 * 30).map(|r| r.step), Some(1000));
        assert_eq!(pool.reserve(1000 * 30).map(|r| r.step), Some(1001));
        // The clock moved into step 1001, which this user already used: it may use 1002.
        assert_eq!(pool.reserve(1001 * 30).map(|r| r.step), Some(1002));
    }
}
