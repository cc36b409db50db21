//! The store: one code path over SQLite (default) and, later, PostgreSQL.
//!
//! All queries go through [`db`] with `$N` placeholders and portable types (BIGINT, TEXT);
//! only the schema DDL may differ per backend. Every state change that guards a
//! security property (a code used once, a join token used once, a transaction finished once)
//! is a single conditional UPDATE whose affected-row count decides the outcome, so it stays
//! atomic across several server instances sharing one database.

mod admins;
mod answer;
mod apps;
mod audit;
mod enrol;
mod events;
mod fido2;
mod machines;
mod offline;
mod overview;
mod policies;
mod portal;
mod schema;
mod smartcards;
mod tokens;
mod tx;
mod users;
mod web;

pub use admins::{AdminRow, Attempt};
pub use answer::{Lockout, OtpRules, OtpVerdict, Reserved, Unjudged};
pub use apps::{AppRow, NewApp, PushRow, PushState};
pub use audit::{AuditFilter, AuditRecord};
pub use db::WriteStats;
pub use enrol::{AppLink, EnrolRow, EnrolState, Grace, Opened};
pub use events::{EventFilter, SessionRow};
pub use fido2::{Fido2RegRow, Fido2Row};
pub use machines::{MachineRow, NewMachine};
pub use overview::OverviewRow;
pub use policies::Settings;
pub use portal::{OwnRemoved, PendingTotp};
pub use smartcards::SmartcardRow;
pub use tokens::TokenRow;
pub use tx::{NewTx, TxRow, TxView, tx_id};
pub use users::UserRow;
pub use web::WebSessionRow;

use crate::cache::TtlCache;
use db::Handle;
pub(crate) use db::{Row, query, query_scalar};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

mod db;

#[derive(Debug, Clone, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(String),
    /// The database is locked by another connection (retried on the blocking pool; seen by
    /// callers only if that wait runs out too).
    #[error("database is busy")]
    Busy,
    /// A UNIQUE or PRIMARY KEY constraint failed (turned into `Conflict` by the caller).
    #[error("unique constraint failed: {0}")]
    Unique(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("unsupported database URL {0:?} (expected sqlite:PATH or a file path)")]
    Url(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
}

/// Reader connections: WAL lets them read beside the writer. A few are enough: each
/// statement holds one for microseconds.
const READERS: usize = 4;

#[derive(Clone)]
pub struct Store {
    /// Readers (WAL lets them run beside the writer).
    pool: Handle,
    /// The one writer connection: SQLite allows one writer at a time, and queueing writes
    /// here (in order) avoids SQLite's busy-wait sleeps when writers collide.
    writer: Handle,
    backend: Backend,
    /// machine id → users whose bundles it must wipe: read on every login answer, written
    /// rarely. Cleared on this instance's own changes; other instances sharing the database
    /// see a change within the TTL, as with policies (docs/decisions.md).
    forget_cache: Arc<TtlCache<Vec<String>>>,
}

