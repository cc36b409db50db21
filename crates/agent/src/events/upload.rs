//! The uploader: sends the spool, oldest first, in batches to `POST /v1/events` through the
//! server list (selection, fail-over, circuit breaker), and deletes exactly the events the
//! server acknowledged. While no server answers it waits, doubling the wait from
//! `events.retry_min` up to `events.retry_max`.
//!
//! Killed between the server's commit and the deletion, the agent sends those events again
//! after its restart; the server keeps each UUID once, so they arrive exactly once.

use crate::Agent;
use crate::agent_db::AgentDbError;
use crate::events::Events;
use crate::upstream::Outcome;
use latchkey_proto::events::EventBatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// With nothing to send, look at the spool at least this often (events written by another
/// process, e.g. a future offline tool, ring no bell).
const IDLE_CHECK: Duration = Duration::from_secs(30);

/// Sleeps `d` unless shutdown comes first; false on shutdown.
pub(crate) async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = shutdown.changed() => false,
        _ = tokio::time::sleep(d) => !*shutdown.borrow(),
    }
}

/// Runs a state-database call on the blocking pool: it may wait behind the spool writer's
/// fsync, which must not stall an async thread (logins run there).
async fn off_thread<T: Send + 'static>(
    events: &Arc<Events>,
    f: impl FnOnce(&Events) -> Result<T, AgentDbError> + Send + 'static,
) -> crate::Result<T> {
    let events = events.clone();
    match tokio::task::spawn_blocking(move || f(&events)).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(crate::AgentError::Local(format!(
            "state database task failed: {e}"
        ))),
    }
}

pub async fn run(agent: Arc<Agent>, mut shutdown: watch::Receiver<bool>) {
    let events = agent.events.clone();
    let t = agent.timings.clone();
    let limit = agent.config.events.upload_batch;
    let mut delay = t.retry_min;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let batch = match off_thread(&events, move |ev| ev.spool().batch(ev.db(), limit)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the event spool");
                if !pause(t.retry_max, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = events.woken() => {}
                _ = tokio::time::sleep(IDLE_CHECK) => {}
            }
            continue;
        }
        let n = batch.len();
        let req = EventBatch { events: batch };
        let sent = tokio::select! {
            _ = shutdown.changed() => return,
            r = agent.engine.server().upload_events(&req, &agent.config.machine_id) => r,
        };
        let failure = match sent {
            Outcome::Answer(answered) => {
                agent.engine.note_server_time(answered.server_time).await;
                let acc = answered.value;
                for r in &acc.rejected {
                    tracing::error!(id = %r.id, reason = %r.reason, "the server refused an event; dropping it");
                }
                let mut ids = acc.accepted;
                ids.extend(acc.rejected.into_iter().map(|r| r.id));
                let acked = !ids.is_empty();
                if let Err(e) = off_thread(&events, move |ev| ev.spool().ack(ev.db(), &ids)).await {
                    tracing::error!(error = %e, "cannot delete uploaded events from the spool");
                }
                tracing::debug!(
                    sent = n,
                    new = acc.inserted,
                    left = events.spool().len(),
                    "events uploaded"
                );
                if !acked {
                    Some("the server acknowledged nothing".to_string())
                } else {
                    delay = t.retry_min;
                    None
                }
            }
            Outcome::Unreachable(why) => {
                tracing::debug!(error = %why, waiting = ?delay, "events not uploaded: no server answered");
                Some(why)
            }
            Outcome::Refused { code, message } => {
                tracing::error!(%code, %message, "the server refused the event upload");
                Some(message)
            }
        };
        if failure.is_some() {
            if !pause(delay, &mut shutdown).await {
                return;
            }
            delay = (delay * 2).min(t.retry_max);
        }
    }
}
