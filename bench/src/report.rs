//! The figures of one run, the targets they are held against, and their text and JSON forms.

use serde_json::{Value, json};
use std::fmt::Write as _;
use std::time::Duration;

use crate::latency::Latencies;
use crate::load::Counts;
use crate::procfs::{MachineCpu, Memory};
use crate::seed::SeedReport;

/// Targets (docs/performance.md): throughput at this many concurrent clients…
pub const TARGET_CLIENTS: usize = 64;
/// …of at least this many valid verifications per second,
pub const TARGET_RATE: f64 = 5000.0;
/// with a 99th percentile below this,
pub const TARGET_P99_MS: f64 = 20.0;
/// costing the server at most this much CPU per verification,
pub const TARGET_SERVER_CPU_MS: f64 = 0.3;
/// and the server staying below this resident size with `seed::RSS_PROBE_USERS` users.
pub const TARGET_RSS_MIB: f64 = 64.0;

/// Other processes using more than this many cores make a run noisy (reported, not fatal).
pub const NOISY_CORES: f64 = 0.1;

#[derive(Debug, Clone)]
pub struct RunSettings {
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub users: usize,
    /// `shared` (one client, one pool) or `per-worker`.
    pub client_mode: &'static str,
    /// `spawned` or the URL of the server targeted.
    pub server: String,
    pub bench_threads: usize,
    /// CPUs of the machine the bench ran on.
    pub cpus: usize,
}

#[derive(Debug)]
pub struct Report {
    pub settings: RunSettings,
    pub seed: SeedReport,
    pub warmup: Counts,
    pub counts: Counts,
    pub elapsed: Duration,
    pub exhausted: bool,
    pub latencies: Latencies,
    /// Server CPU during the measured phase (None without a server pid).
    pub server_cpu_ms: Option<u64>,
    pub bench_cpu_ms: u64,
    /// CPU time of the whole machine during the measured phase.
    pub machine_cpu: MachineCpu,
    pub server_memory_end: Option<Memory>,
    pub error_samples: Vec<String>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "NOT MET",
        None => "n/a",
    }
}