/// Turns `--database` into a backend and its location. A bare path means SQLite.
fn database_path(spec: &str) -> Result<(String, Backend)> {
    if let Some(rest) = spec.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        return Ok((path.to_string(), Backend::Sqlite));
    }
    if spec.contains("://") {
        return Err(StoreError::Url(spec.to_string()));
    }
    Ok((spec.to_string(), Backend::Sqlite))
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub async fn open(spec: &str) -> Result<Store> {
        let (path, backend) = database_path(spec)?;
        if path.is_empty() {
            return Err(StoreError::Url(spec.to_string()));
        }
        let path = Path::new(&path).to_path_buf();
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(parent);
        }
        // The database holds sealed seeds and key hashes: owner-only, like the keys.
        // SQLite gives its -wal/-shm files the database file's permissions.
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        let writer = Handle::open_sqlite(path.clone(), 1, true).await?;
        let store = Store {
            pool: writer.clone(),
            writer,
            backend,
            forget_cache: Arc::new(TtlCache::new(Duration::from_secs(2))),
        };
        // The schema first (through the writer), then the readers see it.
        schema::migrate(&store).await?;
        let readers = Handle::open_sqlite(path, READERS, false).await?;
        Ok(Store {
            pool: readers.preferring(&store.writer),
            ..store
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &Handle {
        &self.pool
    }

    pub(crate) fn writer(&self) -> &Handle {
        &self.writer
    }

    /// Copies committed WAL frames into the database file and lets the WAL file start over
    /// (SQLite's PASSIVE checkpoint, which never waits for a reader), in two passes:
    ///
    /// 1. from a reader, beside the writes: it copies what was committed when it started,
    ///    without holding up a login; repeated while much was committed meanwhile;
    /// 2. on the writer, between two group commits: only the frames committed during pass 1
    ///    are left, and no frame can be appended meanwhile, so it finishes the copy and the
    ///    next write starts the WAL file over.
    ///
    /// Pass 2 is what bounds the WAL: from a reader alone, beside a steady stream of commits,
    /// the copy never caught up and the WAL grew without bound (600 MB in 15 s of
    /// `otp-load`). Pass 1 is what keeps the writer's pause short (copying a second of
    /// frames on the writer held logins up for ~200 ms).
    pub async fn checkpoint(&self) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        let pass = db::wal_checkpoint_passive;
        // Pass 1 again while the frames committed during the previous run are many: each
        // run copies what came during the one before, so what is left for pass 2 shrinks.
        let mut frames1 = 0;
        for round in 0..4 {
            let (frames, _) = self.pool.run(false, pass).await?;
            let new = frames - frames1;
            frames1 = frames;
            if round > 0 && new < 512 {
                break;
            }
        }
        // Pass 1 does not sync the database file (SQLite syncs it only once the whole WAL is
        // copied). Syncing it here, beside the writes, leaves pass 2 fewer pages to flush:
        // that sync took 13 ms on the writer before. The sync itself takes 10-40 ms under
        // load, and what was committed meanwhile would be pass 2's to copy and sync: so one
        // more copy, a sync of the database file again and one of the WAL, here too. Pass 2
        // is left the last few milliseconds' frames: its pause fell from ~12 to ~6 ms
        // (median of 15 checkpoints each).
        let t0 = std::time::Instant::now();
        self.pool
            .run(false, move |c| {
                db::sync_database_file(c)?;
                pass(c)?;
                db::sync_database_file(c)?;
                db::sync_wal_file(c)
            })
            .await?;
        let sync_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t0 = std::time::Instant::now();
        let (frames2, copied2, copy_ms) = self
            .writer
            .run_alone(move |c| {
                let t = std::time::Instant::now();
                let (f, n) = pass(c)?;
                Ok((f, n, t.elapsed().as_secs_f64() * 1e3))
            })
            .await?;
        let pause_ms = t0.elapsed().as_secs_f64() * 1e3;
        tracing::debug!(
            frames1,
            sync_ms,
            frames2,
            copied2,
            copy_ms,
            pause_ms,
            "WAL checkpoint"
        );
        Ok(())
    }

    /// Pass 1 of [`Store::checkpoint`] alone, once: copies what is committed into the database
    /// file from a reader, beside the writes.
    pub async fn checkpoint_copy(&self) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        self.pool.run(false, db::wal_checkpoint_passive).await?;
        Ok(())
    }

    /// The writer's work since start (`/metrics`).
    pub fn write_stats(&self) -> db::WriteStats {
        self.writer.write_stats()
    }

    /// Cheap query used by `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        query("SELECT 1").quick().execute(&self.pool).await?;
        Ok(())
    }

    /// Folds the WAL into the database file before shutdown (connections close on drop).
    pub async fn close(&self) {
        if self.backend == Backend::Sqlite
            && let Err(e) = self
                .writer
                .run_alone(|c| query("PRAGMA wal_checkpoint(TRUNCATE)").execute_on(c))
                .await
        {
            tracing::warn!(error = %e, "final checkpoint failed");
        }
    }
}

/// Unique-constraint violations become `Conflict`.
pub(crate) fn map_conflict(e: StoreError, what: &str) -> StoreError {
    match e {
        StoreError::Unique(_) => StoreError::Conflict(what.to_string()),
        other => other,
    }
}
