//! Limits on the local callers of the agent socket. The socket is world-writable by design
//! (a screen locker runs PAM as the user), so any local user can connect: what one of them
//! does must never take the agent's descriptors, its time or the machine's server budget
//! away from another user's login.
//!
//! - Connections: each non-root user holds at most `per_user` at once, all non-root users
//!   together at most `users`, root (the PAM stacks of sshd, login, sudo) at most `root`.
//!   What is over is answered with an error and closed at once.
//! - Logins and account checks started by a non-root user draw from a token bucket of its
//!   own (`begins_per_minute`), so a flood by one user cannot use up the per-machine rate
//!   limit the server applies to everybody's logins.
//! - The rest of the descriptors stay with the agent's own work (server connections, the
//!   state database, journald): at start the agent raises its soft descriptor limit to the
//!   hard one and shrinks the connection caps if they would not leave [`RESERVED_FDS`].

use crate::socket::Caller;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Descriptors kept for the agent's own work whatever the callers hold.
pub const RESERVED_FDS: u64 = 256;

/// `[socket_limits]` in agent.toml.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Open connections one non-root user may hold.
    pub per_user: u32,
    /// Open connections all non-root users together may hold.
    pub users: u32,
    /// Open connections from root (the PAM stacks of sshd, login, sudo…).
    pub root: u32,
    /// Logins and account checks one non-root user may start per minute (also the burst).
    pub begins_per_minute: u32,
    /// How long a connection may stay silent when no login waits for an answer (before its
    /// first request, after an answer), e.g. "10s". A prompt that is out waits 5 minutes.
    #[serde(with = "crate::config::duration")]
    pub idle: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            per_user: 16,
            users: 128,
            root: 512,
            begins_per_minute: 10,
            idle: Duration::from_secs(10),
        }
    }
}

impl LimitsConfig {
    pub fn is_default(&self) -> bool {
        *self == LimitsConfig::default()
    }

    pub fn validate(&self) -> crate::Result<()> {
        let bad = |msg: &str| Err(crate::AgentError::Config(msg.into()));
        if self.per_user == 0 || self.users < self.per_user || self.root == 0 {
            return bad(
                "socket_limits: per_user, users and root must be positive, users at least per_user",
            );
        }
        if self.begins_per_minute == 0 {
            return bad("socket_limits.begins_per_minute must be positive");
        }
        if self.idle.is_zero() || self.idle > Duration::from_secs(300) {
            return bad("socket_limits.idle must be between 1s and 5m");
        }
        Ok(())
    }
}

/// Why a caller was turned away; the text goes back to the caller and into the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many open connections to the agent from {0}")]
    PerUser(String),
    #[error("too many open connections to the agent from local users")]
    Users,
    #[error("too many open connections to the agent")]
    Root,
    #[error("too many logins started by {0}: wait a minute")]
    Begins(String),
}

#[derive(Debug, Default)]
struct Counts {
    per_user: HashMap<String, u32>,
    users: u32,
    root: u32,
    buckets: HashMap<String, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The caps in force (after [`Limits::fit_descriptors`]) and what callers hold now.
#[derive(Debug)]
pub struct Limits {
    per_user: u32,
    users: u32,
    root: u32,
    begins_per_minute: u32,
    pub(crate) idle: Duration,
    counts: Mutex<Counts>,
}

/// One held connection; gives its slot back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    limits: Arc<Limits>,
    caller: Caller,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.limits.counts();
        match &self.caller {
            Caller::Root => c.root = c.root.saturating_sub(1),
            Caller::User(name) => {
                c.users = c.users.saturating_sub(1);
                if let Some(n) = c.per_user.get_mut(name) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        c.per_user.remove(name);
                    }
                }
            }
        }
    }
}