impl Report {
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.counts.success as f64 / secs
        } else {
            0.0
        }
    }

    fn per_verification(&self, ms: u64) -> Option<f64> {
        (self.counts.success > 0).then(|| ms as f64 / self.counts.success as f64)
    }

    pub fn server_cpu_per_verification_ms(&self) -> Option<f64> {
        self.server_cpu_ms.and_then(|ms| self.per_verification(ms))
    }

    pub fn bench_cpu_per_verification_ms(&self) -> Option<f64> {
        self.per_verification(self.bench_cpu_ms)
    }

    /// CPU used by processes other than the server and the bench during the measured phase,
    /// in cores: the noise from whatever else ran on the machine. Only known when the
    /// server's CPU is.
    pub fn other_cpu_cores(&self) -> Option<f64> {
        let server = self.server_cpu_ms?;
        let other = self
            .machine_cpu
            .process_ms
            .saturating_sub(server + self.bench_cpu_ms);
        self.cores(other)
    }

    /// Milliseconds of CPU during the measured phase as a number of busy cores.
    fn cores(&self, ms: u64) -> Option<f64> {
        let wall_ms = self.elapsed.as_secs_f64() * 1000.0;
        (wall_ms > 0.0).then(|| ms as f64 / wall_ms)
    }

    /// The throughput target is stated for 64 clients; at other counts it is not judged.
    fn rate_met(&self) -> Option<bool> {
        (self.settings.concurrency == TARGET_CLIENTS).then(|| self.rate() >= TARGET_RATE)
    }

    fn p99_met(&self) -> Option<bool> {
        self.latencies
            .percentile_ms(99.0)
            .map(|p| p < TARGET_P99_MS)
    }

    fn cpu_met(&self) -> Option<bool> {
        self.server_cpu_per_verification_ms()
            .map(|c| c <= TARGET_SERVER_CPU_MS)
    }

    /// Judged only when the probe saw the full 10,000 users.
    fn rss_met(&self) -> Option<bool> {
        self.seed
            .rss_probe
            .filter(|(users, _)| *users >= crate::seed::RSS_PROBE_USERS)
            .map(|(_, m)| mib(m.rss_kib) < TARGET_RSS_MIB)
    }

    /// True when every answer was a success (the run is valid).
    pub fn healthy(&self) -> bool {
        self.counts.failures() == 0 && self.warmup.failures() == 0 && self.counts.success > 0
    }

    pub fn to_text(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "otp-load: {} clients ({} client), {:.1} s measured after {:.1} s warm-up, {} users, server {}, {} CPUs",
            s.concurrency,
            s.client_mode,
            self.elapsed.as_secs_f64(),
            s.warmup.as_secs_f64(),
            s.users,
            s.server,
            s.cpus
        );
        let secs = self.seed.elapsed.as_secs_f64();
        let _ = writeln!(
            out,
            "  seeding: {} users created, {} already there, in {:.1} s ({:.0} users/s)",
            self.seed.created,
            self.seed.existing,
            secs,
            if secs > 0.0 {
                (self.seed.created + self.seed.existing) as f64 / secs
            } else {
                0.0
            }
        );
        for (label, c) in [("warm-up", &self.warmup), ("measured", &self.counts)] {
            let _ = writeln!(
                out,
                "  {label}: {} success, {} retry, {} deny, {} refused at start, {} errors",
                c.success, c.retry, c.deny, c.start_refused, c.errors
            );
        }
        if self.exhausted {
            let _ = writeln!(
                out,
                "  WARNING: the users ran out of fresh codes and the run ended early; pass a larger --users"
            );
        }
        for e in &self.error_samples {
            let _ = writeln!(out, "  error: {e}");
        }
        let row = |out: &mut String, name: &str, value: String, target: &str, met: Option<bool>| {
            let verdict = if target.is_empty() { "" } else { verdict(met) };
            let _ = writeln!(out, "  {name:<30} {value:>12}   {target:<24} {verdict}");
        };
        let ms =
            |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$} ms"));
        let l = &self.latencies;
        let _ = writeln!(out, "  {:<30} {:>12}   {:<24}", "figure", "value", "target");
        row(
            &mut out,
            "verifications/s",
            format!("{:.0}", self.rate()),
            &format!(">= {TARGET_RATE:.0} at {TARGET_CLIENTS} clients"),
            self.rate_met(),
        );
        row(
            &mut out,
            "latency p50",
            ms(l.percentile_ms(50.0), 2),
            "",
            None,
        );
        row(
            &mut out,
            "latency p90",
            ms(l.percentile_ms(90.0), 2),
            "",
            None,
        );
        row(
            &mut out,
            "latency p99",
            ms(l.percentile_ms(99.0), 2),
            &format!("< {TARGET_P99_MS} ms"),
            self.p99_met(),
        );
        row(&mut out, "latency max", ms(l.max_ms(), 2), "", None);
        row(
            &mut out,
            "server CPU / verification",
            ms(self.server_cpu_per_verification_ms(), 3),
            &format!("<= {TARGET_SERVER_CPU_MS} ms"),
            self.cpu_met(),
        );
        let probe_name = match self.seed.rss_probe {
            Some((users, _)) => format!("server RSS at {users} users"),
            None => "server RSS at 10000 users".to_string(),
        };
        row(
            &mut out,
            &probe_name,
            self.seed
                .rss_probe
                .map_or("-".into(), |(_, m)| format!("{:.1} MiB", mib(m.rss_kib))),
            &format!("< {TARGET_RSS_MIB} MiB"),
            self.rss_met(),
        );
        let end = self.server_memory_end;
        row(
            &mut out,
            "server RSS at end",
            end.map_or("-".into(), |m| format!("{:.1} MiB", mib(m.rss_kib))),
            "",
            None,
        );
        row(
            &mut out,
            "server peak RSS",
            end.map_or("-".into(), |m| format!("{:.1} MiB", mib(m.peak_kib))),
            "",
            None,
        );
        row(
            &mut out,
            "bench CPU / verification",
            ms(self.bench_cpu_per_verification_ms(), 3),
            "",
            None,
        );
        let cores = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} cores"));
        let irq = self.cores(self.machine_cpu.irq_ms);
        row(&mut out, "interrupts (irq+softirq)", cores(irq), "", None);
        let steal = self.cores(self.machine_cpu.steal_ms);
        row(&mut out, "steal (hypervisor)", cores(steal), "", None);
        if let Some(other) = self.other_cpu_cores() {
            row(
                &mut out,
                "other processes' CPU",
                cores(Some(other)),
                "",
                None,
            );
            if other > NOISY_CORES {
                let _ = writeln!(
                    out,
                    "  WARNING: other processes used {other:.2} cores during the measurement; the figures are noisy"
                );
            }
        }
        if !self.healthy() {
            let _ = writeln!(
                out,
                "  WARNING: not every verification succeeded; the figures are not valid"
            );
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let s = &self.settings;
        let l = &self.latencies;
        let figure = |value: Option<f64>, target: Value, met: Option<bool>| json!({"value": value, "target": target, "met": met});
        json!({
            "settings": {
                "concurrency": s.concurrency,
                "duration_s": s.duration.as_secs_f64(),
                "warmup_s": s.warmup.as_secs_f64(),
                "users": s.users,
                "client_mode": s.client_mode,
                "server": s.server,
                "bench_threads": s.bench_threads,
                "cpus": s.cpus,
            },
            "seeding": {
                "created": self.seed.created,
                "existing": self.seed.existing,
                "seconds": self.seed.elapsed.as_secs_f64(),
            },
            "warmup": counts_json(&self.warmup),
            "measured": counts_json(&self.counts),
            "measured_seconds": self.elapsed.as_secs_f64(),
            "users_exhausted": self.exhausted,
            "healthy": self.healthy(),
            "errors": self.error_samples,
            "verifications_per_s": figure(Some(self.rate()), json!({"min": TARGET_RATE, "clients": TARGET_CLIENTS}), self.rate_met()),
            "latency_ms": {
                "p50": l.percentile_ms(50.0),
                "p90": l.percentile_ms(90.0),
                "p99": figure(l.percentile_ms(99.0), json!({"max_exclusive": TARGET_P99_MS}), self.p99_met()),
                "max": l.max_ms(),
            },
            "server_cpu_ms_per_verification": figure(self.server_cpu_per_verification_ms(), json!({"max": TARGET_SERVER_CPU_MS}), self.cpu_met()),
            "server_rss_mib_at_probe": figure(
                self.seed.rss_probe.map(|(_, m)| mib(m.rss_kib)),
                json!({"max_exclusive": TARGET_RSS_MIB, "users": crate::seed::RSS_PROBE_USERS}),
                self.rss_met()
            ),
            "server_rss_probe_users": self.seed.rss_probe.map(|(u, _)| u),
            "server_rss_mib_end": self.server_memory_end.map(|m| mib(m.rss_kib)),
            "server_peak_rss_mib": self.server_memory_end.map(|m| mib(m.peak_kib)),
            "bench_cpu_ms_per_verification": self.bench_cpu_per_verification_ms(),
            "other_processes_cpu_cores": self.other_cpu_cores(),
            "irq_cpu_cores": self.cores(self.machine_cpu.irq_ms),
            "steal_cpu_cores": self.cores(self.machine_cpu.steal_ms),
        })
    }
}

fn counts_json(c: &Counts) -> Value {
    json!({
        "success": c.success,
        "retry": c.retry,
        "deny": c.deny,
        "start_refused": c.start_refused,
        "errors": c.errors,
    })
}
