//! Group commit for authentication events. Logins that finish together share one spool
//! transaction (one fsync) on a thread of its own: a login neither blocks an async thread on
//! the disk nor queues behind every other login's fsync. Each caller still waits until its
//! events are on disk.

use super::spool::Spool;
use crate::agent_db::{AgentDb, AgentDbError};
use latchkey_proto::events::Event;
use std::sync::{Arc, mpsc};
use tokio::sync::oneshot;

/// Logins one transaction takes at most.
const MAX_JOBS: usize = 256;

const STOPPED: &str = "the event spool writer stopped";

/// How a group commit ended, shared by every login in it.
type Written = Result<(), Arc<AgentDbError>>;

struct Job {
    events: Vec<Event>,
    done: oneshot::Sender<Written>,
}

pub(super) struct AuthWriter {
    tx: mpsc::Sender<Job>,
}

impl AuthWriter {
    /// Starts the writer thread; it ends when the writer is dropped, after what is queued.
    pub(super) fn start(db: Arc<AgentDb>, spool: Arc<Spool>) -> std::io::Result<AuthWriter> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("latchkey-spool".into())
            .spawn(move || run(&db, &spool, &rx))?;
        Ok(AuthWriter { tx })
    }

    /// Spools `events` together with whatever else is queued. Ok once they are on disk.
    pub(super) async fn write(&self, events: Vec<Event>) -> crate::Result<()> {
        let stopped = || crate::AgentError::Local(STOPPED.into());
        let (done, answer) = oneshot::channel();
        self.tx.send(Job { events, done }).map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(|e| crate::AgentError::Local(format!("event spool: {e}")))
    }
}

fn run(db: &AgentDb, spool: &Spool, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut events = first.events;
        let mut waiting = vec![first.done];
        while waiting.len() < MAX_JOBS {
            let Ok(job) = rx.try_recv() else { break };
            events.extend(job.events);
            waiting.push(job.done);
        }
        let result: Written = spool.push_with(db, &events, |_| Ok(())).map_err(Arc::new);
        for done in waiting {
            // A caller that went away (its connection closed) needs no answer.
            let _ = done.send(result.clone());
        }
    }
}
