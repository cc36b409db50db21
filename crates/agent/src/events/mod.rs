//! Events of this machine: logons, logoffs, unlocks, authentication results, journal
//! entries matched by rules, session locks. Each gets a UUID when it is created and goes
//! into the durable spool before anything else happens with it; the uploader sends the
//! spool to the servers, which keep each UUID once.
//!
//! Other parts of the agent record through [`Events`]: the socket (PAM session hooks), the
//! login engine (every authentication outcome, online and offline, as an [`AuthRecord`]),
//! the journal follower and the session-lock watcher.

pub mod config;
pub mod journal;
pub mod lock;
pub mod logind;
pub mod spool;
pub mod upload;
mod writer;

use crate::agent_db::{AgentDb, AgentDbError};
use latchkey_proto::events::{Event, EventKind, MAX_TEXT};
use rusqlite::Connection;
use std::sync::Arc;
use tokio::sync::Notify;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new event with a fresh UUID and the current time. Version 7 (RFC 9562): time-ordered
/// with 74 random bits, so the server's unique index on it grows at its end instead of
/// touching a random page per event.
pub fn new_event(kind: EventKind) -> Event {
    Event::new(uuid::Uuid::now_v7().to_string(), now_ms(), kind)
}

/// Cuts text to what the server accepts, on a character boundary.
pub fn clip(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_string();
    }
    let mut end = MAX_TEXT - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The outcome of one authentication, as the login engine (online or offline) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRecord {
    pub user: String,
    pub client_id: String,
    pub service: Option<String>,
    pub rhost: Option<String>,
    pub tty: Option<String>,
    pub success: bool,
    /// False when the offline path decided.
    pub online: bool,
    /// `otp`, `push`, `fido2`, `smartcard`, `offline_qr` … when known.
    pub method: Option<String>,
    /// Why it failed (the text shown to the person; offline, what the store decided).
    pub reason: Option<String>,
    /// When it was decided, when not now (offline outcomes carry the agent's clock).
    pub at_ms: Option<i64>,
}

pub struct Events {
    db: Arc<AgentDb>,
    spool: Arc<spool::Spool>,
    /// Authentication events, in group commits.
    auth_writer: writer::AuthWriter,
    /// Rung when something was spooled, so the uploader need not poll.
    wake: Notify,
}

impl Events {
    pub fn open(db: Arc<AgentDb>, limits: spool::Limits) -> Result<Events, AgentDbError> {
        let spool = Arc::new(spool::Spool::open(&db, limits)?);
        let auth_writer =
            writer::AuthWriter::start(db.clone(), spool.clone()).map_err(AgentDbError::Thread)?;
        Ok(Events {
            db,
            spool,
            auth_writer,
            wake: Notify::new(),
        })
    }

    pub fn db(&self) -> &AgentDb {
        &self.db
    }

