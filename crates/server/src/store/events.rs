//! Agent-uploaded events and the sessions derived from them.
//!
//! Exactly once: every event row has its agent-given UUID as a UNIQUE key and a batch is
//! stored with `INSERT … ON CONFLICT (id) DO NOTHING RETURNING id` in one transaction, so a
//! batch re-sent after a lost answer stores nothing twice; session rows change only for the
//! events that were new.

use super::db::{Query, values_rows};
use super::{Result, Store, StoreError};
use super::{query, query_scalar};
use latchkey_proto::events::{Event, EventEntry, EventKind, SessionInfo};

/// Rows per INSERT statement (10 parameters each; well under SQLite's 32766).
const ROWS: usize = 200;

/// Filters of an event query.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub user: Option<String>,
    /// Machine id or hostname.
    pub machine: Option<String>,
    pub kind: Option<String>,
    /// Unix milliseconds: events that happened at or after.
    pub since_ms: Option<i64>,
    /// Only events stored after this sequence number (follow mode).
    pub after: Option<i64>,
    /// Unix milliseconds: events that happened before (the console's time range).
    pub until_ms: Option<i64>,
    pub limit: i64,
}

/// A session row (open or closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub machine_id: String,
    pub hostname: String,
    pub session_id: String,
    pub user: String,
    pub service: Option<String>,
    pub client_id: Option<String>,
    pub rhost: Option<String>,
    pub opened_at: i64,
    pub locked_at: Option<i64>,
}

impl From<SessionRow> for SessionInfo {
    fn from(r: SessionRow) -> SessionInfo {
        SessionInfo {
            machine_id: r.machine_id,
            hostname: r.hostname,
            session_id: r.session_id,
            user: r.user,
            service: r.service,
            client_id: r.client_id,
            rhost: r.rhost,
            opened_at: r.opened_at,
            expires_at: None,
            badge: None,
            badge_time: None,
            locked_at: r.locked_at,
        }
    }
}

fn touches_session(e: &Event) -> bool {
    e.session_id.is_some()
        && e.user.is_some()
        && matches!(
            e.kind,
            EventKind::Logon | EventKind::Logoff | EventKind::SessionLock
        )
}

fn insert_sql(rows: usize, returning: bool) -> String {
    let mut sql = String::from(
        "INSERT INTO events (id, machine_id, hostname, time_ms, received_at, kind, user_name, session_id, client_id, body) VALUES ",
    );
    sql.push_str(&values_rows(rows, 10));
    sql.push_str(" ON CONFLICT (id) DO NOTHING");
    if returning {
        sql.push_str(" RETURNING id");
    }
    sql
}

fn bind_event(q: Query, e: &Event, machine_id: &str, hostname: &str, now: i64) -> Result<Query> {
    let body = serde_json::to_string(e)
        .map_err(|err| StoreError::Corrupt(format!("event {}: {err}", e.id)))?;
    Ok(q.bind(e.id.clone())
        .bind(machine_id.to_string())
        .bind(hostname.to_string())
        .bind(e.time_ms)
        .bind(now)
        .bind(e.kind.as_str())
        .bind(e.user.clone())
        .bind(e.session_id.clone())
        .bind(e.client_id.clone())
        .bind(body))
}

/// The session row change of a new logon, logoff or lock event (None for other events).
fn session_change(machine_id: &str, e: &Event) -> Option<Query> {
    let (Some(session), Some(user)) = (&e.session_id, &e.user) else {
        return None;
    };
    let secs = e.time_ms.div_euclid(1000);
    match e.kind {
        EventKind::Logon => Some(
            query(
                "INSERT INTO sessions (id, machine_id, session_id, user_name, service, client_id, rhost, opened_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
            )
            .bind(e.id.clone())
            .bind(machine_id.to_string())
            .bind(session.clone())
            .bind(user.clone())
            .bind(e.service.clone())
            .bind(e.client_id.clone())
            .bind(e.rhost.clone())
            .bind(secs),
        ),
        EventKind::Logoff => Some(
            query(
                "UPDATE sessions SET closed_at = $1 WHERE machine_id = $2 AND session_id = $3 AND closed_at IS NULL",
            )
            .bind(secs)
            .bind(machine_id.to_string())
            .bind(session.clone()),
        ),
        EventKind::SessionLock => Some(
            query(
                "UPDATE sessions SET locked_at = $1 WHERE machine_id = $2 AND session_id = $3 AND closed_at IS NULL",
            )
            .bind(secs)
            .bind(machine_id.to_string())
            .bind(session.clone()),
        ),
        _ => None,
    }
}

/// One statement of a batch: a run of plain events, or one session-changing event with
/// `RETURNING` and the session change to apply when it was new.
enum Step {
    Plain(Query),
    Session(Query, Query),
}

/// An event row (`seq, machine_id, hostname, received_at, body`) read back.
fn entry_of(r: &super::Row) -> Result<EventEntry> {
    let body: String = r.try_get("body")?;
    let event: Event =
        serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("event body: {e}")))?;
    Ok(EventEntry {
        seq: r.try_get("seq")?,
        machine_id: r.try_get("machine_id")?,
        hostname: r.try_get("hostname")?,
        received_at: r.try_get("received_at")?,
        event,
    })
}

