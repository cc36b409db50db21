//! The event spool: a durable FIFO in the agent's state database. An event is written (and
//! fsync'd: WAL with synchronous=FULL) before anything else happens with it, and deleted
//! only when a server acknowledged it.
//!
//! Size cap: past `cap` events the spool drops down to 90 % of the cap, the oldest journal
//! entries first, then the oldest of the rest, and records the drop as an event of its own.
//! Dropping to 90 % (not to the cap) keeps a full spool from adding one drop event per
//! new event.

use crate::state::{StateDb, StateError};
use latchkey_proto::events::{Event, EventKind};
use rusqlite::{Connection, params};
use std::sync::atomic::{AtomicI64, Ordering};

/// Bytes of events in one upload at most (the server accepts 4 MiB).
pub const MAX_BATCH_BYTES: usize = 1 << 20;

pub struct Spool {
    /// Rows in the table, kept beside it so the cap costs no COUNT(*) per event.
    count: AtomicI64,
    cap: i64,
}

fn insert(conn: &Connection, e: &Event) -> Result<(), StateError> {
    let body = serde_json::to_string(e)
        .map_err(|err| StateError::Sql(rusqlite::Error::ToSqlConversionFailure(Box::new(err))))?;
    conn.execute(
        "INSERT INTO event_spool (id, low, body) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
        params![e.id, e.kind.is_low_priority() as i64, body],
    )?;
    Ok(())
}

impl Spool {
    pub fn open(db: &StateDb, cap: usize) -> Result<Spool, StateError> {
        let n: i64 = db
            .conn()
            .query_row("SELECT COUNT(*) FROM event_spool", [], |r| r.get(0))?;
        Ok(Spool {
            count: AtomicI64::new(n),
            cap: i64::try_from(cap).unwrap_or(i64::MAX),
        })
    }

