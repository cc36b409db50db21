//! The database layer under the store: SQL text with `$N` placeholders, owned argument
//! values and owned result rows, run on a small set of SQLite connections.
//!
//! Why not an async driver: a login verification is a handful of point statements of a few
//! microseconds each. Handing each one to a driver's worker thread and back (two wake-ups,
//! two context switches per statement) cost more than the rest of the verification together
//! (docs/performance.md). Here a statement marked [`Query::quick`] runs on the calling thread
//! when a connection is free at that instant, and everything else (and a quick statement
//! that finds every connection busy, or the database locked by another process) runs on
//! tokio's blocking pool, so a slow statement never stalls the async workers.
//!
//! Connections: one writer (SQLite has one writer at a time; queueing writes on our side
//! avoids its busy-wait sleeps) and a few readers (WAL lets them read beside the writer).
//!
//! The API is backend-neutral on purpose (portable SQL, [`Value`] arguments, [`Row`]
//! results): PostgreSQL joins as another kind of connection behind [`Handle`], not as a
//! second copy of the store's logic.

use super::{Result, StoreError};
use rusqlite::{CachedStatement, Connection, OpenFlags};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

/// How long a statement on the blocking pool waits for a lock held by another process.
const BUSY_WAIT: Duration = Duration::from_secs(10);

mod value;

pub(crate) use value::{Bind, Decode, Row, Value};

/// What a statement changed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    rows: u64,
}

impl Done {
    pub(crate) fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// A statement with its arguments.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    sql: String,
    args: Vec<Value>,
    quick: bool,
}

pub(crate) fn query(sql: impl Into<String>) -> Query {
    Query {
        sql: sql.into(),
        args: Vec::new(),
        quick: false,
    }
}

/// A statement whose first column is the result.
#[derive(Debug, Clone)]
pub(crate) struct QueryScalar<T> {
    q: Query,
    _t: PhantomData<fn() -> T>,
}

pub(crate) fn query_scalar<T: Decode>(sql: impl Into<String>) -> QueryScalar<T> {
    QueryScalar {
        q: query(sql),
        _t: PhantomData,
    }
}

impl Query {
    pub(crate) fn bind(mut self, v: impl Bind) -> Self {
        self.args.push(v.into_value());
        self
    }

    /// A point statement (by key, one or few rows, microseconds): it may run on the calling
    /// async thread when a connection is free, instead of a hand-off to the blocking pool.
    pub(crate) fn quick(mut self) -> Self {
        self.quick = true;
        self
    }

    pub(crate) async fn execute(self, db: &Handle) -> Result<Done> {
        let quick = self.quick;
        db.run(quick, move |c| self.execute_on(c)).await
    }

    pub(crate) async fn fetch_all(self, db: &Handle) -> Result<Vec<Row>> {
        let quick = self.quick;
        db.run(quick, move |c| self.fetch_all_on(c)).await
    }

    pub(crate) async fn fetch_optional(self, db: &Handle) -> Result<Option<Row>> {
        let quick = self.quick;
        db.run(quick, move |c| self.fetch_optional_on(c)).await
    }

    pub(crate) async fn fetch_one(self, db: &Handle) -> Result<Row> {
        self.fetch_optional(db).await?.ok_or_else(no_row)
    }

    /// Binds the arguments: `$N` (or `?N`) takes argument N, a bare `?` the next one.
    fn prepare<'c>(&self, c: &'c Connection) -> Result<CachedStatement<'c>> {
        let mut st = c.prepare_cached(&self.sql)?;
        for i in 1..=st.parameter_count() {
            let n = match st.parameter_name(i) {
                None => i,
                Some(name) => name
                    .get(1..)
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|_| name.starts_with('$') || name.starts_with('?'))
                    .ok_or_else(|| StoreError::Db(format!("unsupported SQL parameter {name}")))?,
            };
            let v = n
                .checked_sub(1)
                .and_then(|k| self.args.get(k))
                .ok_or_else(|| StoreError::Db(format!("SQL parameter {n} is not bound")))?;
            st.raw_bind_parameter(i, v)?;
        }
        Ok(st)
    }

    fn rows_on(&self, c: &Connection, limit: Option<usize>) -> Result<Vec<Row>> {
        let mut st = self.prepare(c)?;
        let cols: Arc<[String]> = st.column_names().into_iter().map(String::from).collect();
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut vals = Vec::with_capacity(cols.len());
            for i in 0..cols.len() {
                vals.push(Value::try_from(r.get_ref(i)?)?);
            }
            out.push(Row::new(cols.clone(), vals));
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    /// Runs the statement on a connection the caller holds (inside [`Handle::transaction`]).
    pub(crate) fn execute_on(&self, c: &Connection) -> Result<Done> {
        let mut st = self.prepare(c)?;
        let mut rows = st.raw_query();
        while rows.next()?.is_some() {}
        drop(rows);
        Ok(Done { rows: c.changes() })
    }

    pub(crate) fn fetch_all_on(&self, c: &Connection) -> Result<Vec<Row>> {
        self.rows_on(c, None)
    }

    /// The first row. A DML statement with `RETURNING` has made all its changes by then.
    pub(crate) fn fetch_optional_on(&self, c: &Connection) -> Result<Option<Row>> {
        Ok(self.rows_on(c, Some(1))?.into_iter().next())
    }
}

