//! The store on a real SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey_server::store::{AuditRecord, Store};

#[tokio::test]
async fn audit_batches_larger_than_one_statement_are_written_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite").display().to_string())
        .await
        .unwrap();
    let batch: Vec<AuditRecord> = (0..250)
        .map(|i| AuditRecord {
            time: 1_000 + i,
            actor: "admin".into(),
            action: "test".into(),
            user: (i % 2 == 0).then(|| "alice".to_string()),
            client_id: None,
            result: "ok".into(),
            detail: format!("line {i}"),
        })
        .collect();
    store.audit_insert(&batch).await.unwrap();
    let all = store.audit_query(None, None, 10_000).await.unwrap();
    assert_eq!(all.len(), 250);
    assert!(
        all.windows(2)
            .all(|w| w[0].id < w[1].id && w[0].time < w[1].time)
    );
    assert_eq!(all[249].detail, "line 249");
    let alice = store
        .audit_query(Some("alice"), Some(1_100), 10_000)
        .await
        .unwrap();
    assert_eq!(alice.len(), 75);
    store.close().await;
}

#[tokio::test]
async fn purge_removes_expired_fido2_login_challenges_and_keeps_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite").display().to_string())
        .await
        .unwrap();
    store
        .fido2_challenge_create("old", "c1", "latchkey", 1_000)
        .await
        .unwrap();
    store
        .fido2_challenge_create("live", "c2", "latchkey", 9_000)
        .await
        .unwrap();
    store.tx_purge(5_000, 100).await.unwrap();
    assert!(store.fido2_challenge_get("old").await.unwrap().is_none());
    assert_eq!(
        store.fido2_challenge_get("live").await.unwrap(),
        Some(("c2".to_string(), "latchkey".to_string()))
    );
    store.close().await;
}
