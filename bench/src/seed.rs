//! Bench users with deterministic TOTP seeds (so the load generator can compute their codes
//! without keeping anything from the server) and one joined machine.

use anyhow::{Context, Result, anyhow};
use latchkey_client::{Client, StatusCode};
use latchkey_proto::OtpAlgorithm;
use latchkey_proto::TokenKind;
use latchkey_proto::admin::{
    JoinTokenCreate, JoinTokenCreated, OtpTokenCreate, TokenEnrolled, User, UserCreate,
};
use latchkey_proto::machine::{JoinRequest, JoinResponse};
use latchkey_proto::routes;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::procfs::{self, Target};

/// Users after which the server's memory is sampled (the RSS target is stated for 10,000).
pub const RSS_PROBE_USERS: usize = 10_000;

/// SHA-1 TOTP seed length (RFC 6238 §B: the hash's output size).
pub const SEED_LEN: usize = 20;

pub fn user_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i}")
}

/// The seed of a bench user: SHA-256 of its name, truncated to 20 bytes.
pub fn user_seed(name: &str) -> [u8; SEED_LEN] {
    let digest = Sha256::digest(name.as_bytes());
    let mut seed = [0u8; SEED_LEN];
    seed.copy_from_slice(&digest[..SEED_LEN]);
    seed
}

#[derive(Debug, Clone)]
pub struct SeedPlan {
    pub prefix: String,
    pub users: usize,
    /// Admin requests in flight.
    pub concurrency: usize,
    /// Server process to sample memory from, when known.
    pub server: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct SeedReport {
    pub created: usize,
    /// Users that already existed (a previous run against the same server); their token is
    /// assumed to be the deterministic one and is not added again.
    pub existing: usize,
    pub elapsed: Duration,
    /// Server memory right after the `RSS_PROBE_USERS`-th user was seeded (or after all
    /// users when there are fewer), with the number of users at that point.
    pub rss_probe: Option<(usize, procfs::Memory)>,
}

/// Creates users `0..users` with one imported TOTP token each.
pub async fn seed_users(admin: &Client, plan: &SeedPlan) -> Result<SeedReport> {
    let t0 = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let probe_at = RSS_PROBE_USERS.min(plan.users);
    let mut tasks = Vec::with_capacity(plan.concurrency);
    for _ in 0..plan.concurrency.max(1) {
        let (admin, next, done, plan) = (admin.clone(), next.clone(), done.clone(), plan.clone());
        tasks.push(tokio::spawn(async move {
            let mut report = SeedReport::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= plan.users {
                    return Ok::<_, anyhow::Error>(report);
                }
                if seed_one(&admin, &user_name(&plan.prefix, i)).await? {
                    report.created += 1;
                } else {
                    report.existing += 1;
                }
                let seeded = done.fetch_add(1, Ordering::Relaxed) + 1;
                if seeded == probe_at
                    && let Some(pid) = plan.server
                {
                    report.rss_probe = Some((seeded, procfs::memory(Target::Pid(pid))?));
                }
                if seeded % 10_000 == 0 {
                    eprintln!("  seeded {seeded}/{} users", plan.users);
                }
            }
        }));
    }
    let mut total = SeedReport::default();
    for task in tasks {
        let part = task.await.context("seeding task panicked")??;
        total.created += part.created;
        total.existing += part.existing;
        total.rss_probe = total.rss_probe.or(part.rss_probe);
    }
    total.elapsed = t0.elapsed();
    Ok(total)
}

/// Returns false when the user already existed.
async fn seed_one(admin: &Client, name: &str) -> Result<bool> {
    let create = UserCreate {
        name: name.to_string(),
        display_name: None,
        groups: vec![],
    };
    match admin.post::<_, User>(routes::ADMIN_USERS, &create).await {
        Ok(_) => {}
        Err(e) if e.status() == Some(StatusCode::CONFLICT) => return Ok(false),
        Err(e) => return Err(anyhow!(e).context(format!("creating user {name}"))),
    }
    let token = OtpTokenCreate {
        kind: TokenKind::Totp,
        algorithm: Some(OtpAlgorithm::Sha1),
        digits: Some(6),
        period: Some(30),
        label: Some("bench".into()),
        secret: Some(latchkey_crypto::base32_encode(&user_seed(name))),
    };
    let path = routes::admin_user_tokens(name);
    admin
        .post::<_, TokenEnrolled>(&path, &token)
        .await
        .with_context(|| format!("importing the TOTP seed of {name}"))?;
    Ok(true)
}

/// Joins one machine with a fresh join token; returns its API key.
pub async fn join_machine(admin: &Client, hostname: &str) -> Result<String> {
    let created: JoinTokenCreated = admin
        .post(
            routes::ADMIN_JOIN_TOKENS,
            &JoinTokenCreate {
                expires_in: 600,
                note: Some("otp-load".into()),
            },
        )
        .await
        .context("creating a join token")?;
    let join = JoinRequest {
        join_token: created.join_token,
        hostname: hostname.to_string(),
        client_cert_sha256: None,
    };
    // The join call takes no credential; the admin client's bearer is ignored there.
    let joined: JoinResponse = admin
        .post(routes::MACHINE_JOIN, &join)
        .await
        .context("joining the bench machine")?;
    Ok(joined.api_key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_deterministic_and_distinct_per_user() {
        let a = user_seed(&user_name("bench-user", 1));
        assert_eq!(a, user_seed("bench-user-1"));
        assert_ne!(a, user_seed("bench-user-2"));
        assert_eq!(latchkey_crypto::base32_encode(&a).len(), 32);
    }
}
