//! What tests that play a local user, or watch an agent's events, share: the root check
//! for starting processes as `nobody`, opening temporary directories to it, a lock command
//! that records its arguments, the admin events API, and waiting for a condition.

use crate::TestServer;
use latchkey_proto::events::{EventEntry, EventPage};
use latchkey_proto::routes;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The uid and gid of `nobody`: the unprivileged local user of these tests.
pub const NOBODY: u32 = 65534;

/// Fast retries and a short circuit-breaker back-off for agent.toml, so outages in tests
/// last seconds.
pub const FAST: &str = "breaker_base = \"100ms\"\nbreaker_max = \"400ms\"\n\
[events]\nretry_min = \"50ms\"\nretry_max = \"300ms\"\n";

/// True when this process runs as root (only root can start a process as nobody); says
/// that the test is skipped otherwise.
pub fn running_as_root() -> bool {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !root {
        eprintln!("skipped: this test must run as root to start a process as nobody");
    }
    root
}

/// Lets other users reach `path` through the temporary directories above it (0755).
pub fn open_dirs_to_others(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = std::env::temp_dir();
    let mut p = path.parent().map(Path::to_path_buf).unwrap_or_default();
    while p.starts_with(&tmp) && p != tmp {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        p = p.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    Ok(())
}

/// A lock command that records its arguments, one line per run: (script, its log).
pub fn lock_recorder(dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("lock");
    let log = dir.join("locks.log");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\n", log.display()),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok((script, log))
}

/// The argument lines a [`lock_recorder`] wrote so far.
pub fn recorded_locks(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

impl TestServer {
    /// Up to 10,000 events from the admin events API; `query` is more of its parameters.
    pub async fn events(&self, query: &str) -> anyhow::Result<Vec<EventEntry>> {
        let page: EventPage = self
            .admin()?
            .get(&format!("{}?limit=10000&{query}", routes::ADMIN_EVENTS))
            .await?;
        Ok(page.events)
    }

    /// Enables or disables a user, as an admin would.
    pub async fn set_user_enabled(&self, user: &str, enabled: bool) -> anyhow::Result<()> {
        let _: latchkey_proto::admin::User = self
            .admin()?
            .patch(
                &routes::admin_user(user),
                &latchkey_proto::admin::UserUpdate {
                    display_name: None,
                    groups: None,
                    enabled: Some(enabled),
                },
            )
            .await?;
        Ok(())
    }
}

/// Polls `check` until it holds; panics after `secs` naming `what`. For state another
/// process or task changes with no notification a test can wait on (an upload, a lock).
#[allow(clippy::panic)]
pub async fn wait_until<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
