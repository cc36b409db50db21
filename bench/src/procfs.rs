//! CPU time and resident memory of a process, read from `/proc` (Linux only).

use anyhow::{Context, Result, bail};

/// Clock ticks per second of the times in `/proc/PID/stat`. This is `sysconf(_SC_CLK_TCK)`,
/// the kernel's USER_HZ, which is 100 on every Linux architecture we run on; hard-coded so
/// the bench needs no libc dependency. It limits CPU figures to 10 ms resolution, which is
/// why they are only read around whole phases of thousands of requests.
pub const CLK_TCK: u64 = 100;

/// Which process to read: another one by pid, or the load generator itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Pid(u32),
    Myself,
}

impl Target {
    fn dir(self) -> String {
        match self {
            Target::Pid(pid) => format!("/proc/{pid}"),
            Target::Myself => "/proc/self".to_string(),
        }
    }
}

/// User + system CPU time of the whole process (all threads), in milliseconds.
pub fn cpu_ms(target: Target) -> Result<u64> {
    let path = format!("{}/stat", target.dir());
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_stat_cpu_ticks(&text)
        .map(|ticks| ticks * 1000 / CLK_TCK)
        .with_context(|| format!("unexpected format of {path}"))
}

/// `utime + stime` from the text of `/proc/PID/stat` (proc(5): fields 14 and 15).
fn parse_stat_cpu_ticks(stat: &str) -> Result<u64> {
    // The command name (field 2) is in parentheses and may contain spaces or ')', so the
    // fields are counted from the last ')'. After it comes field 3 (state).
    let close = stat.rfind(')').context("no ')' after the command name")?;
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        let s = fields.get(n - 3).with_context(|| format!("field {n} missing"))?;
        s.parse().with_context(|| format!("field {n} is not a number: {s:?}"))
    };
    Ok(field(14)? + field(15)?)
}

/// Memory figures of a process from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size (`VmHWM`).
    pub peak_kib: u64,
}

pub fn memory(target: Target) -> Result<Memory> {
    let path = format!("{}/status", target.dir());
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    Ok(Memory {
        rss_kib: status_kib(&text, "VmRSS").with_context(|| format!("in {path}"))?,
        peak_kib: status_kib(&text, "VmHWM").with_context(|| format!("in {path}"))?,
    })
}

fn status_kib(status: &str, key: &str) -> Result<u64> {
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            let mut parts = rest.split_whitespace();
            let value: u64 = parts
                .next()
                .with_context(|| format!("{key} has no value"))?
                .parse()
                .with_context(|| format!("{key} is not a number"))?;
            return match parts.next() {
                Some("kB") => Ok(value),
                other => bail!("{key} has unit {other:?}, expected kB"),
            };
        }
    }
    bail!("no {key} line")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_a_command_name_with_spaces_and_parens() {
        let stat = "4242 (latch key) d) S 1 4242 4242 0 -1 4194560 1234 0 0 0 731 269 0 0 20 0 9 0";
        assert_eq!(parse_stat_cpu_ticks(stat).unwrap(), 1000);
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tlatchkeyd\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nThreads:\t9\n";
        assert_eq!(status_kib(status, "VmRSS").unwrap(), 40960);
        assert_eq!(status_kib(status, "VmHWM").unwrap(), 51200);
        assert!(status_kib(status, "VmSwap").is_err());
    }

    #[test]
    fn own_process_figures_are_readable() {
        assert!(memory(Target::Myself).unwrap().rss_kib > 0);
        cpu_ms(Target::Myself).unwrap();
    }
}
