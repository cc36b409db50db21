//! `latchkey events` and `latchkey sessions` (the binary) against a real latchkeyd that a
//! machine uploaded events to; `--follow` sees events stored after it started.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey_proto::events::{Event, EventBatch, EventKind, EventsAccepted};
use latchkey_proto::{ErrorCode, routes};
use latchkey_testkit::TestServer;
use std::process::{Command, Stdio};

fn event(n: u32, kind: EventKind, user: &str, session: &str) -> Event {
    let mut e = Event::new(
        format!("00000000-0000-4000-8000-{n:012}"),
        1_700_000_000_000 + i64::from(n),
        kind,
    );
    e.user = Some(user.into());
    e.session_id = Some(session.into());
    e.service = Some("sshd".into());
    e.client_id = Some("remote".into());
    e.rhost = Some("10.0.0.9".into());
    e
}

fn cli(srv: &TestServer, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.env_clear()
        .env("LATCHKEY_SERVER", srv.url())
        .env("LATCHKEY_PIN", &srv.info.tls_fingerprint)
        .env("LATCHKEY_ADMIN_TOKEN", &srv.admin_token)
        .args(args);
    cmd
}

async fn run(srv: &TestServer, args: &[&str]) -> String {
    let mut cmd = cli(srv, args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_sessions_are_listed_filtered_and_followed() {
    let srv = TestServer::start().await.unwrap();
    let (_, machine) = srv.join_machine("web-7").await.unwrap();
    let batch = EventBatch {
        events: vec![
            event(1, EventKind::Logon, "alice", "k1"),
            event(2, EventKind::AuthFailure, "bob", "k2"),
            event(3, EventKind::Logon, "bob", "k3"),
        ],
    };
    let acc: EventsAccepted = machine.post(routes::EVENTS, &batch).await.unwrap();
    assert_eq!((acc.accepted.len(), acc.inserted), (3, 3));
    // The same batch again: acknowledged, nothing new.
    let again: EventsAccepted = machine.post(routes::EVENTS, &batch).await.unwrap();
    assert_eq!((again.accepted.len(), again.inserted), (3, 0));

    let all = run(&srv, &["events"]).await;
    assert_eq!(all.lines().count(), 4, "{all}");
    assert!(all.starts_with("TIME"), "{all}");
    let bob = run(&srv, &["events", "--user", "bob", "--type", "logon"]).await;
    assert_eq!(bob.lines().count(), 2, "{bob}");
    assert!(bob.contains("web-7") && bob.contains("k3") && bob.contains("from 10.0.0.9"));
    assert_eq!(
        run(&srv, &["events", "--machine", "nowhere"]).await,
        "No events.\n"
    );

    let sessions = run(&srv, &["sessions"]).await;
    assert_eq!(sessions.lines().count(), 3, "{sessions}");
    let alice = run(&srv, &["sessions", "--user", "alice", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&alice).unwrap();
    assert_eq!(v[0]["session_id"], "k1");
    assert_eq!(v[0]["hostname"], "web-7");

    // Follow: prints what is stored after it started, as JSON lines, then exits at --count.
    let mut follow = cli(
        &srv,
        &[
            "events", "--follow", "--count", "2", "--json", "--user", "alice",
        ],
    );
    follow.stdout(Stdio::piped());
    let child = follow.spawn().unwrap();
    let waiter = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let later = EventBatch {
        events: vec![
            event(4, EventKind::Logoff, "alice", "k1"),
            event(5, EventKind::Logon, "carol", "k5"),
            event(6, EventKind::Logon, "alice", "k6"),
        ],
    };
    let _: EventsAccepted = machine.post(routes::EVENTS, &later).await.unwrap();
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // alice's earlier logon is printed first (the newest page), then what followed.
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["logon", "logoff"], "{lines:?}");
    // The logoff closed alice's session k1.
    let alice = run(&srv, &["sessions", "--user", "alice"]).await;
    assert!(!alice.contains("k1") && alice.contains("k6"), "{alice}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_are_rejected_by_id_and_unknown_types_are_a_usage_error() {
    let srv = TestServer::start().await.unwrap();
    let (_, machine) = srv.join_machine("db-1").await.unwrap();
    let mut bad = event(1, EventKind::Journal, "x", "k");
    bad.id = "not-a-uuid".into();
    let good = event(2, EventKind::Journal, "x", "k");
    let acc: EventsAccepted = machine
        .post(
            routes::EVENTS,
            &EventBatch {
                events: vec![bad, good.clone()],
            },
        )
        .await
        .unwrap();
    assert_eq!(acc.accepted, vec![good.id]);
    assert_eq!(acc.rejected.len(), 1);
    assert_eq!(acc.rejected[0].id, "not-a-uuid");
    // An admin key cannot upload; a machine key cannot read.
    let err = srv
        .admin()
        .unwrap()
        .post::<_, EventsAccepted>(routes::EVENTS, &EventBatch { events: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), Some(ErrorCode::Forbidden));
    let err = machine
        .get::<serde_json::Value>(routes::ADMIN_EVENTS)
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), Some(ErrorCode::Forbidden));
    let mut cmd = cli(&srv, &["events", "--type", "login"]);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown event type"));
}
