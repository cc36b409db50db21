//! The event store on a real SQLite file: de-duplication, sessions, retention.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey_proto::events::{Event, EventKind};
use latchkey_server::store::{EventFilter, Store};

fn ev(n: u32, kind: EventKind, session: &str) -> Event {
    let mut e = Event::new(
        format!("00000000-0000-4000-8000-{n:012}"),
        1_000_000 + i64::from(n) * 1000,
        kind,
    );
    e.user = Some("alice".into());
    e.session_id = Some(session.into());
    e
}

fn all() -> EventFilter {
    EventFilter {
        limit: 10_000,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_batch_stored_twice_is_stored_once_and_sessions_follow_new_events_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite").display().to_string())
        .await
        .unwrap();
    // 450 events: more than one INSERT statement.
    let mut batch: Vec<Event> = (0..450).map(|n| ev(n, EventKind::Journal, "j")).collect();
    batch.push(ev(1000, EventKind::Logon, "s1"));
    let new = store
        .events_insert("m1", "host1", &batch, 50)
        .await
        .unwrap();
    assert_eq!(new, 451);
    let again = store
        .events_insert("m1", "host1", &batch, 60)
        .await
        .unwrap();
    assert_eq!(again, 0);
    let upto = store.events_max_seq().await.unwrap();
    assert_eq!(store.events_query(&all(), upto).await.unwrap().len(), 451);
    assert_eq!(store.sessions_open(Some("alice")).await.unwrap().len(), 1);

    // The logoff closes the session; a re-sent logon does not reopen it.
    store
        .events_insert("m1", "host1", &[ev(1001, EventKind::Logoff, "s1")], 70)
        .await
        .unwrap();
    store
        .events_insert("m1", "host1", &[ev(1000, EventKind::Logon, "s1")], 80)
        .await
        .unwrap();
    assert!(store.sessions_open(None).await.unwrap().is_empty());

    // Follow: only what came after a sequence number.
    let after = EventFilter {
        after: Some(upto),
        ..all()
    };
    let newer = store
        .events_query(&after, store.events_max_seq().await.unwrap())
        .await
        .unwrap();
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0].event.kind, EventKind::Logoff);

    // Retention counts from arrival: the first batch (stored at 50) goes, the logoff stays.
    assert_eq!(store.events_purge(65).await.unwrap(), 451);
    let left = store
        .events_query(&all(), store.events_max_seq().await.unwrap())
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    store.close().await;
}
