//! The store: one code path over SQLite (default) and, later, PostgreSQL.
//!
//! All queries go through `sqlx::Any` with `$N` placeholders and portable types (BIGINT,
//! TEXT); only the schema DDL may differ per backend. Every state change that guards a
//! security property (a code used once, a join token used once, a transaction finished once)
//! is a single conditional UPDATE whose affected-row count decides the outcome, so it stays
//! atomic across several server instances sharing one database.

mod apps;
mod audit;
mod events;
mod fido2;
mod machines;
mod offline;
mod policies;
mod schema;
mod smartcards;
mod tokens;
mod tx;
mod users;

pub use apps::{AppRow, NewApp, PushRow};
pub use audit::AuditRecord;
pub use events::{EventFilter, SessionRow};
pub use fido2::{Fido2RegRow, Fido2Row};
pub use machines::{MachineRow, NewMachine};
pub use policies::Settings;
pub use smartcards::SmartcardRow;
pub use tokens::TokenRow;
pub use tx::{NewTx, TxRow};
pub use users::UserRow;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
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

#[derive(Clone)]
pub struct Store {
    /// Readers (WAL lets them run beside the writer).
    pool: AnyPool,
    /// The one writer connection: SQLite allows one writer at a time, and queueing writes
    /// here (async, in order) avoids SQLite's busy-wait sleeps when writers collide.
    writer: AnyPool,
    backend: Backend,
}

/// Turns `--database` into a sqlx URL. A bare path means SQLite.
fn database_url(spec: &str) -> Result<(String, Backend)> {
    if let Some(rest) = spec.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        return Ok((format!("sqlite://{path}?mode=rwc"), Backend::Sqlite));
    }
    if spec.contains("://") {
        return Err(StoreError::Url(spec.to_string()));
    }
    Ok((format!("sqlite://{spec}?mode=rwc"), Backend::Sqlite))
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub async fn open(spec: &str) -> Result<Store> {
        install_default_drivers();
        let (url, backend) = database_url(spec)?;
        if backend == Backend::Sqlite {
            let path = Path::new(spec.trim_start_matches("sqlite:").trim_start_matches("//"));
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
                .open(path);
        }
        let pool = Self::pool_options(backend, 6, false).connect(&url).await?;
        let writer = Self::pool_options(backend, 1, true).connect(&url).await?;
        let store = Store {
            pool,
            writer,
            backend,
        };
        schema::migrate(&store).await?;
        Ok(store)
    }

    fn pool_options(backend: Backend, size: u32, writer: bool) -> AnyPoolOptions {
        AnyPoolOptions::new()
            .max_connections(size)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            // A ping before each use would double the round trips to SQLite's worker thread;
            // a broken connection shows up as a query error anyway (and a 503, never a grant).
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the single writer; NORMAL sync is
                        // durable across process crashes (fsync at checkpoints).
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        if writer {
                            // Checkpoints run from a background task (`checkpoint`), not
                            // inside a login's commit.
                            conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                        }
                    }
                    Ok(())
                })
            })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Copies committed WAL frames into the database file without waiting for readers or
    /// the writer (SQLite's PASSIVE checkpoint), from a reader connection.
    pub async fn checkpoint(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Cheap query used by `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// Unique-constraint violations become `Conflict`.
pub(crate) fn map_conflict(e: sqlx::Error, what: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Conflict(what.to_string());
    }
    StoreError::Db(e)
}