    pub fn spool(&self) -> &spool::Spool {
        &self.spool
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    /// Spools one event; durable when this returns Ok.
    pub fn record(&self, e: Event) -> Result<(), AgentDbError> {
        self.record_with(&[e], |_| Ok(()))
    }

    /// Spools events and, in the same transaction, whatever `also` writes (a journal cursor,
    /// a session row): both are on disk, or neither.
    pub fn record_with(
        &self,
        events: &[Event],
        also: impl FnOnce(&Connection) -> Result<(), AgentDbError>,
    ) -> Result<(), AgentDbError> {
        self.spool.push_with(&self.db, events, also)?;
        self.wake.notify_one();
        Ok(())
    }

    /// Moves offline login outcomes an agent before this version left in `offline_events`
    /// into the spool, keeping their UUIDs, in one transaction: each moves once. Run once at
    /// start; nothing writes that table any more (outcomes go through [`Events::auth_all`]).
    pub fn import_legacy_offline(&self) -> Result<usize, AgentDbError> {
        let rows: Vec<(String, i64, String, String, String, String, String)> = {
            let conn = self.db.conn();
            let mut stmt = conn.prepare_cached(
                "SELECT uuid, time, user_name, client_id, method, outcome, reason \
                 FROM offline_events ORDER BY time, uuid LIMIT 1000",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        if rows.is_empty() {
            return Ok(0);
        }
        let mut events = Vec::with_capacity(rows.len());
        for (uuid, time, user, client_id, method, outcome, reason) in &rows {
            let kind = if outcome == "success" {
                EventKind::AuthSuccess
            } else {
                EventKind::AuthFailure
            };
            let mut e = new_event(kind);
            if uuid::Uuid::parse_str(uuid).is_ok() {
                e.id = uuid.clone();
            }
            // Seconds (the offline module's clock); milliseconds pass through.
            e.time_ms = if *time > 100_000_000_000 {
                *time
            } else {
                time * 1000
            };
            e.user = Some(user.clone());
            e.client_id = Some(client_id.clone());
            e.method = Some(method.clone());
            e.online = Some(false);
            if !reason.is_empty() {
                e.reason = Some(clip(reason));
            }
            events.push(e);
        }
        let n = events.len();
        self.record_with(&events, |c| {
            let mut stmt = c.prepare_cached("DELETE FROM offline_events WHERE uuid = ?1")?;
            for r in &rows {
                stmt.execute([&r.0])?;
            }
            Ok(())
        })?;
        Ok(n)
    }

    /// Records an authentication result (and an `unlock` event for a successful unlock);
    /// returns once they are on disk, sharing the fsync with logins that finish meanwhile.
    /// A spool failure is logged, never turned into a login decision.
    pub async fn auth(&self, a: &AuthRecord) {
        self.auth_all(std::slice::from_ref(a)).await
    }

    /// [`Events::auth`] for several outcomes of one login step, in one write.
    pub async fn auth_all(&self, records: &[AuthRecord]) {
        let mut events = Vec::with_capacity(records.len() + 1);
        for a in records {
            auth_events(a, &mut events);
        }
        let Some(user) = records.first().map(|a| a.user.as_str()) else {
            return;
        };
        match self.auth_writer.write(events).await {
            Ok(()) => self.wake.notify_one(),
            Err(err) => {
                tracing::error!(error = %err, user, "authentication event NOT spooled")
            }
        }
    }
}

fn auth_events(a: &AuthRecord, out: &mut Vec<Event>) {
    let kind = if a.success {
        EventKind::AuthSuccess
    } else {
        EventKind::AuthFailure
    };
    let mut e = new_event(kind);
    if let Some(t) = a.at_ms {
        e.time_ms = t;
    }
    e.user = Some(a.user.clone());
    e.client_id = Some(a.client_id.clone());
    e.service = a.service.clone();
    e.rhost = a.rhost.clone();
    e.tty = a.tty.clone();
    e.online = Some(a.online);
    e.method = a.method.clone();
    e.reason = a.reason.as_deref().map(clip);
    if a.success && a.client_id == "unlock" {
        let mut u = new_event(EventKind::Unlock);
        u.time_ms = e.time_ms;
        u.user = e.user.clone();
        u.client_id = e.client_id.clone();
        u.service = e.service.clone();
        u.rhost = e.rhost.clone();
        u.tty = e.tty.clone();
        u.online = e.online;
        u.method = e.method.clone();
        out.push(e);
        out.push(u);
    } else {
        out.push(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: spool::Limits = spool::Limits {
        cap: 1000,
        caller_quota: 10,
    };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logins_that_finish_together_are_each_on_disk_when_auth_returns() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(AgentDb::open(dir.path()).unwrap());
        let ev = Arc::new(Events::open(db, LIMITS).unwrap());
        let mut set = tokio::task::JoinSet::new();
        for i in 0..40 {
            let ev = ev.clone();
            set.spawn(async move {
                ev.auth(&AuthRecord {
                    user: format!("u{i}"),
                    client_id: if i % 4 == 0 { "unlock" } else { "login" }.into(),
                    service: None,
                    rhost: None,
                    tty: None,
                    success: true,
                    online: true,
                    method: Some("otp".into()),
                    reason: None,
                    at_ms: None,
                })
                .await;
            });
        }
        while let Some(done) = set.join_next().await {
            done.unwrap();
        }
        drop(ev);
        // Read back through a connection of its own: committed, not just queued.
        let again = Events::open(Arc::new(AgentDb::open(dir.path()).unwrap()), LIMITS).unwrap();
        let spooled = again.spool().batch(again.db(), 100).unwrap();
        let auth: std::collections::HashSet<_> = spooled
            .iter()
            .filter(|e| e.kind == EventKind::AuthSuccess)
            .filter_map(|e| e.user.clone())
            .collect();
        let unlocks = spooled
            .iter()
            .filter(|e| e.kind == EventKind::Unlock)
            .count();
        assert_eq!((auth.len(), unlocks, spooled.len()), (40, 10, 50));
    }

    #[test]
    fn legacy_offline_outcomes_move_into_the_spool_once_with_their_ids() {
        let db = Arc::new(AgentDb::in_memory().unwrap());
        let ev = Events::open(db.clone(), LIMITS).unwrap();
        let id = "7f0c7e36-5d2b-4a4b-9a55-2f6d3c1b8e11";
        db.conn()
            .execute(
                "INSERT INTO offline_events (uuid, time, user_name, client_id, method, outcome, reason) \
                 VALUES (?1, 1700000000, 'ann', 'login', 'app_qr', 'failure', 'wrong code')",
                [id],
            )
            .unwrap();
        assert_eq!(ev.import_legacy_offline().unwrap(), 1);
        assert_eq!(ev.import_legacy_offline().unwrap(), 0);
        let spooled = ev.spool().batch(ev.db(), 10).unwrap();
        assert_eq!(spooled.len(), 1);
        let e = &spooled[0];
        assert_eq!(e.id, id);
        assert_eq!(e.kind, EventKind::AuthFailure);
        assert_eq!(e.online, Some(false));
        assert_eq!(e.time_ms, 1_700_000_000_000);
        assert_eq!(e.method.as_deref(), Some("app_qr"));
        assert_eq!(e.reason.as_deref(), Some("wrong code"));
    }
}
