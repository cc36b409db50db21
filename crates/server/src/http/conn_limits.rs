//! How many connections latchkeyd holds, and for whom. Anyone who can reach the port can
//! open connections before authenticating, so what one peer holds must never take the
//! descriptors that other machines' logins, the database and the logs need (issue 19: 1,001
//! idle connections under a 1,024 limit locked every login out with `EMFILE`).
//!
//! - All connections together (TLS handshakes included) are capped at `max_connections`;
//!   one peer address (an IPv6 /64, which one host usually holds whole) at
//!   `max_connections_per_address`. A connection over either cap is closed at once, before
//!   the TLS handshake: answering it would cost a handshake that the peer controls.
//! - At start the soft descriptor limit is raised to the hard one and the caps shrink so
//!   that a reserve stays for the database, the logs and outbound connections.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Descriptors kept beside the connections at most: SQLite's files (a database, its WAL and
/// shared memory per pooled connection), stderr, the listener, the runtime's own, outbound
/// push and TLS-file reads. A quarter of the limit below 1,024.
pub const RESERVED_FDS: u64 = 256;

/// Assumed when the limit cannot be read: the common default, so the caps err small.
const UNKNOWN_NOFILE: u64 = 1024;

/// Below this many connections a server is easy to crowd out; say so at start.
const LOW_CONNECTIONS: u32 = 1024;

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The peer's address already holds its share.
    Address(IpAddr),
    /// All connections are taken.
    Total,
}

/// The caps in force and what peers hold now.
#[derive(Debug)]
pub struct ConnLimits {
    total: u32,
    per_address: u32,
    counts: Mutex<Counts>,
    refusals: LogThrottle,
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    per_address: HashMap<IpAddr, u32>,
}

/// One held connection; gives its slot back when dropped.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnLimits>,
    key: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.limits.counts();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_address.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_address.remove(&self.key);
            }
        }
    }
}

/// What [`ConnLimits::fit`] decided, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub nofile: u64,
    pub reserved: u64,
    pub total: u32,
    pub per_address: u32,
    /// The configured caps did not fit and were scaled down.
    pub shrunk: bool,
}

impl ConnLimits {
    /// Caps from the configuration, shrunk to fit `nofile` descriptors (None: unknown).
    pub fn fit(max_connections: u32, per_address: u32, nofile: Option<u64>) -> (ConnLimits, Fit) {
        let nofile = nofile.unwrap_or(UNKNOWN_NOFILE);
        let reserved = (nofile / 4).min(RESERVED_FDS);
        let budget = u32::try_from(nofile.saturating_sub(reserved))
            .unwrap_or(u32::MAX)
            .max(8);
        let total = max_connections.max(1);
        let per_address = per_address.clamp(1, total);
        let (total, per_address, shrunk) = if total <= budget {
            (total, per_address, false)
        } else {
            // Keep the ratio, so it still takes as many addresses to fill the server.
            let scaled = u64::from(per_address) * u64::from(budget) / u64::from(total);
            let scaled = u32::try_from(scaled).unwrap_or(budget).clamp(1, budget);
            (budget, scaled, true)
        };
        let limits = ConnLimits {
            total,
            per_address,
            counts: Mutex::new(Counts::default()),
            refusals: LogThrottle::new(Duration::from_secs(10)),
        };
        let fit = Fit {
            nofile,
            reserved,
            total,
            per_address,
            shrunk,
        };
        (limits, fit)
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // The critical sections only change counters; a poisoned lock still holds them.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for a connection from `peer`, or says why not.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Permit, Refusal> {
        let key = address_key(peer);
        let mut c = self.counts();
        let held = c.per_address.get(&key).copied().unwrap_or(0);
        if held >= self.per_address {
            return Err(Refusal::Address(key));
        }
        if c.total >= self.total {
            return Err(Refusal::Total);
        }
        c.total += 1;
        *c.per_address.entry(key).or_insert(0) += 1;
        Ok(Permit {
            limits: self.clone(),
            key,
        })
    }

    /// One log line per refusal, at most one every 10 s with a count of the rest: under a
    /// flood the log must not become the next thing to fill up.
    pub fn log_refusal(&self, peer: SocketAddr, why: Refusal) {
        let Some(suppressed) = self.refusals.allow() else {
            return;
        };
        match why {
            Refusal::Address(key) => tracing::warn!(
                %peer,
                share = self.per_address,
                suppressed,
                "connection refused: {key} already holds its share of {} connections (closed at once)",
                self.per_address
            ),
            Refusal::Total => tracing::warn!(
                %peer,
                suppressed,
                "connection refused: all {} connections are in use (closed at once)",
                self.total
            ),
        }
    }
}