fn no_row() -> StoreError {
    StoreError::Db("the query returned no row".into())
}

impl<T: Decode + Send + 'static> QueryScalar<T> {
    pub(crate) fn bind(mut self, v: impl Bind) -> Self {
        self.q = self.q.bind(v);
        self
    }

    pub(crate) fn quick(mut self) -> Self {
        self.q = self.q.quick();
        self
    }

    fn first(row: &Row) -> Result<T> {
        row.try_get(0usize)
    }

    pub(crate) async fn fetch_one(self, db: &Handle) -> Result<T> {
        Self::first(&self.q.fetch_one(db).await?)
    }

    pub(crate) async fn fetch_optional(self, db: &Handle) -> Result<Option<T>> {
        self.q
            .fetch_optional(db)
            .await?
            .as_ref()
            .map(Self::first)
            .transpose()
    }

    pub(crate) async fn fetch_all(self, db: &Handle) -> Result<Vec<T>> {
        self.q
            .fetch_all(db)
            .await?
            .iter()
            .map(Self::first)
            .collect()
    }
}

struct Inner {
    conns: Box<[Mutex<Connection>]>,
    next: AtomicUsize,
}

/// A set of connections used the same way (the readers, or the one writer). Cheap to clone.
#[derive(Clone)]
pub(crate) struct Handle {
    inner: Arc<Inner>,
    /// Tried first by quick statements (the readers prefer the writer's connection: its
    /// page cache stays valid, while a reader's is dropped after every commit by another
    /// connection and read again from the file).
    quick_first: Option<Arc<Inner>>,
}

