//! A session opened under a PAM `client_id=` override is recorded, and locked, under that
//! context's rule, not the service's default context: a real latchkeyd, a real agent, the
//! real PAM module in the real libpam.

use crate::support::local::lock_agent;
use crate::support::run_blocking;
use latchkey_proto::events::SessionInfo;
use latchkey_testkit::TestServer;
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::local::{recorded_locks, wait_until};
use latchkey_testkit::pam_harness::{PamCode, PamConfDir, PamHarness};
use std::time::Duration;

/// Opens a session through libpam for `service`, the module line carrying `extra` options.
async fn pam_open(agent: &TestAgent, service: &str, extra: &[&str], user: &str, id: &str) {
    let socket = format!("socket={}", agent.socket.display());
    let mut args = vec![socket.as_str()];
    args.extend_from_slice(extra);
    let conf = PamConfDir::latchkey(service, &args).unwrap();
    let (service, user, id) = (service.to_string(), user.to_string(), id.to_string());
    run_blocking(move || {
        let mut pam = PamHarness::new(&service, &user, conf.path()).unwrap();
        pam.putenv("XDG_SESSION_ID", &id).unwrap();
        assert_eq!(pam.open_session(0), PamCode::SUCCESS);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_under_a_client_id_override_gets_that_contexts_lock_rule() {
    let srv = TestServer::start().await.unwrap();
    // Only `elevation` limits its sessions; `login` (the default context of the service
    // `login`) does not.
    srv.set_policy("elevation", &[("session.max_hours", "2s")])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (agent, log) = lock_agent(&srv, dir.path(), None).await;

    pam_open(&agent, "login", &["client_id=elevation"], "ann", "s1").await;
    // The same service without the override: the `login` context, no limit.
    pam_open(&agent, "login", &[], "ben", "s2").await;

    wait_until(10, "the lock", || async {
        !recorded_locks(&log).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(recorded_locks(&log), vec!["ann s1".to_string()]);

    let admin = srv.admin().unwrap();
    wait_until(10, "both sessions on the server", || async {
        let s: Vec<SessionInfo> = admin.get("/v1/admin/sessions").await.unwrap();
        s.len() == 2
    })
    .await;
    let open: Vec<SessionInfo> = admin.get("/v1/admin/sessions").await.unwrap();
    let ann = open.iter().find(|s| s.user == "ann").unwrap();
    assert_eq!(ann.client_id.as_deref(), Some("elevation"));
    assert_eq!(ann.expires_at, Some(ann.opened_at + 2));
    let ben = open.iter().find(|s| s.user == "ben").unwrap();
    assert_eq!(ben.client_id.as_deref(), Some("login"));
    assert!(ben.expires_at.is_none());
}
