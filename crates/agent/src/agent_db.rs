//! The agent's state database (`state_dir/agent.db`, SQLite): offline bundles, the clock
//! guard, the event spool. Root-only (directory 0700, file 0600) and durable: WAL with
//! `synchronous=FULL`, so a row is on disk when a call returns.
//!
//! Access is through one connection behind a mutex. Every call is short (a few rows), so the
//! async callers run it inline; none holds the lock across an `.await`.

use rusqlite::{Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};

pub const STATE_FILE: &str = "agent.db";

/// Each entry is applied once, in order; the version is its index + 1, recorded in
/// `PRAGMA user_version`. Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: the latest wall-clock time the agent has seen (clock-rollback guard).
    "CREATE TABLE clock (id INTEGER PRIMARY KEY CHECK (id = 1), latest_unix INTEGER NOT NULL);",
    // 2: offline login (crates/agent/src/offline): one signed bundle per user, kept exactly as
    // received, with the agent's own counters; and the offline outcomes for the event uploader.
    "CREATE TABLE offline_bundles (
        user_name TEXT PRIMARY KEY,
        payload TEXT NOT NULL,
        signature TEXT NOT NULL,
        not_after INTEGER NOT NULL,
        logins_used INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0,
        stored_at INTEGER NOT NULL
     );
     CREATE TABLE offline_events (
        uuid TEXT PRIMARY KEY,
        time INTEGER NOT NULL,
        user_name TEXT NOT NULL,
        client_id TEXT NOT NULL,
        method TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT NOT NULL
     );",
    // 3: the event spool, the sessions it watches, the journal cursor, the session policy
    // learnt from the server (events/).
    "CREATE TABLE event_spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, \
        low INTEGER NOT NULL, body TEXT NOT NULL);
     CREATE INDEX event_spool_low ON event_spool(low, seq);
     CREATE TABLE local_sessions (key TEXT PRIMARY KEY, user TEXT NOT NULL, service TEXT NOT NULL, \
        client_id TEXT NOT NULL, logind_id TEXT, opened_at INTEGER NOT NULL, locks TEXT NOT NULL);
     CREATE TABLE journal_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), cursor TEXT NOT NULL);
     CREATE TABLE session_policy (client_id TEXT PRIMARY KEY, unreachable_after INTEGER NOT NULL);",
    // 4: offline FIDO2 (crates/agent/src/offline/hw.rs): the highest signature counter seen
    // offline per credential. The bundle is signed and immutable; the agent's counter starts
    // from the bundle's and never goes lower.
    "CREATE TABLE offline_fido2_counters (
        user_name TEXT NOT NULL,
        credential_id TEXT NOT NULL,
        sign_count INTEGER NOT NULL,
        PRIMARY KEY (user_name, credential_id)
     );",
    // 5: spool tiers and quotas (events/spool.rs): what a full spool drops first, and whose
    // events they are (an unprivileged caller's uid, an authenticated user). Sessions keep
    // the uid of an unprivileged reporter, so their logind id is checked again at lock time.
    "ALTER TABLE event_spool ADD COLUMN tier INTEGER NOT NULL DEFAULT 2;
     ALTER TABLE event_spool ADD COLUMN owner TEXT;
     UPDATE event_spool SET tier = 0 WHERE low = 1;
     UPDATE event_spool SET tier = 3, owner = json_extract(body, '$.user')
        WHERE json_extract(body, '$.kind') IN ('auth_success', 'auth_failure', 'unlock');
     UPDATE event_spool SET tier = 3 WHERE json_extract(body, '$.kind') = 'spool_dropped';
     DROP INDEX event_spool_low;
     CREATE INDEX event_spool_tier ON event_spool(tier, owner, seq);
     ALTER TABLE local_sessions ADD COLUMN reported_by_uid INTEGER;",
];

#[derive(Debug, thiserror::Error)]
pub enum AgentDbError {
    #[error("state database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("event spool writer thread: {0}")]
    Thread(std::io::Error),
    /// An unprivileged caller's reports would take its uid past `[events] caller_quota`.
    #[error(
        "uid {uid} already has {quota} reports waiting for the servers (events.caller_quota); \
         more are refused until the servers take them"
    )]
    OverQuota { uid: u32, quota: i64 },
}

pub struct AgentDb {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The clock guard's value as last read or written (0: not known yet), so that the
    /// server-time check on every online answer costs no query when nothing is to change.
    guard: AtomicI64,
}

impl AgentDb {
    /// Opens (creating when missing) `dir/agent.db`, tightening permissions and migrating.
    pub fn open(dir: &Path) -> Result<AgentDb, AgentDbError> {
        create_private_dir(dir)?;
        let path = dir.join(STATE_FILE);
        let conn = Connection::open(&path).map_err(|source| AgentDbError::Open {
            path: path.clone(),
            source,
        })?;
        restrict_file(&path)?;
        Self::init(conn, path)
    }

    /// A private in-memory database, for unit tests.
    pub fn in_memory() -> Result<AgentDb, AgentDbError> {
        Self::init(Connection::open_in_memory()?, PathBuf::from(":memory:"))
    }

