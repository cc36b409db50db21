//! The database layer under the store: SQL text with `$N` placeholders, owned argument
//! values and owned result rows, run on a small set of SQLite connections.
//!
//! Why not an async driver: a login verification is a handful of point statements of a few
//! microseconds each. Handing each one to a driver's worker thread and back (two wake-ups,
//! two context switches per statement) cost more than the rest of the verification together
//! (docs/performance.md).
//!
//! Connections: one writer and a few readers. Every write, and every read marked
//! [`Query::quick`], is a job for the writer: whoever finds its connection free runs all
//! waiting jobs as one transaction (group commit, [`Inner::drain`]), on the calling async
//! thread when they are all quick, else on tokio's blocking pool. A commit costs more than
//! the point statements in it, so sharing it is what makes logins cheap. The readers serve
//! the slow reads (listings) beside the writer, as WAL allows, and the bulk of checkpoints.
//!
//! The API is backend-neutral on purpose (portable SQL, [`Value`] arguments, [`Row`]
//! results): PostgreSQL joins as another kind of connection behind [`Handle`], not as a
//! second copy of the store's logic.

use super::{Result, StoreError};
use rusqlite::{CachedStatement, Connection};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

/// How long a statement on the blocking pool waits for a lock held by another process.
pub(super) const BUSY_WAIT: Duration = Duration::from_secs(10);

mod group;
mod sqlite;
mod value;

use group::{Job, Mode};
use sqlite::open_sqlite;
pub(crate) use sqlite::{sync_database_file, sync_wal_file, wal_checkpoint_passive};
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
    /// The writer: its statements are group-committed.
    writer: bool,
    /// The writer's jobs waiting for the next group commit (always empty for readers).
    queue: Mutex<Vec<Job>>,
    /// The writer's connection is taken by a group on the blocking pool (a slow job, a
    /// checkpoint, a lock held by another process): quick reads go to the readers meanwhile
    /// instead of waiting behind it.
    slow: AtomicBool,
    /// Group commits, the writes they carried, and the nanoseconds the writer's connection
    /// spent running groups (for `/metrics`).
    groups: AtomicU64,
    writes: AtomicU64,
    busy_ns: AtomicU64,
}

/// The writer's work since start (`/metrics`).
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteStats {
    /// Transactions committed (group commits).
    pub commits: u64,
    /// Writes carried by those commits.
    pub writes: u64,
    /// Time spent running groups on the writer's connection: near one second per second
    /// means every login queues behind the writer.
    pub busy: Duration,
}

