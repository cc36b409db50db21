//! The per-server circuit breaker of a [`ServerList`](crate::ServerList) and the clock it reads.
//!
//! A server that failed (no connection, timeout, TLS, 5xx) is *open*: skipped for a back-off of
//! `base`, doubled on each consecutive failure up to `max`. When the back-off has run out it is
//! *half-open*: one request — the trial — may go to it while concurrent callers keep skipping
//! it, so a server that is still dead costs one login one connect timeout, not every login in
//! flight. Any answer closes the circuit and resets the back-off; a failed trial reopens it with
//! the next, doubled back-off.

use latchkey_proto::agent::ServerStatus;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// First back-off after a server fails.
pub const DEFAULT_BREAKER_BASE: Duration = Duration::from_secs(30);
/// Longest back-off, however often the server failed in a row.
pub const DEFAULT_BREAKER_MAX: Duration = Duration::from_secs(5 * 60);

/// Where the breaker gets the time from. [`SystemClock`] in the agent; [`ManualClock`] in tests,
/// so back-off can be tested without sleeping.
pub trait Clock: Send + Sync {
    /// Monotonic time, for back-off deadlines.
    fn now(&self) -> Instant;
    /// Wall-clock unix seconds, for the "last contact" shown to people.
    fn unix_now(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn unix_now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`]). Clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: Instant,
    start_unix: i64,
    offset: Arc<Mutex<Duration>>,
}

impl ManualClock {
    /// Starts at the current time.
    pub fn new() -> Self {
        ManualClock {
            start: Instant::now(),
            start_unix: SystemClock.unix_now(),
            offset: Arc::new(Mutex::new(Duration::ZERO)),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(PoisonError::into_inner);
        *offset = offset.saturating_add(by);
    }

    fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.offset()
    }

    fn unix_now(&self) -> i64 {
        let secs = i64::try_from(self.offset().as_secs()).unwrap_or(i64::MAX);
        self.start_unix.saturating_add(secs)
    }
}

/// Back-off of the circuit breaker: `base` after the first failure, doubled on each further
/// consecutive failure, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub base: Duration,
    pub max: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            base: DEFAULT_BREAKER_BASE,
            max: DEFAULT_BREAKER_MAX,
        }
    }
}

impl BreakerConfig {
    /// How long a server is skipped after `failures` consecutive failures (1 gives `base`).
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base.saturating_mul(1u32 << doublings).min(self.max)
    }
}

/// State of one server's circuit, as the agent's `status` command shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// In use.
    Closed,
    /// Failed recently: skipped until its back-off ends.
    Open,
    /// Back-off over: the next request tries it once.
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a request may go to a server now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    Go,
    /// Half-open: this request is the one trial; it must be settled or released.
    Trial,
    /// Not now; the reason is shown to people.
    Skip(String),
}

#[derive(Debug, Default)]
pub(crate) struct Breaker {
    /// Consecutive failures; 0 when closed.
    failures: u32,
    /// `Some` while open or half-open.
    open_until: Option<Instant>,
    trial_in_flight: bool,
    last_contact: Option<i64>,
    last_error: Option<String>,
}

impl Breaker {
    pub(crate) fn state(&self, now: Instant) -> CircuitState {
        match self.open_until {
            None => CircuitState::Closed,
            Some(until) if now < until => CircuitState::Open,
            Some(_) => CircuitState::HalfOpen,
        }
    }

    /// True when [`Breaker::admit`] would let a request through now.
    pub(crate) fn available(&self, now: Instant) -> bool {
        match self.state(now) {
            CircuitState::Closed => true,
            CircuitState::Open => false,
            CircuitState::HalfOpen => !self.trial_in_flight,
        }
    }

    pub(crate) fn admit(&mut self, now: Instant) -> Admit {
        match self.state(now) {
            CircuitState::Closed => Admit::Go,
            CircuitState::Open => {
                let mut reason = format!(
                    "not tried, circuit open for {} s more",
                    self.retry_in_secs(now).unwrap_or(0)
                );
                if let Some(e) = &self.last_error {
                    reason.push_str(&format!(" (last error: {e})"));
                }
                Admit::Skip(reason)
            }
            CircuitState::HalfOpen if self.trial_in_flight => {
                Admit::Skip("not tried, a trial request to it is in progress".into())
            }
            CircuitState::HalfOpen => {
                self.trial_in_flight = true;
                Admit::Trial
            }
        }
    }

    /// The server answered (2xx or a definite 4xx): close the circuit. True when it was not
    /// closed before, i.e. the server came back.
    pub(crate) fn answered(&mut self, unix_now: i64) -> bool {
        let reopened = self.open_until.is_some();
        self.failures = 0;
        self.open_until = None;
        self.trial_in_flight = false;
        self.last_contact = Some(unix_now);
        self.last_error = None;
        reopened
    }

    /// The server failed. Returns the new back-off when this opened (or reopened) the circuit.
    pub(crate) fn failed(
        &mut self,
        now: Instant,
        cfg: &BreakerConfig,
        reason: String,
        was_trial: bool,
    ) -> Option<Duration> {
        if was_trial {
            self.trial_in_flight = false;
        }
        self.last_error = Some(reason);
        // Requests that were in flight together when the server died are one failure, not
        // several: only a failure while closed or half-open counts towards the doubling.
        if self.state(now) == CircuitState::Open {
            return None;
        }
        self.failures = self.failures.saturating_add(1);
        let backoff = cfg.backoff(self.failures);
        self.open_until = Some(
            now.checked_add(backoff)
                .unwrap_or(now + Duration::from_secs(86_400)),
        );
        Some(backoff)
    }

    /// A trial ended without a verdict (cancelled, or an answer we could not read): the next
    /// request may try again.
    pub(crate) fn release_trial(&mut self) {
        self.trial_in_flight = false;
    }

    /// Whole seconds (rounded up) until an open circuit becomes half-open.
    fn retry_in_secs(&self, now: Instant) -> Option<u64> {
        let until = self.open_until?;
        let left = until.checked_duration_since(now)?;
        Some(left.as_secs() + u64::from(left.subsec_nanos() > 0))
    }

    pub(crate) fn status(&self, url: &str, now: Instant) -> ServerStatus {
        let state = self.state(now);
        ServerStatus {
            url: url.to_string(),
            circuit: state.as_str().to_string(),
            retry_in_secs: match state {
                CircuitState::Open => self.retry_in_secs(now),
                CircuitState::Closed | CircuitState::HalfOpen => None,
            },
            last_contact: self.last_contact,
            last_error: self.last_error.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn backoff_doubles_from_base_and_caps_at_max() {
        let cfg = BreakerConfig::default();
        let got: Vec<u64> = (1..=8).map(|n| cfg.backoff(n).as_secs()).collect();
        assert_eq!(got, vec![30, 60, 120, 240, 300, 300, 300, 300]);
        assert_eq!(cfg.backoff(u32::MAX), S(300), "no overflow");
    }

    #[test]
    fn circuit_opens_turns_half_open_and_doubles_on_a_failed_trial() {
        let clock = ManualClock::new();
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        assert_eq!(b.admit(clock.now()), Admit::Go);

        assert_eq!(
            b.failed(clock.now(), &cfg, "refused".into(), false),
            Some(S(30))
        );
        assert_eq!(b.state(clock.now()), CircuitState::Open);
        assert!(matches!(b.admit(clock.now()), Admit::Skip(r) if r.contains("30 s more")));
        let st = b.status("https://a", clock.now());
        assert_eq!(st.circuit, "open");
        assert_eq!(st.retry_in_secs, Some(30));
        assert_eq!(st.last_error.as_deref(), Some("refused"));

        clock.advance(Duration::from_millis(29_500));
        assert_eq!(b.status("https://a", clock.now()).retry_in_secs, Some(1));
        clock.advance(Duration::from_millis(500));
        assert_eq!(b.state(clock.now()), CircuitState::HalfOpen);
        assert_eq!(b.admit(clock.now()), Admit::Trial);
        assert!(
            matches!(b.admit(clock.now()), Admit::Skip(r) if r.contains("trial")),
            "one trial at a time"
        );
        assert_eq!(
            b.failed(clock.now(), &cfg, "refused".into(), true),
            Some(S(60))
        );
        clock.advance(S(60));
        assert_eq!(b.admit(clock.now()), Admit::Trial);
        assert_eq!(
            b.failed(clock.now(), &cfg, "refused".into(), true),
            Some(S(120))
        );
    }

    #[test]
    fn failures_of_requests_in_flight_together_count_once() {
        let clock = ManualClock::new();
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        assert_eq!(b.failed(clock.now(), &cfg, "a".into(), false), Some(S(30)));
        assert_eq!(b.failed(clock.now(), &cfg, "b".into(), false), None);
        assert_eq!(b.failed(clock.now(), &cfg, "c".into(), false), None);
        assert_eq!(b.status("x", clock.now()).retry_in_secs, Some(30));
        assert_eq!(b.status("x", clock.now()).last_error.as_deref(), Some("c"));
    }

    #[test]
    fn an_answer_closes_the_circuit_and_resets_the_backoff() {
        let clock = ManualClock::new();
        let cfg = BreakerConfig::default();
        let mut b = Breaker::default();
        b.failed(clock.now(), &cfg, "x".into(), false);
        clock.advance(S(30));
        assert_eq!(b.admit(clock.now()), Admit::Trial);
        assert!(b.answered(clock.unix_now()), "came back");
        let st = b.status("https://a", clock.now());
        assert_eq!(st.circuit, "closed");
        assert_eq!(st.retry_in_secs, None);
        assert_eq!(st.last_error, None);
        assert_eq!(st.last_contact, Some(clock.unix_now()));
        assert!(!b.answered(clock.unix_now()));
        assert_eq!(b.failed(clock.now(), &cfg, "x".into(), false), Some(S(30)));
    }

    #[test]
    fn a_released_trial_lets_the_next_request_try() {
        let clock = ManualClock::new();
        let mut b = Breaker::default();
        b.failed(clock.now(), &BreakerConfig::default(), "x".into(), false);
        clock.advance(S(31));
        assert_eq!(b.admit(clock.now()), Admit::Trial);
        assert!(!b.available(clock.now()));
        b.release_trial();
        assert!(b.available(clock.now()));
        assert_eq!(b.state(clock.now()), CircuitState::HalfOpen);
    }

    #[test]
    fn manual_clock_moves_both_times_together() {
        let c = ManualClock::new();
        let (t0, u0) = (c.now(), c.unix_now());
        c.clone().advance(S(90));
        assert_eq!(c.now() - t0, S(90));
        assert_eq!(c.unix_now() - u0, 90);
    }
}
