//! Prometheus metrics, kept in atomics and rendered in the text exposition format.

use crate::store::WriteStats;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Outcomes counted in `latchkey_logins_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    StartAllow,
    StartChallenge,
    StartEnroll,
    StartDeny,
    OtpSuccess,
    OtpRetry,
    OtpDeny,
    Fido2Success,
    Fido2Retry,
    Fido2Deny,
    SmartcardSuccess,
    SmartcardRetry,
    SmartcardDeny,
}

const OUTCOMES: [(Outcome, &str, &str); 13] = [
    (Outcome::StartAllow, "start", "allow"),
    (Outcome::StartChallenge, "start", "challenge"),
    (Outcome::StartEnroll, "start", "enroll"),
    (Outcome::StartDeny, "start", "deny"),
    (Outcome::OtpSuccess, "otp", "success"),
    (Outcome::OtpRetry, "otp", "retry"),
    (Outcome::OtpDeny, "otp", "deny"),
    (Outcome::Fido2Success, "fido2", "success"),
    (Outcome::Fido2Retry, "fido2", "retry"),
    (Outcome::Fido2Deny, "fido2", "deny"),
    (Outcome::SmartcardSuccess, "smartcard", "success"),
    (Outcome::SmartcardRetry, "smartcard", "retry"),
    (Outcome::SmartcardDeny, "smartcard", "deny"),
];

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{b}\"}} {}",
                self.buckets[i].load(Relaxed)
            );
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            self.sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

#[derive(Default)]
pub struct Metrics {
    logins: [AtomicU64; OUTCOMES.len()],
    start_latency: Histogram,
    otp_latency: Histogram,
    http_client_errors: AtomicU64,
    http_server_errors: AtomicU64,
    rate_limited: AtomicU64,
    /// Uploaded events: well formed, stored new, refused (`new` ≤ `received`; the rest were
    /// re-sent duplicates).
    events_received: AtomicU64,
    events_new: AtomicU64,
    events_rejected: AtomicU64,
}

impl Metrics {
    pub fn login(&self, o: Outcome) {
        if let Some(i) = OUTCOMES.iter().position(|(x, _, _)| *x == o) {
            self.logins[i].fetch_add(1, Relaxed);
        }
    }

    pub fn start_latency(&self, d: Duration) {
        self.start_latency.observe(d);
    }

    pub fn otp_latency(&self, d: Duration) {
        self.otp_latency.observe(d);
    }

    pub fn http_status(&self, status: u16) {
        if (400..500).contains(&status) {
            self.http_client_errors.fetch_add(1, Relaxed);
        } else if status >= 500 {
            self.http_server_errors.fetch_add(1, Relaxed);
        }
    }

    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Relaxed);
    }

    pub fn events(&self, received: u64, new: u64, rejected: u64) {
        self.events_received.fetch_add(received, Relaxed);
        self.events_new.fetch_add(new, Relaxed);
        self.events_rejected.fetch_add(rejected, Relaxed);
    }

    /// `writes`: from [`crate::store::Store::write_stats`].
    pub fn render(&self, users: i64, writes: WriteStats) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP latchkey_logins_total Login decisions by step and result.\n");
        out.push_str("# TYPE latchkey_logins_total counter\n");
        for (i, (_, step, result)) in OUTCOMES.iter().enumerate() {
            let _ = writeln!(
                out,
                "latchkey_logins_total{{step=\"{step}\",result=\"{result}\"}} {}",
                self.logins[i].load(Relaxed)
            );
        }
        out.push_str(
            "# HELP latchkey_login_duration_seconds Time to answer a login API request.\n",
        );
        out.push_str("# TYPE latchkey_login_duration_seconds histogram\n");
        self.start_latency.render(
            &mut out,
            "latchkey_login_duration_seconds",
            "step=\"start\"",
        );
        self.otp_latency
            .render(&mut out, "latchkey_login_duration_seconds", "step=\"otp\"");
        out.push_str("# HELP latchkey_http_errors_total HTTP answers with an error status.\n");
        out.push_str("# TYPE latchkey_http_errors_total counter\n");
        let _ = writeln!(
            out,
            "latchkey_http_errors_total{{class=\"4xx\"}} {}",
            self.http_client_errors.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "latchkey_http_errors_total{{class=\"5xx\"}} {}",
            self.http_server_errors.load(Relaxed)
        );
        out.push_str(
            "# HELP latchkey_rate_limited_total Machine requests refused by the rate limit.\n",
        );
        out.push_str("# TYPE latchkey_rate_limited_total counter\n");
        let _ = writeln!(
            out,
            "latchkey_rate_limited_total {}",
            self.rate_limited.load(Relaxed)
        );
        out.push_str("# HELP latchkey_events_total Events uploaded by agents, by outcome (duplicate: re-sent, already stored).\n");
        out.push_str("# TYPE latchkey_events_total counter\n");
        let received = self.events_received.load(Relaxed);
        let new = self.events_new.load(Relaxed);
        for (result, n) in [
            ("stored", new),
            ("duplicate", received.saturating_sub(new)),
            ("rejected", self.events_rejected.load(Relaxed)),
        ] {
            let _ = writeln!(out, "latchkey_events_total{{result=\"{result}\"}} {n}");
        }
        out.push_str("# HELP latchkey_users Users in the store.\n# TYPE latchkey_users gauge\n");
        let _ = writeln!(out, "latchkey_users {users}");
        out.push_str("# HELP latchkey_db_commits_total Database transactions committed by the writer (each carries one or more writes).\n# TYPE latchkey_db_commits_total counter\n");
        let _ = writeln!(out, "latchkey_db_commits_total {}", writes.commits);
        out.push_str("# HELP latchkey_db_writes_total Writes (statements or atomic units) committed by the writer.\n# TYPE latchkey_db_writes_total counter\n");
        let _ = writeln!(out, "latchkey_db_writes_total {}", writes.writes);
        out.push_str("# HELP latchkey_db_writer_busy_seconds_total Time the writer spent running group commits (a rate near 1 means logins queue behind it).\n# TYPE latchkey_db_writer_busy_seconds_total counter\n");
        let _ = writeln!(
            out,
            "latchkey_db_writer_busy_seconds_total {:.6}",
            writes.busy.as_secs_f64()
        );
        out
    }
}
