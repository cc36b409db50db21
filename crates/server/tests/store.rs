//! The store on a real SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey_server::store::{AuditRecord, Store};

/// A store on a fresh SQLite file; keep the directory alive as long as the store.
async fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite").display().to_string())
        .await
        .unwrap();
    (dir, store)
}

#[tokio::test]
async fn audit_batches_larger_than_one_statement_are_written_whole_and_in_order() {
    let (_dir, store) = temp_store().await;
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
    // A user's listing (through its index) keeps the newest records, oldest first.
    let last = store.audit_query(Some("alice"), None, 3).await.unwrap();
    let details: Vec<_> = last.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["line 244", "line 246", "line 248"]);
    store.close().await;
}

/// Transactions are purged by their id, which begins with their creation time: the ones
/// created more than an hour (the longest lifetime) plus the grace ago go, the others stay.
#[tokio::test]
async fn purge_removes_transactions_by_creation_time() {
    use latchkey_server::store::{NewTx, tx_id};
    let (_dir, store) = temp_store().await;
    let now = 1_800_000_000i64;
    let grace = 600;
    let cut = now - grace - 3600;
    let created = [
        ("ancient", cut - 86_400),
        ("just_before", cut - 1),
        ("at_cut", cut),
        ("recent", now - 5),
    ];
    let mut ids = Vec::new();
    for (i, (name, at)) in created.iter().enumerate() {
        let id = tx_id(*at as u64 * 1000 + 999, &[0xff - i as u8; 16]);
        store
            .tx_create(&NewTx {
                id: &id,
                user_name: name,
                client_id: "login",
                machine_id: "m1",
                rhost: None,
                tty: None,
                now: *at,
                expires_at: at + 120,
            })
            .await
            .unwrap();
        ids.push((*name, id));
    }
    assert_eq!(store.tx_purge(now, grace).await.unwrap(), 2);
    for (name, id) in &ids {
        let kept = store.tx_get(id).await.unwrap().is_some();
        assert_eq!(
            kept,
            !name.contains("before") && *name != "ancient",
            "{name}"
        );
    }
    store.close().await;
}

#[tokio::test]
async fn purge_removes_expired_fido2_login_challenges_and_keeps_live_ones() {
    let (_dir, store) = temp_store().await;
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

/// The WAL's checkpoint sequence number (bytes 12..16 of its header, big-endian): SQLite
/// adds one each time the WAL file starts over.
fn wal_restarts(db: &std::path::Path) -> u32 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let head = std::fs::read(&wal).unwrap_or_default();
    head.get(12..16)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

/// Under a steady stream of commits and reads, the periodic checkpoint still lets the WAL
/// file start over, so it stays bounded. (A checkpoint from a reader alone never caught up
/// with the writer: the WAL grew by hundreds of MB under load.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_keep_the_wal_bounded_under_steady_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let store = Store::open(&db.display().to_string()).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..6 {
        let (store, stop) = (store.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if w % 3 == 2 {
                    store.user_get("nobody").await.unwrap();
                } else {
                    let r = AuditRecord {
                        time: n as i64,
                        actor: format!("machine:w{w}"),
                        action: "login.otp".into(),
                        user: Some(format!("user{}", n % 500)),
                        client_id: Some("login".into()),
                        result: "ok".into(),
                        detail: "x".repeat(200),
                    };
                    store.audit_insert(&[r]).await.unwrap();
                }
                n += 1;
            }
            n
        }));
    }
    let before = wal_restarts(&db);
    for _ in 0..10 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        store.checkpoint().await.unwrap();
    }
    // One more write after the last checkpoint: a restart happens at the start of a write.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut ops = 0;
    for t in tasks {
        ops += t.await.unwrap();
    }
    let restarts = wal_restarts(&db).wrapping_sub(before);
    assert!(ops > 1_000, "the workload barely ran ({ops} operations)");
    assert!(
        restarts >= 5,
        "the WAL started over only {restarts} times in 10 checkpoints under load"
    );
    store.close().await;
}