/// A set of connections used the same way (the readers, or the one writer). Cheap to clone.
#[derive(Clone)]
pub(crate) struct Handle {
    inner: Arc<Inner>,
    /// Where quick reads go: the readers send them to the writer's group commit (its page
    /// cache stays valid, while a reader's is dropped after every commit by another
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

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn try_lock(m: &Mutex<Connection>) -> Option<MutexGuard<'_, Connection>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

impl Handle {
    /// Opens `n` connections to the SQLite file at `path`, off the async threads (file I/O
    /// and WAL recovery). The writer is one connection whatever `n`: its statements are
    /// group-committed (see [`Handle::run`]).
    pub(crate) async fn open_sqlite(path: PathBuf, n: usize, writer: bool) -> Result<Handle> {
        let n = if writer { 1 } else { n.max(1) };
        let conns = tokio::task::spawn_blocking(move || {
            (0..n)
                .map(|_| open_sqlite(&path, writer).map(Mutex::new))
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(task_failed)??;
        Ok(Handle {
            inner: Arc::new(Inner {
                conns: conns.into_boxed_slice(),
                next: AtomicUsize::new(0),
                writer,
                queue: Mutex::new(Vec::new()),
                slow: AtomicBool::new(false),
                groups: AtomicU64::new(0),
                writes: AtomicU64::new(0),
                busy_ns: AtomicU64::new(0),
            }),
            quick_first: None,
        })
    }

    /// This handle, with its quick reads sent to `first` (the writer).
    pub(crate) fn preferring(self, first: &Handle) -> Handle {
        Handle {
            quick_first: Some(first.inner.clone()),
            ..self
        }
    }

    /// Runs `f` on one connection.
    ///
    /// On the writer, `f` is one statement of a group commit: it joins the jobs waiting at
    /// that moment in one transaction, and its result comes back once that transaction has
    /// committed (see [`Inner::drain`]). A quick read on readers that prefer the writer
    /// joins the writer's group the same way, ahead of the group's writes. Anything else
    /// runs on the blocking pool, where it waits for a connection and up to [`BUSY_WAIT`]
    /// for a lock held by another process.
    pub(crate) async fn run<R, F>(&self, quick: bool, f: F) -> Result<R>
    where
        F: Fn(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        if self.inner.writer {
            return self.inner.submit(quick, Mode::Statement, f).await;
        }
        if quick
            && let Some(w) = self
                .quick_first
                .as_ref()
                .filter(|w| w.writer && !w.slow.load(Ordering::Relaxed))
        {
            return w.submit(true, Mode::Read, f).await;
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let i = inner.next.fetch_add(1, Ordering::Relaxed) % inner.conns.len();
            f(&ready(lock(&inner.conns[i])))
        })
        .await
        .map_err(task_failed)?
    }

    /// Runs `f` as one atomic unit: all its statements take effect, or none. On the writer
    /// it is a savepoint inside a group commit; elsewhere its own `BEGIN IMMEDIATE` …
    /// `COMMIT`, rolled back when `f` or the commit fails.
    pub(crate) async fn transaction<R, F>(&self, quick: bool, f: F) -> Result<R>
    where
        F: Fn(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        if self.inner.writer {
            return self.inner.submit(quick, Mode::Savepoint, f).await;
        }
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

    /// The work of this handle's writer since start.
    pub(crate) fn write_stats(&self) -> WriteStats {
        WriteStats {
            commits: self.inner.groups.load(Ordering::Relaxed),
            writes: self.inner.writes.load(Ordering::Relaxed),
            busy: Duration::from_nanos(self.inner.busy_ns.load(Ordering::Relaxed)),
        }
    }

    /// Runs `f` outside any transaction (a WAL checkpoint), on the blocking pool.
    pub(crate) async fn run_alone<R, F>(&self, f: F) -> Result<R>
    where
        F: Fn(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        if self.inner.writer {
            return self.inner.submit(false, Mode::Alone, f).await;
        }
        self.run(false, f).await
    }
}

fn task_failed(e: tokio::task::JoinError) -> StoreError {
    StoreError::Db(format!("database task failed: {e}"))
}

/// `(?, ?, …), (?, …)`: `rows` tuples of `cols` bare placeholders, bound in order, for a
/// multi-row INSERT.
///
/// Bare `?`, not `$N`: SQLite finds a named parameter's number by walking its list of names,
/// so binding n of them costs n²/2 steps. For a 700-argument audit batch that was 2% of the
/// server's CPU under load.
pub(crate) fn values_rows(rows: usize, cols: usize) -> String {
    let tuple = format!("({})", vec!["?"; cols].join(", "));
    vec![tuple; rows].join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn db() -> (tempfile::TempDir, Handle) {
        let dir = tempfile::tempdir().unwrap();
        let h = Handle::open_sqlite(dir.path().join("t.db"), 1, true)
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

    /// Many writers at once: each gets its own result, a failing one (a duplicate key, a
    /// transaction that gives up) leaves the others of its group committed, and nothing of
    /// its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_keeps_each_write_apart() {
        let (_d, h) = db().await;
        let mut tasks = Vec::new();
        for i in 0..200i64 {
            let h = h.clone();
            tasks.push(tokio::spawn(async move {
                if i % 10 == 3 {
                    // Two statements; the second fails on the key the first just inserted.
                    let k = format!("t{i}");
                    h.transaction(true, move |c| {
                        query("INSERT INTO t (k, n) VALUES ($1, 1)")
                            .bind(k.as_str())
                            .execute_on(c)?;
                        query("INSERT INTO t (k, n) VALUES ($1, 2)")
                            .bind(k.as_str())
                            .execute_on(c)?;
                        Ok(())
                    })
                    .await
                    .map(|()| 0)
                } else {
                    // Every fifth one repeats a key an earlier one (i - 1) also inserts.
                    let k = format!("k{}", if i % 5 == 0 { i - 1 } else { i });
                    query("INSERT INTO t (k, n) VALUES ($1, $2) RETURNING n")
                        .bind(k)
                        .bind(i)
                        .quick()
                        .execute(&h)
                        .await
                        .map(|d| d.rows_affected())
                }
            }));
        }
        let mut ok = 0;
        let mut unique = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(1) => ok += 1,
                Err(StoreError::Unique(_)) => unique += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        // 20 savepoint jobs fail on their own key; of the 180 single inserts, the pairs
        // (i - 1, i) for i % 5 == 0 and i > 0 collide, except where i - 1 is a savepoint
        // job's index (i - 1 = 3 mod 10 never holds for i = 0 mod 5): 39 collisions.
        assert_eq!(unique, 20 + 39);
        assert_eq!(ok, 200 - unique);
        let n: i64 = query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&h)
            .await
            .unwrap();
        assert_eq!(n, ok as i64);
        let half: i64 = query_scalar("SELECT COUNT(*) FROM t WHERE k LIKE 't%'")
            .fetch_one(&h)
            .await
            .unwrap();
        assert_eq!(half, 0, "a failed savepoint job left rows behind");
    }

    #[test]
    fn values_rows_binds_bare_placeholders_in_order() {
        assert_eq!(values_rows(2, 3), "(?, ?, ?), (?, ?, ?)");
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (a INTEGER, b TEXT)")
            .unwrap();
        let q = query(format!("INSERT INTO t (a, b) VALUES {}", values_rows(2, 2)))
            .bind(1i64)
            .bind("x")
            .bind(2i64)
            .bind("y");
        q.execute_on(&c).unwrap();
        let rows: Vec<(i64, String)> = c
            .prepare("SELECT a, b FROM t ORDER BY a")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, vec![(1, "x".to_string()), (2, "y".to_string())]);
    }
}
