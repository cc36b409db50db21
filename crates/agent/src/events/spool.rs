//! The event spool: a durable FIFO in the agent's state database. An event is written (and
//! fsync'd: WAL with synchronous=FULL) before anything else happens with it, and deleted
//! only when a server acknowledged it.
//!
//! Size cap: past `cap` events the spool drops down to 90 % of the cap and records the drop
//! as an event of its own. Dropping to 90 % (not to the cap) keeps a full spool from adding
//! one drop event per new event. What goes first is set by [`Tier`]: journal entries, then
//! what unprivileged local callers reported, then the agent's other records, and only then
//! authentication outcomes; within a tier, the oldest events of whoever holds the most (see
//! [`fair_cuts`]), so one user's flood drops that user's own events.
//!
//! Per-uid quota: an unprivileged caller (a local user reporting a session of its own) may
//! have at most `caller_quota` events waiting; past it its reports are refused, checked and
//! written in one transaction.

use crate::agent_db::{AgentDb, AgentDbError};
use latchkey_proto::events::{Event, EventKind};
use rusqlite::{Connection, params};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};

/// Bytes of events in one upload at most (the server accepts 4 MiB).
pub const MAX_BATCH_BYTES: usize = 1 << 20;

/// Which events a full spool drops first: lower tiers before higher ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Journal = 0,
    /// Reported by an unprivileged local caller: its claim, not the agent's observation.
    CallerReported = 1,
    /// Sessions reported by root's PAM stacks, session locks.
    Agent = 2,
    /// Authentication outcomes the agent recorded itself (online and offline), and the
    /// spool's own drop records: the evidence that must outlive everything else.
    Authentication = 3,
}

impl Tier {
    const ALL: [Tier; 4] = [
        Tier::Journal,
        Tier::CallerReported,
        Tier::Agent,
        Tier::Authentication,
    ];

    /// The tier of an event and whose it is within the tier (a caller's uid, an
    /// authenticated user; None where nobody owns it).
    pub fn of(e: &Event) -> (Tier, Option<String>) {
        if let Some(uid) = e.reported_by_uid {
            return (Tier::CallerReported, Some(uid.to_string()));
        }
        match e.kind {
            EventKind::Journal => (Tier::Journal, None),
            EventKind::AuthSuccess | EventKind::AuthFailure | EventKind::Unlock => {
                (Tier::Authentication, e.user.clone())
            }
            EventKind::SpoolDropped => (Tier::Authentication, None),
            EventKind::Logon | EventKind::Logoff | EventKind::SessionLock => (Tier::Agent, None),
        }
    }
}

/// The spool's bounds (`[events]` `spool_max`, `caller_quota`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub cap: usize,
    /// Events one unprivileged uid may have waiting; 0 refuses every report of theirs.
    pub caller_quota: usize,
}

pub struct Spool {
    /// Rows in the table, kept beside it so the cap costs no COUNT(*) per event.
    count: AtomicI64,
    cap: i64,
    caller_quota: i64,
}

fn insert(conn: &Connection, e: &Event) -> Result<(), AgentDbError> {
    let body = serde_json::to_string(e)
        .map_err(|err| AgentDbError::Sql(rusqlite::Error::ToSqlConversionFailure(Box::new(err))))?;
    let (tier, owner) = Tier::of(e);
    conn.execute(
        "INSERT INTO event_spool (id, low, tier, owner, body) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (id) DO NOTHING",
        params![
            e.id,
            (tier == Tier::Journal) as i64,
            tier as i64,
            owner,
            body
        ],
    )?;
    Ok(())
}

