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
        let s = fields
            .get(n - 3)
            .with_context(|| format!("field {n} missing"))?;
        s.parse()
            .with_context(|| format!("field {n} is not a number: {s:?}"))
    };
    Ok(field(14)? + field(15)?)
}

/// CPU time of the whole machine from the first line of `/proc/stat`, in milliseconds
/// summed over all CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MachineCpu {
    /// user + nice + system: time charged to processes (ours and everybody else's).
    pub process_ms: u64,
    /// irq + softirq: not charged to any process; on loopback much of it is our own traffic.
    pub irq_ms: u64,
    /// Time the hypervisor gave our virtual CPUs to someone else.
    pub steal_ms: u64,
}

impl MachineCpu {
    pub fn since(self, before: MachineCpu) -> MachineCpu {
        MachineCpu {
            process_ms: self.process_ms.saturating_sub(before.process_ms),
            irq_ms: self.irq_ms.saturating_sub(before.irq_ms),
            steal_ms: self.steal_ms.saturating_sub(before.steal_ms),
        }
    }
}

pub fn machine_cpu() -> Result<MachineCpu> {
    let text = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    parse_machine_cpu(&text).context("unexpected format of /proc/stat")
}

fn parse_machine_cpu(stat: &str) -> Result<MachineCpu> {
    let line = stat.lines().next().context("empty")?;
    let mut parts = line.split_whitespace();
    if parts.next() != Some("cpu") {
        bail!("first line is not the cpu total");
    }
    let ticks: Vec<u64> = parts
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()?;
    // proc(5): user nice system idle iowait irq softirq steal guest guest_nice; guest time
    // is already counted in user.
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0) * 1000 / CLK_TCK;
    Ok(MachineCpu {
        process_ms: at(0) + at(1) + at(2),
        irq_ms: at(5) + at(6),
        steal_ms: at(7),
    })
}

/// Number of CPUs listed in `/proc/stat` (`cpuN` lines).
pub fn cpu_count() -> Result<usize> {
    let text = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count())
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
    fn machine_time_is_split_into_processes_irq_and_steal() {
        let stat = "cpu  100 20 30 1000 50 5 5 10 7 0\ncpu0 50 10 15 500 25 2 3 5 0 0\n";
        let m = parse_machine_cpu(stat).unwrap();
        assert_eq!(
            m,
            MachineCpu {
                process_ms: 1500,
                irq_ms: 100,
                steal_ms: 100
            }
        );
    }

    #[test]
    fn own_process_figures_are_readable() {
        assert!(memory(Target::Myself).unwrap().rss_kib > 0);
        cpu_ms(Target::Myself).unwrap();
        assert!(cpu_count().unwrap() >= 1);
        machine_cpu().unwrap();
    }
}