impl Store {
    /// Stores a batch of one machine's events, in order, in one transaction; returns how
    /// many were new. Runs of plain events go in multi-row INSERTs; an event that changes a
    /// session (logon, logoff, lock) goes alone, with `RETURNING`, so its session row changes
    /// only when the event is new.
    pub async fn events_insert(
        &self,
        machine_id: &str,
        hostname: &str,
        events: &[Event],
        now: i64,
    ) -> Result<u64> {
        // The statements are built here, from the borrowed batch; the transaction runs them
        // on the writer's thread.
        let mut steps = Vec::new();
        let mut i = 0;
        while i < events.len() {
            if touches_session(&events[i]) {
                let e = &events[i];
                let q = bind_event(query(insert_sql(1, true)), e, machine_id, hostname, now)?;
                match session_change(machine_id, e) {
                    Some(change) => steps.push(Step::Session(q, change)),
                    None => steps.push(Step::Plain(q)),
                }
                i += 1;
                continue;
            }
            let mut j = i;
            while j < events.len() && j - i < ROWS && !touches_session(&events[j]) {
                j += 1;
            }
            let mut q = query(insert_sql(j - i, false));
            for e in &events[i..j] {
                q = bind_event(q, e, machine_id, hostname, now)?;
            }
            steps.push(Step::Plain(q));
            i = j;
        }
        self.writer()
            .transaction(false, move |c| {
                let mut inserted = 0u64;
                for step in &steps {
                    match step {
                        Step::Plain(q) => inserted += q.execute_on(c)?.rows_affected(),
                        Step::Session(q, change) => {
                            if q.fetch_optional_on(c)?.is_some() {
                                inserted += 1;
                                change.execute_on(c)?;
                            }
                        }
                    }
                }
                Ok(inserted)
            })
            .await
    }

    /// The highest sequence number stored (0 when there is none).
    pub async fn events_max_seq(&self) -> Result<i64> {
        let v: Option<i64> = query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(self.pool())
            .await?;
        Ok(v.unwrap_or(0))
    }

    /// Events matching `f` with `seq <= upto`: the newest `limit` (oldest first) without
    /// `after`, else the first `limit` after it.
    pub async fn events_query(&self, f: &EventFilter, upto: i64) -> Result<Vec<EventEntry>> {
        let order = if f.after.is_some() { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT seq, machine_id, hostname, received_at, body FROM events \
             WHERE seq > $1 AND seq <= $2 AND ($3 IS NULL OR user_name = $3) \
             AND ($4 IS NULL OR machine_id = $4 OR hostname = $4) AND ($5 IS NULL OR kind = $5) \
             AND time_ms >= $6 AND time_ms < $8 ORDER BY seq {order} LIMIT $7"
        );
        let rows = query(&sql)
            .bind(f.after.unwrap_or(0))
            .bind(upto)
            .bind(f.user.clone())
            .bind(f.machine.clone())
            .bind(f.kind.clone())
            .bind(f.since_ms.unwrap_or(i64::MIN))
            .bind(f.limit)
            .bind(f.until_ms.unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await?;
        let mut out = rows.iter().map(entry_of).collect::<Result<Vec<_>>>()?;
        if f.after.is_none() {
            out.reverse();
        }
        Ok(out)
    }

    /// The newest `limit` authentication events of `user` (newest first): what the
    /// self-service portal lists as the user's own logins.
    pub async fn events_auth_of(&self, user: &str, limit: i64) -> Result<Vec<EventEntry>> {
        let rows = query(
            "SELECT seq, machine_id, hostname, received_at, body FROM events \
             WHERE user_name = $1 AND kind IN ('auth_success', 'auth_failure') \
             ORDER BY seq DESC LIMIT $2",
        )
        .bind(user)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(entry_of).collect()
    }

    /// The event `id` when it is `user`'s (another user's event is none).
    pub async fn event_of(&self, user: &str, id: &str) -> Result<Option<EventEntry>> {
        let row = query(
            "SELECT seq, machine_id, hostname, received_at, body FROM events \
             WHERE id = $1 AND user_name = $2",
        )
        .bind(id)
        .bind(user)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(entry_of).transpose()
    }

    /// Open sessions (all machines), oldest first.
    pub async fn sessions_open(&self, user: Option<&str>) -> Result<Vec<SessionRow>> {
        let rows = query(
            "SELECT s.machine_id, COALESCE(m.hostname, '') AS hostname, s.session_id, s.user_name, s.service, \
             s.client_id, s.rhost, s.opened_at, s.locked_at FROM sessions s LEFT JOIN machines m ON m.id = s.machine_id \
             WHERE s.closed_at IS NULL AND ($1 IS NULL OR s.user_name = $1) ORDER BY s.opened_at, s.id",
        )
        .bind(user.map(str::to_string))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SessionRow {
                    machine_id: r.try_get("machine_id")?,
                    hostname: r.try_get("hostname")?,
                    session_id: r.try_get("session_id")?,
                    user: r.try_get("user_name")?,
                    service: r.try_get("service")?,
                    client_id: r.try_get("client_id")?,
                    rhost: r.try_get("rhost")?,
                    opened_at: r.try_get("opened_at")?,
                    locked_at: r.try_get("locked_at")?,
                })
            })
            .collect()
    }

    /// Retention: deletes events stored before `cutoff` (unix seconds) and sessions closed
    /// before it. Returns the number of events deleted.
    pub async fn events_purge(&self, cutoff: i64) -> Result<u64> {
        let n = query("DELETE FROM events WHERE received_at < $1")
            .bind(cutoff)
            .execute(self.writer())
            .await?
            .rows_affected();
        query("DELETE FROM sessions WHERE closed_at IS NOT NULL AND closed_at < $1")
            .bind(cutoff)
            .execute(self.writer())
            .await?;
        Ok(n)
    }
}