    fn init(conn: Connection, path: PathBuf) -> Result<AgentDb, AgentDbError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // journal_mode returns a row; query it rather than execute.
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
        migrate(&conn)?;
        Ok(AgentDb {
            conn: Mutex::new(conn),
            path,
            guard: AtomicI64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for one short unit of work. A poisoned lock (a panic while it was
    /// held) still yields the connection: SQLite rolled back whatever was unfinished.
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `now` and returns the latest time seen before it (`None` the first time).
    /// The stored value never goes backwards, and is written only when `now` is later (no
    /// fsync for logins within the same second).
    pub fn observe_time(&self, now_unix: i64) -> Result<Option<i64>, AgentDbError> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let prev = guard_row(&tx)?;
        tx.execute(
            "INSERT INTO clock (id, latest_unix) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET latest_unix = excluded.latest_unix
             WHERE excluded.latest_unix > clock.latest_unix",
            [now_unix],
        )?;
        tx.commit()?;
        self.guard
            .store(prev.map_or(now_unix, |p| p.max(now_unix)), Ordering::SeqCst);
        Ok(prev)
    }

    /// True when the guard, as last seen, needs no re-anchoring to `server_unix` (no query:
    /// callers on an async thread use it to skip [`AgentDb::anchor_time`]).
    pub fn guard_fits(&self, server_unix: i64, ahead_secs: i64, behind_secs: i64) -> bool {
        let g = self.guard.load(Ordering::SeqCst);
        g != 0 && g <= server_unix + ahead_secs && g >= server_unix - behind_secs
    }

    /// Re-anchors the clock guard to a server's time, taken from an answer over the
    /// authenticated connection: set to `server_unix` when the guard is more than
    /// `ahead_secs` ahead of it (this machine's clock ran ahead, e.g. an offline attempt
    /// with the clock set days forward) or more than `behind_secs` behind it. Nothing is
    /// written when the guard is within that window, which is every answer of a machine
    /// whose clock is right. Returns the guard before, when it moved.
    pub fn anchor_time(
        &self,
        server_unix: i64,
        ahead_secs: i64,
        behind_secs: i64,
    ) -> Result<Option<i64>, AgentDbError> {
        let in_window = |g: i64| g <= server_unix + ahead_secs && g >= server_unix - behind_secs;
        if self.guard_fits(server_unix, ahead_secs, behind_secs) {
            return Ok(None);
        }
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let prev = guard_row(&tx)?;
        if let Some(g) = prev
            && in_window(g)
        {
            self.guard.store(g, Ordering::SeqCst);
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO clock (id, latest_unix) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET latest_unix = excluded.latest_unix",
            [server_unix],
        )?;
        tx.commit()?;
        self.guard.store(server_unix, Ordering::SeqCst);
        Ok(prev)
    }
}

/// The clock guard's stored value (None before the first write).
fn guard_row(c: &Connection) -> Result<Option<i64>, AgentDbError> {
    Ok(
        c.query_row("SELECT latest_unix FROM clock WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?,
    )
}

fn migrate(conn: &Connection) -> Result<(), AgentDbError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {version}"))?;
        tx.commit()?;
        tracing::info!(version, "agent state database migrated");
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), AgentDbError> {
    let err = |source| AgentDbError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// On Windows the database inherits the ACL of the state directory (set by the installer).
#[cfg(not(unix))]
fn restrict_file(_path: &Path) -> Result<(), AgentDbError> {
    Ok(())
}

#[cfg(unix)]
fn restrict_file(path: &Path) -> Result<(), AgentDbError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        AgentDbError::Dir {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn opens_private_and_migrates_once() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let db = AgentDb::open(&state_dir).unwrap();
        let v: i64 = db
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        drop(db);
        // Reopening applies nothing twice.
        let db = AgentDb::open(&state_dir).unwrap();
        let mode = std::fs::metadata(&state_dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let mode = std::fs::metadata(db.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn spool_rows_from_before_the_tiers_get_theirs() {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 4").unwrap();
        for (i, (kind, low)) in [("journal", 1), ("auth_failure", 0), ("logon", 0)]
            .into_iter()
            .enumerate()
        {
            conn.execute(
                "INSERT INTO event_spool (id, low, body) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    i.to_string(),
                    low,
                    format!(r#"{{"kind":"{kind}","user":"ann"}}"#)
                ],
            )
            .unwrap();
        }
        migrate(&conn).unwrap();
        let rows: Vec<(i64, Option<String>)> = conn
            .prepare("SELECT tier, owner FROM event_spool ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, vec![(0, None), (3, Some("ann".into())), (2, None)]);
    }

    #[test]
    fn clock_never_goes_backwards() {
        let db = AgentDb::in_memory().unwrap();
        assert_eq!(db.observe_time(1000).unwrap(), None);
        assert_eq!(db.observe_time(2000).unwrap(), Some(1000));
        // Going back reports the latest seen and keeps it.
        assert_eq!(db.observe_time(1500).unwrap(), Some(2000));
        assert_eq!(db.observe_time(1600).unwrap(), Some(2000));
        // The same time again changes nothing; a later one moves it on.
        assert_eq!(db.observe_time(2000).unwrap(), Some(2000));
        assert_eq!(db.observe_time(2500).unwrap(), Some(2000));
        assert_eq!(db.observe_time(2400).unwrap(), Some(2500));
    }

    #[test]
    fn a_server_time_re_anchors_the_guard_both_ways() {
        let db = AgentDb::in_memory().unwrap();
        // An offline attempt with the clock eight days ahead pushed the guard forward.
        db.observe_time(1_000_000 + 8 * 86_400).unwrap();
        // The server's time pulls it back; a later local time within the window is kept.
        assert_eq!(
            db.anchor_time(1_000_000, 300, 60).unwrap(),
            Some(1_000_000 + 8 * 86_400)
        );
        assert_eq!(db.observe_time(1_000_010).unwrap(), Some(1_000_000));
        assert_eq!(db.anchor_time(1_000_020, 300, 60).unwrap(), None);
        // A guard far behind the server (a machine that was off) moves up to it.
        assert_eq!(db.anchor_time(1_100_000, 300, 60).unwrap(), Some(1_000_010));
        let g: i64 = db
            .conn()
            .query_row("SELECT latest_unix FROM clock", [], |r| r.get(0))
            .unwrap();
        assert_eq!(g, 1_100_000);
    }
}
