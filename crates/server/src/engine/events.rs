//! Agent events: checking and storing uploaded batches, and waking admins who follow the
//! stream. Separate from the audit log: the audit log is what this server decided; events
//! are what agents saw on their machines.

use super::{Engine, EngineError, Result, now};
use crate::store::EventFilter;
use latchkey_proto::events::{
    Event, EventKind, EventPage, EventQuery, EventsAccepted, MAX_BATCH, MAX_TEXT, RejectedEvent,
};
use std::time::{Duration, Instant};

/// Entries a listing (events, audit) returns when the request names no `limit`.
const DEFAULT_LIST: u32 = 1000;
/// Most entries one listing returns; a larger `limit` is refused, not cut silently (a
/// script that asked for more must learn that it got less).
const MAX_LIST: u32 = 10_000;

/// The `limit` of a listing: 1 to [`MAX_LIST`].
pub(super) fn listing_limit(limit: Option<u32>) -> Result<i64> {
    match limit.unwrap_or(DEFAULT_LIST) {
        n @ 1..=MAX_LIST => Ok(i64::from(n)),
        n => Err(EngineError::Invalid(format!(
            "limit must be between 1 and {MAX_LIST} (got {n}); use since/after to page"
        ))),
    }
}

/// Most fields an event may carry in `fields`.
const MAX_FIELDS: usize = 64;

fn text_ok(v: &Option<String>) -> bool {
    v.as_ref().is_none_or(|s| s.len() <= MAX_TEXT)
}

/// Why an event can never be stored, or None when it is well formed.
pub fn check(e: &Event) -> Option<String> {
    if uuid::Uuid::parse_str(&e.id).is_err() || e.id.len() != 36 {
        return Some("id is not a UUID".into());
    }
    if e.time_ms <= 0 {
        return Some("time_ms must be positive".into());
    }
    let short = [
        &e.user,
        &e.session_id,
        &e.rhost,
        &e.tty,
        &e.service,
        &e.client_id,
        &e.method,
    ];
    if short
        .iter()
        .any(|v| v.as_ref().is_some_and(|s| s.len() > 256))
    {
        return Some("a name field is longer than 256 bytes".into());
    }
    if !text_ok(&e.reason) || !text_ok(&e.message) {
        return Some(format!("reason or message is longer than {MAX_TEXT} bytes"));
    }
    if e.fields.len() > MAX_FIELDS
        || e.fields
            .iter()
            .any(|(k, v)| k.len() > 128 || v.len() > MAX_TEXT)
    {
        return Some("too many or too long fields".into());
    }
    None
}

impl Engine {
    /// Stores one machine's batch; every well-formed id is acknowledged (new or not).
    pub async fn events_ingest(
        &self,
        machine_id: &str,
        hostname: &str,
        events: Vec<Event>,
    ) -> Result<EventsAccepted> {
        if events.len() > MAX_BATCH {
            return Err(EngineError::Invalid(format!(
                "a batch holds at most {MAX_BATCH} events"
            )));
        }
        let mut good = Vec::with_capacity(events.len());
        let mut rejected = Vec::new();
        for e in events {
            match check(&e) {
                None => good.push(e),
                Some(reason) => {
                    tracing::warn!(machine = machine_id, id = %e.id, %reason, "event refused");
                    rejected.push(RejectedEvent { id: e.id, reason });
                }
            }
        }
        // The same id twice in one batch would be one row; acknowledge it once.
        let mut seen = std::collections::HashSet::new();
        good.retain(|e| seen.insert(e.id.clone()));
        let n_new = if good.is_empty() {
            0
        } else {
            self.store
                .events_insert(machine_id, hostname, &good, now())
                .await?
        };
        self.metrics
            .events(good.len() as u64, n_new, rejected.len() as u64);
        if n_new > 0 {
            self.events_hub.bump();
        }
        Ok(EventsAccepted {
            accepted: good.into_iter().map(|e| e.id).collect(),
            rejected,
            inserted: n_new,
        })
    }

    /// One page of events matching `q`; with `after` and `wait`, holds the
    /// request until something new matches or `wait` (at most a minute) passes (long poll).
    pub async fn events_page(&self, q: EventQuery) -> Result<EventPage> {
        if let Some(k) = &q.kind {
            k.parse::<EventKind>().map_err(EngineError::Invalid)?;
        }
        let limit = listing_limit(q.limit)?;
        let wait = Duration::from_secs(q.wait.unwrap_or(0).min(60));
        let f = EventFilter {
            user: q.user,
            machine: q.machine,
            kind: q.kind,
            since_ms: q.since.map(|s| s.saturating_mul(1000)),
            after: q.after,
            until_ms: None,
            limit,
        };
        self.events_follow(&f, wait).await
    }

    /// The console's listing: the newest `limit` events matching `f` (its `after` unused)
    /// stored before sequence number `before` — keyset paging, newest first.
    pub async fn events_older(
        &self,
        mut f: EventFilter,
        before: Option<i64>,
    ) -> Result<Vec<latchkey_proto::events::EventEntry>> {
        if let Some(k) = &f.kind {
            k.parse::<EventKind>().map_err(EngineError::Invalid)?;
        }
        f.after = None;
        f.limit = f.limit.clamp(1, i64::from(MAX_LIST));
        let upto = match before {
            Some(b) => b.saturating_sub(1),
            None => self.store.events_max_seq().await?,
        };
        let mut events = self.store.events_query(&f, upto).await?;
        events.reverse();
        Ok(events)
    }

    async fn events_follow(&self, f: &EventFilter, wait: Duration) -> Result<EventPage> {
        let deadline = Instant::now() + wait;
        let mut rx = self.events_hub.subscribe();
        loop {
            rx.borrow_and_update();
            let upto = self.store.events_max_seq().await?;
            let events = self.store.events_query(f, upto).await?;
            let full = events.len() as i64 >= f.limit;
            let last_seq = match events.last() {
                Some(e) if full => e.seq,
                _ => upto.max(f.after.unwrap_or(0)),
            };
            let now = Instant::now();
            if !events.is_empty() || f.after.is_none() || now >= deadline {
                return Ok(EventPage { events, last_seq });
            }
            // Another instance sharing the database does not ring our hub: look again at
            // least once a second.
            let left = (deadline - now).min(Duration::from_secs(1));
            let _ = tokio::time::timeout(left, rx.changed()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_proto::events::EventKind;

    #[test]
    fn malformed_events_are_named() {
        let ok = Event::new(
            "7f0c7e36-5d2b-4a4b-9a55-2f6d3c1b8e11".into(),
            1,
            EventKind::Logon,
        );
        assert_eq!(check(&ok), None);
        let mut bad = ok.clone();
        bad.id = "not-a-uuid".into();
        assert!(check(&bad).unwrap().contains("UUID"));
        let mut bad = ok.clone();
        bad.message = Some("x".repeat(MAX_TEXT + 1));
        assert!(check(&bad).is_some());
        let mut bad = ok;
        bad.time_ms = 0;
        assert!(check(&bad).is_some());
    }
}
