//! Group commit on the writer: jobs queued by [`Handle`](super::Handle) calls, run in one
//! transaction by whoever finds the writer's connection free (see [`Inner::drain`]).

use super::{BUSY_WAIT, Inner, Result, StoreError, lock, ready, try_lock};
use rusqlite::Connection;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

/// How a writer's job joins a group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// One statement: atomic by itself (a failed statement undoes only its own changes).
    Statement,
    /// Several statements in a savepoint, rolled back to it when the job fails.
    Savepoint,
    /// Outside any transaction, after the group.
    Alone,
    /// A read: first in the group, so it sees only committed data.
    Read,
}

/// A write waiting for a group commit.
pub(super) struct Job {
    quick: bool,
    mode: Mode,
    /// Taken when the answer is sent (a read's as soon as it ran).
    work: Option<Box<dyn Work>>,
}

impl Job {
    fn run(&mut self, c: &Connection) -> bool {
        self.work.as_mut().is_some_and(|w| w.run(c))
    }

    fn finish(&mut self, commit: Result<()>) {
        if let Some(w) = self.work.take() {
            w.finish(commit);
        }
    }
}

trait Work: Send {
    /// Runs the job's statements and keeps their result until the group commits. Whether it
    /// succeeded.
    fn run(&mut self, c: &Connection) -> bool;
    /// Sends the result: the job's own error, the group's commit error, or the job's value.
    fn finish(self: Box<Self>, commit: Result<()>);
}

struct Typed<R, F> {
    f: F,
    out: Option<Result<R>>,
    tx: tokio::sync::oneshot::Sender<Result<R>>,
}

impl<R: Send, F: Fn(&Connection) -> Result<R> + Send> Work for Typed<R, F> {
    fn run(&mut self, c: &Connection) -> bool {
        let r = (self.f)(c);
        let ok = r.is_ok();
        self.out = Some(r);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<()>) {
        let r = match (self.out, commit) {
            (Some(Err(e)), _) | (_, Err(e)) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (None, Ok(())) => Err(StoreError::Db("the write was not run".into())),
        };
        // The caller may have gone (its request was cancelled): nothing to tell.
        let _ = self.tx.send(r);
    }
}

/// Batches the writer may run in a row on one async thread before handing the rest on
/// (bounds how long one request's task works for the others).
const DRAIN_ROUNDS: usize = 8;

impl Inner {
    fn queue(&self) -> MutexGuard<'_, Vec<Job>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a writer's job, runs the waiting group itself when the writer's connection is
    /// free, and waits for the job's result.
    pub(super) async fn submit<R, F>(self: &Arc<Self>, quick: bool, mode: Mode, f: F) -> Result<R>
    where
        F: Fn(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let work = Box::new(Typed { f, out: None, tx });
        self.queue().push(Job {
            quick,
            mode,
            work: Some(work),
        });
        // Let the other requests ready on this thread queue their writes first: they then
        // share one commit (a commit costs more than the writes in it).
        tokio::task::yield_now().await;
        self.drain(false);
        rx.await
            .map_err(|_| StoreError::Db("the database writer stopped".into()))?
    }

    /// Group commit. Whoever finds the writer's connection free takes every queued job and
    /// runs them in one transaction; whoever releases the connection looks at the queue
    /// again, so a queued job is never left without a runner. On an async thread only
    /// quick jobs run here, with no busy wait; a group with a slow job, or one that finds
    /// the database locked by another process, goes to the blocking pool.
    pub(super) fn drain(self: &Arc<Self>, blocking: bool) {
        if !self.writer {
            return;
        }
        for _ in 0..DRAIN_ROUNDS {
            let Some(guard) = try_lock(&self.conns[0]) else {
                // The holder looks at the queue when it lets go.
                return;
            };
            let jobs = std::mem::take(&mut *self.queue());
            if jobs.is_empty() {
                drop(guard);
                // A job queued between the take and the unlock found the connection held.
                if self.queue().is_empty() {
                    return;
                }
                continue;
            }
            if !blocking && !jobs.iter().all(|j| j.quick && j.mode != Mode::Alone) {
                drop(guard);
                self.spawn_group(jobs);
                return;
            }
            let c = ready(guard);
            let left = if blocking {
                self.run_group(&c, jobs, false)
            } else {
                let _ = c.busy_timeout(Duration::ZERO);
                let left = self.run_group(&c, jobs, true);
                let _ = c.busy_timeout(BUSY_WAIT);
                left
            };
            drop(c);
            if let Some(jobs) = left {
                self.spawn_group(jobs);
                return;
            }
        }
        if !self.queue().is_empty() {
            let me = self.clone();
            if blocking {
                tokio::task::spawn_blocking(move || me.drain(true));
            } else {
                tokio::spawn(async move { me.drain(false) });
            }
        }
    }