    pub fn len(&self) -> i64 {
        self.count.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes `e` together with whatever `also` writes, in one transaction.
    pub fn push_with(
        &self,
        db: &StateDb,
        events: &[Event],
        also: impl FnOnce(&Connection) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let conn = db.conn();
        let tx = conn.unchecked_transaction()?;
        let before: i64 = tx.query_row("SELECT total_changes()", [], |r| r.get(0))?;
        for e in events {
            insert(&tx, e)?;
        }
        let after: i64 = tx.query_row("SELECT total_changes()", [], |r| r.get(0))?;
        also(&tx)?;
        tx.commit()?;
        let added = after - before;
        let n = self.count.fetch_add(added, Ordering::SeqCst) + added;
        if n > self.cap {
            self.enforce_cap(&conn)?;
        }
        Ok(())
    }

    fn enforce_cap(&self, conn: &Connection) -> Result<(), StateError> {
        let target = self.cap - self.cap / 10;
        let tx = conn.unchecked_transaction()?;
        let n: i64 = tx.query_row("SELECT COUNT(*) FROM event_spool", [], |r| r.get(0))?;
        let mut excess = n - target;
        if excess <= 0 {
            self.count.store(n, Ordering::SeqCst);
            return Ok(());
        }
        let low = tx.execute(
            "DELETE FROM event_spool WHERE seq IN (SELECT seq FROM event_spool WHERE low = 1 ORDER BY seq LIMIT ?1)",
            [excess],
        )? as i64;
        excess -= low;
        let high = if excess > 0 {
            tx.execute(
                "DELETE FROM event_spool WHERE seq IN (SELECT seq FROM event_spool ORDER BY seq LIMIT ?1)",
                [excess],
            )? as i64
        } else {
            0
        };
        let mut drop_event = super::new_event(EventKind::SpoolDropped);
        drop_event
            .fields
            .insert("dropped".into(), (low + high).to_string());
        drop_event
            .fields
            .insert("dropped_low_priority".into(), low.to_string());
        drop_event.reason = Some(format!("spool full ({} events)", self.cap));
        insert(&tx, &drop_event)?;
        tx.commit()?;
        self.count.store(n - low - high + 1, Ordering::SeqCst);
        tracing::warn!(
            dropped = low + high,
            journal = low,
            "event spool full: oldest events dropped"
        );
        Ok(())
    }

    /// The oldest events, at most `limit` and about `MAX_BATCH_BYTES`.
    pub fn batch(&self, db: &StateDb, limit: usize) -> Result<Vec<Event>, StateError> {
        let conn = db.conn();
        let mut stmt = conn.prepare_cached("SELECT body FROM event_spool ORDER BY seq LIMIT ?1")?;
        let rows = stmt.query_map([limit as i64], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        let mut bytes = 0;
        for body in rows {
            let body = body?;
            bytes += body.len();
            if bytes > MAX_BATCH_BYTES && !out.is_empty() {
                break;
            }
            match serde_json::from_str::<Event>(&body) {
                Ok(e) => out.push(e),
                Err(err) => {
                    // Cannot happen short of disk corruption; an unreadable row would block
                    // the spool forever, so it goes (and says so).
                    tracing::error!(error = %err, "unreadable event in the spool; deleting it");
                    conn.execute("DELETE FROM event_spool WHERE body = ?1", [&body])?;
                    self.count.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        Ok(out)
    }

    /// Deletes acknowledged events.
    pub fn ack(&self, db: &StateDb, ids: &[String]) -> Result<(), StateError> {
        let conn = db.conn();
        let tx = conn.unchecked_transaction()?;
        let mut n = 0i64;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM event_spool WHERE id = ?1")?;
            for id in ids {
                n += stmt.execute([id])? as i64;
            }
        }
        tx.commit()?;
        self.count.fetch_sub(n, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::new_event;

    #[test]
    fn acked_events_go_and_others_stay_in_order() {
        let db = StateDb::in_memory().unwrap();
        let spool = Spool::open(&db, 1000).unwrap();
        let evs: Vec<Event> = (0..5).map(|_| new_event(EventKind::Logon)).collect();
        for e in &evs {
            spool
                .push_with(&db, std::slice::from_ref(e), |_| Ok(()))
                .unwrap();
        }
        // A second write of the same id is no second row.
        spool.push_with(&db, &evs[..1], |_| Ok(())).unwrap();
        assert_eq!(spool.len(), 5);
        let b = spool.batch(&db, 3).unwrap();
        assert_eq!(b, evs[..3].to_vec());
        spool
            .ack(&db, &[evs[0].id.clone(), evs[2].id.clone()])
            .unwrap();
        let ids: Vec<String> = spool
            .batch(&db, 10)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(
            ids,
            vec![evs[1].id.clone(), evs[3].id.clone(), evs[4].id.clone()]
        );
        assert_eq!(spool.len(), 3);
    }

    #[test]
    fn a_full_spool_drops_journal_entries_first_and_says_so() {
        let db = StateDb::in_memory().unwrap();
        let spool = Spool::open(&db, 100).unwrap();
        let mut auth = Vec::new();
        for i in 0..101 {
            let kind = if i % 2 == 0 {
                EventKind::AuthFailure
            } else {
                EventKind::Journal
            };
            let e = new_event(kind);
            if kind == EventKind::AuthFailure {
                auth.push(e.id.clone());
            }
            spool.push_with(&db, &[e], |_| Ok(())).unwrap();
        }
        // 101 > 100: down to 90 (11 journal entries dropped), plus the drop event.
        assert_eq!(spool.len(), 91);
        let all = spool.batch(&db, 1000).unwrap();
        assert_eq!(all.len(), 91);
        let kept: Vec<&String> = all
            .iter()
            .filter(|e| e.kind == EventKind::AuthFailure)
            .map(|e| &e.id)
            .collect();
        assert_eq!(kept.len(), auth.len(), "no authentication event dropped");
        let drop = all.last().unwrap();
        assert_eq!(drop.kind, EventKind::SpoolDropped);
        assert_eq!(drop.fields["dropped"], "11");
        assert_eq!(drop.fields["dropped_low_priority"], "11");
    }
}