/// A connection left inside a transaction (a panic mid-way) is rolled back before reuse.
fn ready(c: MutexGuard<'_, Connection>) -> MutexGuard<'_, Connection> {
    if !c.is_autocommit() {
        let _ = c.execute_batch("ROLLBACK");
    }
    c
}

impl Handle {
    /// Opens `n` connections to the SQLite file at `path`, off the async threads (file I/O
    /// and WAL recovery).
    pub(crate) async fn open_sqlite(path: PathBuf, n: usize, writer: bool) -> Result<Handle> {
        let conns = tokio::task::spawn_blocking(move || {
            (0..n.max(1))
                .map(|_| open_sqlite(&path, writer).map(Mutex::new))
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(task_failed)??;
        Ok(Handle {
            inner: Arc::new(Inner {
                conns: conns.into_boxed_slice(),
                next: AtomicUsize::new(0),
            }),
            quick_first: None,
        })
    }

    /// This handle, with quick statements tried on `first`'s connections before its own.
    pub(crate) fn preferring(self, first: &Handle) -> Handle {
        Handle {
            quick_first: Some(first.inner.clone()),
            ..self
        }
    }

    /// Runs `f` on one connection. Quick: on this thread if a connection is free now and the
    /// database is not locked by another process; otherwise on the blocking pool (where it
    /// waits for a connection, and up to [`BUSY_WAIT`] for a lock). `f` may run twice when the
    /// first try found the database locked: it must start with no effect before its first
    /// statement succeeds (a single statement, or [`Handle::transaction`]).
    pub(crate) async fn run<R, F>(&self, quick: bool, f: F) -> Result<R>
    where
        F: Fn(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let n = self.inner.conns.len();
        if quick {
            for inner in self.quick_first.iter().chain([&self.inner]) {
                let m = inner.conns.len();
                let start = inner.next.fetch_add(1, Ordering::Relaxed);
                for k in 0..m {
                    let guard = match inner.conns[(start + k) % m].try_lock() {
                        Ok(g) => g,
                        Err(TryLockError::Poisoned(p)) => p.into_inner(),
                        Err(TryLockError::WouldBlock) => continue,
                    };
                    let c = ready(guard);
                    // Never sleep on this thread: a lock held elsewhere sends `f` to the pool.
                    c.busy_timeout(Duration::ZERO)?;
                    let r = f(&c);
                    c.busy_timeout(BUSY_WAIT)?;
                    match r {
                        Err(StoreError::Busy) => break,
                        other => return other,
                    }
                }
            }
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let i = inner.next.fetch_add(1, Ordering::Relaxed) % n;
            let guard = inner.conns[i]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&ready(guard))
        })
        .await
        .map_err(task_failed)?
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE` … `COMMIT`), rolled back when `f`
    /// or the commit fails.
    pub(crate) async fn transaction<R, F>(&self, quick: bool, f: F) -> Result<R>
    where
        F: Fn(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.run(quick, move |c| {
            c.execute_batch("BEGIN IMMEDIATE")?;
            let r = f(c).and_then(|r| {
                c.execute_batch("COMMIT")?;
                Ok(r)
            });
            if r.is_err() && !c.is_autocommit() {
                let _ = c.execute_batch("ROLLBACK");
            }
            r
        })
        .await
    }
}

fn task_failed(e: tokio::task::JoinError) -> StoreError {
    StoreError::Db(format!("database task failed: {e}"))
}

fn open_sqlite(path: &Path, writer: bool) -> Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(BUSY_WAIT)?;
    // WAL lets readers run beside the single writer; NORMAL sync is durable across process
    // crashes (the WAL is fsync'd at checkpoints).
    c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    c.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    if writer {
        // Checkpoints run from a background task (`Store::checkpoint`), not inside a commit.
        // The writer also answers most point reads (its cache stays valid: no other
        // connection writes), so it gets the larger page cache; pages are allocated only as
        // they are used.
        c.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -16384;")?;
    }
    c.set_prepared_statement_cache_capacity(256);
    Ok(c)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            match f.code {
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                    return StoreError::Busy;
                }
                rusqlite::ErrorCode::ConstraintViolation
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    return StoreError::Unique(e.to_string());
                }
                _ => {}
            }
        }
        StoreError::Db(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn db() -> (tempfile::TempDir, Handle) {
        let dir = tempfile::tempdir().unwrap();
        let h = Handle::open_sqlite(dir.path().join("t.db"), 2, true)
            .await
            .unwrap();
        query("CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT, b BLOB)")
            .execute(&h)
            .await
            .unwrap();
        (dir, h)
    }

    #[tokio::test]
    async fn placeholders_follow_their_numbers_not_their_order() {
        let (_d, h) = db().await;
        query("INSERT INTO t (n, k) VALUES ($2, $1)")
            .bind("a")
            .bind(7i64)
            .execute(&h)
            .await
            .unwrap();
        let n: i64 = query_scalar("SELECT n FROM t WHERE k = $1 AND n > $2 - 1 AND k = $1")
            .bind("a")
            .bind(7i64)
            .quick()
            .fetch_one(&h)
            .await
            .unwrap();
        assert_eq!(n, 7);
    }

    #[tokio::test]
    async fn unbound_parameter_is_an_error_not_a_null() {
        let (_d, h) = db().await;
        let e = query("SELECT * FROM t WHERE k = $2")
            .bind("a")
            .fetch_all(&h)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("parameter 2 is not bound"), "{e}");
    }

    #[tokio::test]
    async fn unique_violation_and_strict_types() {
        let (_d, h) = db().await;
        let ins = || query("INSERT INTO t (k, n, b) VALUES ($1, NULL, $2)").bind("x");
        ins().bind(vec![1u8, 2]).execute(&h).await.unwrap();
        let e = ins().bind(vec![3u8]).execute(&h).await.unwrap_err();
        assert!(matches!(e, StoreError::Unique(_)), "{e:?}");
        let row = query("SELECT k, n, b FROM t").fetch_one(&h).await.unwrap();
        assert_eq!(row.try_get::<Option<i64>, _>("n").unwrap(), None);
        assert_eq!(row.try_get::<Vec<u8>, _>("b").unwrap(), vec![1, 2]);
        assert!(row.try_get::<i64, _>("k").is_err());
        assert!(row.try_get::<i64, _>("n").is_err());
        assert!(row.try_get::<String, _>("missing").is_err());
    }

    #[tokio::test]
    async fn failed_transaction_leaves_nothing() {
        let (_d, h) = db().await;
        let r = h
            .transaction(true, |c| {
                query("INSERT INTO t (k) VALUES ('y')").execute_on(c)?;
                query("INSERT INTO t (k) VALUES ('y')").execute_on(c)?;
                Ok(())
            })
            .await;
        assert!(r.is_err());
        let n: i64 = query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&h)
            .await
            .unwrap();
        assert_eq!(n, 0);
        // The connection is usable again, outside any transaction.
        query("INSERT INTO t (k) VALUES ('z')")
            .quick()
            .execute(&h)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn returning_changes_and_rows_affected() {
        let (_d, h) = db().await;
        for k in ["a", "b", "c"] {
            query("INSERT INTO t (k, n) VALUES ($1, 0)")
                .bind(k)
                .execute(&h)
                .await
                .unwrap();
        }
        let done = query("UPDATE t SET n = n + 1").execute(&h).await.unwrap();
        assert_eq!(done.rows_affected(), 3);
        // fetch_optional stops after the first row, yet every row was updated.
        let first: Option<i64> = query_scalar("UPDATE t SET n = n + 1 RETURNING n")
            .fetch_optional(&h)
            .await
            .unwrap();
        assert_eq!(first, Some(2));
        let sum: i64 = query_scalar("SELECT SUM(n) FROM t")
            .fetch_one(&h)
            .await
            .unwrap();
        assert_eq!(sum, 6);
    }
}