impl Fit {
    /// Warns when the caps had to shrink or the limit leaves few connections.
    pub fn log(&self, configured: u32) {
        if self.shrunk {
            tracing::warn!(
                nofile = self.nofile,
                reserved = self.reserved,
                max_connections = self.total,
                max_connections_per_address = self.per_address,
                "the descriptor limit ({}) does not fit max_connections = {configured}: \
                 capped at {} connections ({} per address), {} descriptors kept for the \
                 database, logs and outbound work; raise LimitNOFILE",
                self.nofile,
                self.total,
                self.per_address,
                self.reserved
            );
        } else if self.total < LOW_CONNECTIONS && self.nofile < u64::from(LOW_CONNECTIONS) {
            tracing::warn!(
                nofile = self.nofile,
                "the descriptor limit is low ({}): raise LimitNOFILE",
                self.nofile
            );
        } else {
            tracing::info!(
                nofile = self.nofile,
                max_connections = self.total,
                max_connections_per_address = self.per_address,
                "connection limits"
            );
        }
    }
}

/// The address a share is counted for: IPv4 as is (also when mapped into IPv6), IPv6 by
/// its /64, the smallest prefix a site is given (RFC 6177).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Lets a repeated log line through at most once per window and counts the rest.
#[derive(Debug)]
pub struct LogThrottle {
    window: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogThrottle {
    pub const fn new(window: Duration) -> Self {
        LogThrottle {
            window,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(lines suppressed since the last one)` when a line may be written now.
    pub fn allow(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match s.0 {
            Some(last) if now.duration_since(last) < self.window => {
                s.1 += 1;
                None
            }
            _ => {
                let suppressed = s.1;
                *s = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

/// Raises the soft descriptor limit to the hard one; returns the soft limit in force.
#[cfg(unix)]
#[allow(unsafe_code)]
pub fn raise_nofile() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    #[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux, not everywhere
    Some(u64::try_from(lim.rlim_cur).unwrap_or(u64::MAX))
}

#[cfg(not(unix))]
pub fn raise_nofile() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_holds_its_share_and_others_still_get_in() {
        let (limits, _) = ConnLimits::fit(4, 2, Some(65_536));
        let limits = Arc::new(limits);
        let a1 = limits.admit(ip("127.0.0.2")).unwrap();
        let _a2 = limits.admit(ip("127.0.0.2")).unwrap();
        assert_eq!(
            limits.admit(ip("127.0.0.2")).unwrap_err(),
            Refusal::Address(ip("127.0.0.2"))
        );
        let _b1 = limits.admit(ip("127.0.0.1")).unwrap();
        let _b2 = limits.admit(ip("::ffff:127.0.0.1")).unwrap();
        assert_eq!(limits.admit(ip("10.0.0.1")).unwrap_err(), Refusal::Total);
        drop(a1);
        assert!(
            limits.admit(ip("10.0.0.1")).is_ok(),
            "a dropped permit frees its slot"
        );
    }

    #[test]
    fn ipv6_shares_are_counted_per_64() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(address_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        let (limits, _) = ConnLimits::fit(10, 1, Some(65_536));
        let limits = Arc::new(limits);
        let _p = limits.admit(ip("2001:db8:1:2::5")).unwrap();
        assert!(limits.admit(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(limits.admit(ip("2001:db8:1:3::5")).is_ok());
    }

    #[test]
    fn caps_shrink_to_keep_descriptors_in_reserve() {
        let (_, fit) = ConnLimits::fit(4096, 256, Some(65_536));
        assert_eq!((fit.total, fit.per_address, fit.shrunk), (4096, 256, false));
        let (_, fit) = ConnLimits::fit(4096, 256, Some(1024));
        assert_eq!(fit.reserved, 256);
        assert_eq!((fit.total, fit.per_address, fit.shrunk), (768, 48, true));
        let (_, fit) = ConnLimits::fit(4096, 256, Some(256));
        assert_eq!((fit.reserved, fit.total, fit.per_address), (64, 192, 12));
        let (_, fit) = ConnLimits::fit(4096, 256, None);
        assert_eq!(fit.total, 768, "an unknown limit is taken as 1,024");
        let (_, fit) = ConnLimits::fit(100, 500, Some(65_536));
        assert_eq!(fit.per_address, 100, "a share is never more than the whole");
    }

    #[test]
    fn the_log_throttle_lets_one_line_through_per_window() {
        let t = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        let t = LogThrottle::new(Duration::ZERO);
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), Some(0));
    }
}