/// How many events to drop from each group (of `counts` events each) to drop `need` in
/// all, taking from the largest groups first until they are level: the fewest events of
/// the groups that hold the fewest.
pub fn fair_cuts(counts: &[i64], need: i64) -> Vec<i64> {
    let total: i64 = counts.iter().sum();
    if need >= total {
        return counts.to_vec();
    }
    let cut_to = |level: i64| counts.iter().map(|c| (c - level).max(0)).sum::<i64>();
    // The lowest level to which cutting every group drops at most `need`.
    let (mut lo, mut hi) = (0, counts.iter().copied().max().unwrap_or(0));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if cut_to(mid) <= need {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let mut cuts: Vec<i64> = counts.iter().map(|c| (c - lo).max(0)).collect();
    // Fewer than the groups at that level remain: one more from each of the first ones.
    let mut left = need - cut_to(lo);
    for (c, cut) in counts.iter().zip(cuts.iter_mut()) {
        if left == 0 {
            break;
        }
        if *c >= lo && lo > 0 {
            *cut += 1;
            left -= 1;
        }
    }
    cuts
}

/// Drops up to `need` events of `tier`, fairly between their owners, oldest first within
/// each; how many went.
fn drop_fairly(conn: &Connection, tier: Tier, need: i64) -> Result<i64, AgentDbError> {
    let groups: Vec<(Option<String>, i64)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT owner, COUNT(*) FROM event_spool WHERE tier = ?1 GROUP BY owner",
        )?;
        let rows = stmt.query_map([tier as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let counts: Vec<i64> = groups.iter().map(|g| g.1).collect();
    let mut dropped = 0;
    for ((owner, _), cut) in groups.iter().zip(fair_cuts(&counts, need)) {
        if cut > 0 {
            dropped += conn.execute(
                "DELETE FROM event_spool WHERE seq IN (SELECT seq FROM event_spool \
                 WHERE tier = ?1 AND owner IS ?2 ORDER BY seq LIMIT ?3)",
                params![tier as i64, owner, cut],
            )? as i64;
        }
    }
    Ok(dropped)
}

impl Spool {
    pub fn open(db: &AgentDb, limits: Limits) -> Result<Spool, AgentDbError> {
        let n: i64 = db
            .conn()
            .query_row("SELECT COUNT(*) FROM event_spool", [], |r| r.get(0))?;
        Ok(Spool {
            count: AtomicI64::new(n),
            cap: i64::try_from(limits.cap).unwrap_or(i64::MAX),
            caller_quota: i64::try_from(limits.caller_quota).unwrap_or(i64::MAX),
        })
    }

    pub fn len(&self) -> i64 {
        self.count.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes `e` together with whatever `also` writes, in one transaction. Events reported
    /// by an unprivileged caller are refused (nothing is written) when they would take its
    /// uid past the quota.
    pub fn push_with(
        &self,
        db: &AgentDb,
        events: &[Event],
        also: impl FnOnce(&Connection) -> Result<(), AgentDbError>,
    ) -> Result<(), AgentDbError> {
        let conn = db.conn();
        let tx = conn.unchecked_transaction()?;
        self.check_quota(&tx, events)?;
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

    /// Runs inside the writing transaction (the connection's lock is held), so two
    /// reports of one uid cannot both pass on the same last free place.
    fn check_quota(&self, conn: &Connection, events: &[Event]) -> Result<(), AgentDbError> {
        let mut new: BTreeMap<u32, i64> = BTreeMap::new();
        for uid in events.iter().filter_map(|e| e.reported_by_uid) {
            *new.entry(uid).or_default() += 1;
        }
        for (uid, n) in new {
            let waiting: i64 = conn.query_row(
                "SELECT COUNT(*) FROM event_spool WHERE tier = ?1 AND owner = ?2",
                params![Tier::CallerReported as i64, uid.to_string()],
                |r| r.get(0),
            )?;
            if waiting + n > self.caller_quota {
                return Err(AgentDbError::OverQuota {
                    uid,
                    quota: self.caller_quota,
                });
            }
        }
        Ok(())
    }

    fn enforce_cap(&self, conn: &Connection) -> Result<(), AgentDbError> {
        let target = self.cap - self.cap / 10;
        let tx = conn.unchecked_transaction()?;
        let n: i64 = tx.query_row("SELECT COUNT(*) FROM event_spool", [], |r| r.get(0))?;
        let mut excess = n - target;
        if excess <= 0 {
            self.count.store(n, Ordering::SeqCst);
            return Ok(());
        }
        let mut dropped = [0i64; Tier::ALL.len()];
        for tier in Tier::ALL {
            if excess <= 0 {
                break;
            }
            let d = drop_fairly(&tx, tier, excess)?;
            dropped[tier as usize] = d;
            excess -= d;
        }
        let total: i64 = dropped.iter().sum();
        let mut drop_event = super::new_event(EventKind::SpoolDropped);
        for (key, n) in [
            ("dropped", total),
            ("dropped_low_priority", dropped[Tier::Journal as usize]),
            (
                "dropped_caller_reported",
                dropped[Tier::CallerReported as usize],
            ),
            ("dropped_agent", dropped[Tier::Agent as usize]),
            (
                "dropped_authentication",
                dropped[Tier::Authentication as usize],
            ),
        ] {
            drop_event.fields.insert(key.into(), n.to_string());
        }
        drop_event.reason = Some(format!("spool full ({} events)", self.cap));
        insert(&tx, &drop_event)?;
        tx.commit()?;
        self.count.store(n - total + 1, Ordering::SeqCst);
        tracing::warn!(
            dropped = total,
            journal = dropped[Tier::Journal as usize],
            caller_reported = dropped[Tier::CallerReported as usize],
            agent = dropped[Tier::Agent as usize],
            authentication = dropped[Tier::Authentication as usize],
            "event spool full: oldest events dropped"
        );
        Ok(())
    }

    /// The oldest events, at most `limit` and about `MAX_BATCH_BYTES`.
    pub fn batch(&self, db: &AgentDb, limit: usize) -> Result<Vec<Event>, AgentDbError> {
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
    pub fn ack(&self, db: &AgentDb, ids: &[String]) -> Result<(), AgentDbError> {
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

    fn limits(cap: usize, caller_quota: usize) -> Limits {
        Limits { cap, caller_quota }
    }

    #[test]
    fn acked_events_go_and_others_stay_in_order() {
        let db = AgentDb::in_memory().unwrap();
        let spool = Spool::open(&db, limits(1000, 10)).unwrap();
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
        let db = AgentDb::in_memory().unwrap();
        let spool = Spool::open(&db, limits(100, 10)).unwrap();
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

    fn reported(uid: u32) -> Event {
        let mut e = new_event(EventKind::Logon);
        e.reported_by_uid = Some(uid);
        e
    }

    #[test]
    fn a_callers_reports_past_its_quota_are_refused_and_others_still_pass() {
        let db = AgentDb::in_memory().unwrap();
        let spool = Spool::open(&db, limits(1000, 3)).unwrap();
        for _ in 0..3 {
            spool.push_with(&db, &[reported(1000)], |_| Ok(())).unwrap();
        }
        let err = spool
            .push_with(&db, &[reported(1000)], |_| Ok(()))
            .unwrap_err();
        assert!(
            matches!(
                err,
                AgentDbError::OverQuota {
                    uid: 1000,
                    quota: 3
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("events.caller_quota"), "{err}");
        // Refused whole: what `also` would have written is not written either.
        let mut also_ran = false;
        let _ = spool.push_with(&db, &[reported(1000)], |_| {
            also_ran = true;
            Ok(())
        });
        assert!(!also_ran);
        spool.push_with(&db, &[reported(1001)], |_| Ok(())).unwrap();
        spool
            .push_with(&db, &[new_event(EventKind::Logon)], |_| Ok(()))
            .unwrap();
        assert_eq!(spool.len(), 5);
        // Once the server took them, there is room again.
        let ids: Vec<String> = spool
            .batch(&db, 2)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        spool.ack(&db, &ids).unwrap();
        spool.push_with(&db, &[reported(1000)], |_| Ok(())).unwrap();
    }

    #[test]
    fn caller_reports_and_the_agents_records_go_before_authentication_events() {
        let db = AgentDb::in_memory().unwrap();
        let spool = Spool::open(&db, limits(100, 100)).unwrap();
        let mut auth = Vec::new();
        for i in 0..30 {
            let mut e = new_event(EventKind::AuthFailure);
            e.user = Some(format!("u{}", i % 3));
            auth.push(e.id.clone());
            spool.push_with(&db, &[e], |_| Ok(())).unwrap();
        }
        for _ in 0..40 {
            spool
                .push_with(&db, &[new_event(EventKind::Logon)], |_| Ok(()))
                .unwrap();
        }
        for i in 0..200 {
            spool
                .push_with(&db, &[reported(1000 + i % 2)], |_| Ok(()))
                .unwrap();
        }
        let all = spool.batch(&db, 1000).unwrap();
        let kept = all.iter().filter(|e| auth.contains(&e.id)).count();
        assert_eq!(kept, 30, "no authentication event dropped");
        let logons = all
            .iter()
            .filter(|e| e.kind == EventKind::Logon && e.reported_by_uid.is_none())
            .count();
        assert_eq!(logons, 40, "the agent's records outlive caller reports");
        let drops: Vec<&Event> = all
            .iter()
            .filter(|e| e.kind == EventKind::SpoolDropped)
            .collect();
        assert!(!drops.is_empty());
        assert!(
            drops
                .iter()
                .all(|d| d.fields["dropped_authentication"] == "0"
                    && d.fields["dropped_agent"] == "0")
        );
        // Past the caller reports, the agent's records go, and then the largest owner's
        // authentication events.
        for _ in 0..100 {
            let mut e = new_event(EventKind::AuthFailure);
            e.user = Some("flooder".into());
            spool.push_with(&db, &[e], |_| Ok(())).unwrap();
        }
        let all = spool.batch(&db, 1000).unwrap();
        let kept = all.iter().filter(|e| auth.contains(&e.id)).count();
        assert_eq!(kept, 30, "one user's failures drop that user's own first");
    }

    #[test]
    fn fair_cuts_level_the_largest_groups_first() {
        assert_eq!(fair_cuts(&[10, 2, 5], 4), vec![4, 0, 0]);
        assert_eq!(fair_cuts(&[10, 2, 5], 7), vec![6, 0, 1]);
        assert_eq!(fair_cuts(&[3, 3, 3], 2), vec![1, 1, 0]);
        assert_eq!(fair_cuts(&[4, 1], 9), vec![4, 1]);
        assert_eq!(fair_cuts(&[7], 3), vec![3]);
        for need in 0..20 {
            let counts = [9, 1, 4, 4];
            let cuts = fair_cuts(&counts, need);
            assert_eq!(cuts.iter().sum::<i64>(), need.min(18), "{need}");
            assert!(cuts.iter().zip(counts).all(|(c, n)| *c >= 0 && *c <= n));
        }
    }
}