impl Limits {
    pub fn new(cfg: &LimitsConfig) -> crate::Result<Limits> {
        cfg.validate()?;
        Ok(Limits {
            per_user: cfg.per_user,
            users: cfg.users,
            root: cfg.root,
            begins_per_minute: cfg.begins_per_minute,
            idle: cfg.idle,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Shrinks the connection caps so that, with `nofile` descriptors, [`RESERVED_FDS`]
    /// stay free for the agent's own work. Returns true when it had to shrink them.
    pub fn fit_descriptors(&mut self, nofile: u64) -> bool {
        let budget = nofile.saturating_sub(RESERVED_FDS).max(8);
        let wanted = u64::from(self.root) + u64::from(self.users);
        if wanted <= budget {
            return false;
        }
        // Scale both, keeping at least a few for each.
        let scale = |v: u32| -> u32 {
            let v = u64::from(v) * budget / wanted;
            u32::try_from(v).unwrap_or(u32::MAX).max(2)
        };
        self.root = scale(self.root);
        self.users = scale(self.users);
        self.per_user = self.per_user.min(self.users);
        true
    }

    /// (per_user, users, root) caps in force.
    pub fn caps(&self) -> (u32, u32, u32) {
        (self.per_user, self.users, self.root)
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // The critical sections only change counters; a poisoned lock still holds them.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a connection slot for `caller`, or says why not.
    pub(crate) fn admit(self: &Arc<Self>, caller: &Caller) -> Result<Permit, Refusal> {
        let mut c = self.counts();
        match caller {
            Caller::Root => {
                if c.root >= self.root {
                    return Err(Refusal::Root);
                }
                c.root += 1;
            }
            Caller::User(name) => {
                let held = c.per_user.get(name).copied().unwrap_or(0);
                if held >= self.per_user {
                    return Err(Refusal::PerUser(name.clone()));
                }
                if c.users >= self.users {
                    return Err(Refusal::Users);
                }
                c.users += 1;
                *c.per_user.entry(name.clone()).or_default() += 1;
            }
        }
        Ok(Permit {
            limits: self.clone(),
            caller: caller.clone(),
        })
    }

    /// Takes one login (or account check) from a non-root caller's budget; root is not
    /// limited here (the server's per-machine limit applies to every login).
    pub(crate) fn take_begin(&self, caller: &Caller) -> Result<(), Refusal> {
        self.take_begin_at(caller, Instant::now())
    }

    fn take_begin_at(&self, caller: &Caller, now: Instant) -> Result<(), Refusal> {
        let Caller::User(name) = caller else {
            return Ok(());
        };
        let cap = f64::from(self.begins_per_minute);
        let mut c = self.counts();
        // Buckets that are full again carry no state: drop them so the map stays small.
        if c.buckets.len() > 1024 {
            c.buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * cap / 60.0 < cap
            });
        }
        let b = c.buckets.entry(name.clone()).or_insert(Bucket {
            tokens: cap,
            at: now,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * cap / 60.0;
        b.tokens = (b.tokens + refill).min(cap);
        b.at = now;
        if b.tokens < 1.0 {
            return Err(Refusal::Begins(name.clone()));
        }
        b.tokens -= 1.0;
        Ok(())
    }
}

/// Raises this process's soft descriptor limit to its hard limit and returns the soft limit
/// in force (None where it cannot be read). A unit without `LimitNOFILE` gives 1,024 soft.
#[cfg(unix)]
pub fn raise_nofile() -> Option<u64> {
    crate::sys::raise_nofile()
}

#[cfg(not(unix))]
pub fn raise_nofile() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: &str) -> Caller {
        Caller::User(n.into())
    }

    fn limits(per_user: u32, users: u32, root: u32) -> Arc<Limits> {
        Arc::new(
            Limits::new(&LimitsConfig {
                per_user,
                users,
                root,
                ..LimitsConfig::default()
            })
            .unwrap(),
        )
    }

    #[test]
    fn a_user_over_its_share_is_refused_and_others_still_get_in() {
        let l = limits(2, 3, 1);
        let a1 = l.admit(&user("mallory")).unwrap();
        let _a2 = l.admit(&user("mallory")).unwrap();
        assert_eq!(
            l.admit(&user("mallory")).unwrap_err(),
            Refusal::PerUser("mallory".into())
        );
        let _b = l.admit(&user("bob")).unwrap();
        assert_eq!(l.admit(&user("carol")).unwrap_err(), Refusal::Users);
        // Root has slots of its own.
        let r = l.admit(&Caller::Root).unwrap();
        assert_eq!(l.admit(&Caller::Root).unwrap_err(), Refusal::Root);
        drop(r);
        let _r = l.admit(&Caller::Root).unwrap();
        // A closed connection gives its slot back.
        drop(a1);
        let _a3 = l.admit(&user("mallory")).unwrap();
    }

    #[test]
    fn caps_shrink_to_leave_descriptors_for_the_agent() {
        let mut l = Limits::new(&LimitsConfig::default()).unwrap();
        assert!(!l.fit_descriptors(65_536));
        assert_eq!(l.caps(), (16, 128, 512));
        // 1,024 leaves enough beside the reserve; 512 does not.
        assert!(!l.fit_descriptors(1024));
        assert!(l.fit_descriptors(512));
        let (per_user, users, root) = l.caps();
        assert!(
            u64::from(users + root) <= 512 - RESERVED_FDS,
            "{users} {root}"
        );
        assert!(per_user <= users && per_user > 0);
    }

    #[test]
    fn begins_have_a_budget_per_user_and_refill() {
        let l = limits(2, 3, 1);
        let t0 = Instant::now();
        for _ in 0..10 {
            l.take_begin_at(&user("mallory"), t0).unwrap();
        }
        assert_eq!(
            l.take_begin_at(&user("mallory"), t0).unwrap_err(),
            Refusal::Begins("mallory".into())
        );
        // Others and root are not affected.
        l.take_begin_at(&user("bob"), t0).unwrap();
        for _ in 0..100 {
            l.take_begin_at(&Caller::Root, t0).unwrap();
        }
        // Six seconds give one login back (10 a minute).
        l.take_begin_at(&user("mallory"), t0 + Duration::from_secs(6))
            .unwrap();
        assert!(
            l.take_begin_at(&user("mallory"), t0 + Duration::from_secs(6))
                .is_err()
        );
    }
}