    /// Runs a group on the blocking pool (waiting for the connection and for locks), then
    /// carries on with whatever queued meanwhile.
    fn spawn_group(self: &Arc<Self>, jobs: Vec<Job>) {
        let me = self.clone();
        self.slow.store(true, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            {
                let c = ready(lock(&me.conns[0]));
                let _ = me.run_group(&c, jobs, false);
            }
            me.slow.store(false, Ordering::Relaxed);
            me.drain(true);
        });
    }
}

impl Inner {
    /// Runs `jobs` as one group commit on `c`. With `inline`, a database locked by another
    /// process hands the jobs back untouched (the caller sends them to the blocking pool).
    fn run_group(&self, c: &Connection, jobs: Vec<Job>, inline: bool) -> Option<Vec<Job>> {
        let start = Instant::now();
        let back = self.run_group_timed(c, jobs, inline);
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.busy_ns.fetch_add(ns, Ordering::Relaxed);
        back
    }

    fn run_group_timed(&self, c: &Connection, jobs: Vec<Job>, inline: bool) -> Option<Vec<Job>> {
        let (group, alone): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| j.mode != Mode::Alone);
        if !group.is_empty() {
            let n = group.len() as u64;
            if let Some(back) = commit_group(c, group, inline) {
                let mut back = back;
                back.extend(alone);
                return Some(back);
            }
            self.groups.fetch_add(1, Ordering::Relaxed);
            self.writes.fetch_add(n, Ordering::Relaxed);
        }
        for mut j in alone {
            j.run(c);
            j.finish(Ok(()));
        }
        None
    }
}

/// One transaction for `group`. With `inline`, a database locked by another process hands
/// the jobs back untouched.
fn commit_group(c: &Connection, mut group: Vec<Job>, inline: bool) -> Option<Vec<Job>> {
    {
        // Reads first: they see only what is committed.
        group.sort_by_key(|j| j.mode != Mode::Read);
        let begin = if group.iter().all(|j| j.mode == Mode::Read) {
            "BEGIN"
        } else {
            "BEGIN IMMEDIATE"
        };
        match c.execute_batch(begin).map_err(StoreError::from) {
            Err(StoreError::Busy) if inline => {
                return Some(group);
            }
            Err(e) => {
                for mut j in group.drain(..) {
                    j.finish(Err(e.clone()));
                }
            }
            Ok(()) => {
                let commit = run_in_transaction(c, &mut group).and_then(|()| {
                    c.execute_batch("COMMIT")?;
                    Ok(())
                });
                if commit.is_err() && !c.is_autocommit() {
                    let _ = c.execute_batch("ROLLBACK");
                }
                for mut j in group {
                    j.finish(commit.clone());
                }
            }
        }
    }
    None
}

/// The group's jobs inside the open transaction. `Err` when the transaction itself was lost
/// (SQLite rolls back the whole transaction on some errors, e.g. a full disk): then no job's
/// changes are kept.
fn run_in_transaction(c: &Connection, group: &mut [Job]) -> Result<()> {
    for j in group.iter_mut() {
        match j.mode {
            Mode::Savepoint => {
                c.prepare_cached("SAVEPOINT job")?.execute([])?;
                let ok = j.run(c);
                if c.is_autocommit() {
                    return Err(lost_transaction());
                }
                if !ok {
                    c.prepare_cached("ROLLBACK TO job")?.execute([])?;
                }
                c.prepare_cached("RELEASE job")?.execute([])?;
            }
            Mode::Statement => {
                j.run(c);
                if c.is_autocommit() {
                    return Err(lost_transaction());
                }
            }
            Mode::Read => {
                j.run(c);
                if c.is_autocommit() {
                    return Err(lost_transaction());
                }
                // It saw only committed data: its answer does not wait for the commit.
                j.finish(Ok(()));
            }
            Mode::Alone => {}
        }
    }
    Ok(())
}

fn lost_transaction() -> StoreError {
    StoreError::Db("a write failed and SQLite rolled back its whole group".into())
}
