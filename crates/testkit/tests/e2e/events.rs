//! Events, sessions and session lock, end to end: a real latchkeyd, a real agent (in-process,
//! or as its own process where it gets killed), the real PAM module in the real libpam.

use crate::support::local::lock_agent;
use crate::support::run_blocking;
use latchkey_testkit::local::*;

use latchkey_proto::TokenKind;
use latchkey_proto::agent::{AgentReply, AgentRequest, SessionEvent, blocking};
use latchkey_proto::app::BadgeState;
use latchkey_proto::events::{EventEntry, EventKind, SessionInfo};
use latchkey_testkit::agent::{TestAgent, socket_login};
use latchkey_testkit::agent_process::{AgentProcess, ProcessOptions};
use latchkey_testkit::pam_harness::{PamCode, PamHarness};
use latchkey_testkit::proxy::{HoldMode, HoldProxy};
use latchkey_testkit::token_app::SoftApp;
use latchkey_testkit::{TestServer, totp_now};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn no_lock() -> String {
    format!("{FAST}[session_lock]\nenabled = false\n")
}
fn ids(evs: &[EventEntry]) -> HashSet<String> {
    evs.iter().map(|e| e.event.id.clone()).collect()
}

/// A session hook call as the PAM module makes it, straight on the socket.
fn session(socket: &Path, event: SessionEvent, user: &str, id: &str) {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    let req = AgentRequest::Session {
        event,
        user: user.parse().unwrap(),
        service: "login".into(),
        tty: Some("tty3".into()),
        rhost: None,
        session_id: Some(id.into()),
        client_id: None,
    };
    blocking::write(&mut s, &req).unwrap();
    let reply: AgentReply = blocking::read(&mut s).unwrap();
    assert_eq!(reply, AgentReply::Ack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_logoff_through_pam_arrive_once() {
    let srv = TestServer::start().await.unwrap();
    let uri = srv
        .add_user_with_token("alice", TokenKind::Totp)
        .await
        .unwrap();
    let agent = TestAgent::start_with(&srv, |s| s.config_append = no_lock())
        .await
        .unwrap();
    let conf = agent.pam_conf("login").unwrap();
    let mut pam = run_blocking(move || {
        let mut pam = PamHarness::new("login", "alice", conf.path()).unwrap();
        pam.set_rhost("10.9.8.7").unwrap();
        pam.respond_with(move |_| Some(totp_now(&uri)));
        assert_eq!(pam.authenticate(0), PamCode::SUCCESS);
        pam.putenv("XDG_SESSION_ID", "c7").unwrap();
        assert_eq!(pam.open_session(0), PamCode::SUCCESS);
        pam
    })
    .await;
    // The server derives an open session from the logon event.
    let admin = srv.admin().unwrap();
    wait_until(10, "the open session", || async {
        let s: Vec<SessionInfo> = admin.get("/v1/admin/sessions?user=alice").await.unwrap();
        s.len() == 1
    })
    .await;
    pam = run_blocking(move || {
        assert_eq!(pam.close_session(0), PamCode::SUCCESS);
        pam
    })
    .await;
    drop(pam);
    wait_until(10, "three events", || async {
        srv.events("user=alice").await.unwrap().len() >= 3
    })
    .await;
    let spool = agent.agent().unwrap().events.spool();
    wait_until(10, "an empty spool", || async { spool.is_empty() }).await;
    // Nothing arrives twice, even after more upload rounds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let evs = srv.events("user=alice").await.unwrap();
    let kinds: Vec<EventKind> = evs.iter().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::AuthSuccess, EventKind::Logon, EventKind::Logoff],
        "{evs:?}"
    );
    assert_eq!(ids(&evs).len(), 3);
    let (auth, logon, logoff) = (&evs[0].event, &evs[1].event, &evs[2].event);
    assert_eq!(auth.client_id.as_deref(), Some("login"));
    assert_eq!(auth.method.as_deref(), Some("otp"));
    assert_eq!(auth.online, Some(true));
    assert_eq!(auth.rhost.as_deref(), Some("10.9.8.7"));
    assert_eq!(logon.rhost.as_deref(), Some("10.9.8.7"));
    assert_eq!(logon.fields["logind_session"], "c7");
    assert!(logon.session_id.is_some());
    assert_eq!(logon.session_id, logoff.session_id);
    assert!(evs.iter().all(|e| e.hostname == "test-host"));
    let open: Vec<SessionInfo> = admin.get("/v1/admin/sessions?user=alice").await.unwrap();
    assert!(open.is_empty(), "{open:?}");
    // Filters: by type and machine.
    assert_eq!(srv.events("type=logon").await.unwrap().len(), 1);
    assert_eq!(
        srv.events("machine=test-host&type=logoff")
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(srv.events("machine=elsewhere").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_100_logins_while_the_server_is_down_all_arrive_once() {
    let mut srv = TestServer::start().await.unwrap();
    srv.add_user_with_token("bob", TokenKind::Totp)
        .await
        .unwrap();
    let agent = TestAgent::start_with(&srv, |s| s.config_append = no_lock())
        .await
        .unwrap();
    srv.stop().await;
    let socket = agent.socket.clone();
    run_blocking(move || {
        for _ in 0..100 {
            let steps = socket_login(&socket, "bob", "login", &[]).unwrap();
            assert!(
                matches!(
                    steps.last(),
                    Some(latchkey_proto::agent::Step::Failure { .. })
                ),
                "{steps:?}"
            );
        }
    })
    .await;
    let spool = agent.agent().unwrap().events.spool();
    srv.restart().await.unwrap();
    wait_until(20, "all 100 on the server", || async {
        srv.events("user=bob").await.unwrap().len() >= 100
    })
    .await;
    wait_until(20, "an empty spool", || async { spool.is_empty() }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let evs = srv.events("user=bob").await.unwrap();
    assert_eq!(evs.len(), 100);
    assert_eq!(ids(&evs).len(), 100);
    // No bundle: the offline module decided and recorded them; the uploader carried them.
    assert!(
        evs.iter()
            .all(|e| e.event.kind == EventKind::AuthFailure && e.event.online == Some(false)),
        "{evs:?}"
    );
}

/// `latchkey-agent run` as its own process, so it can be killed.
const RUN: ProcessOptions = ProcessOptions {
    log_level: "debug",
    nofile: None,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_during_an_upload_loses_nothing_and_repeats_nothing() {
    let srv = TestServer::start().await.unwrap();
    let proxy = HoldProxy::start(srv.info.addr, srv.info.scheme)
        .await
        .unwrap();
    let prepared = TestAgent::prepare(&srv, |s| {
        s.servers = vec![proxy.url.clone()];
        s.timeout = "60s".into();
        s.config_append = no_lock();
    })
    .await
    .unwrap();
    let agent = AgentProcess::spawn(&prepared, &RUN).await.unwrap();
    // The server looks down: 50 sessions are spooled.
    proxy.set(HoldMode::Refuse);
    let socket = prepared.socket.clone();
    run_blocking(move || {
        for i in 0..50 {
            session(&socket, SessionEvent::Open, "carl", &format!("s{i}"));
        }
    })
    .await;
    // It comes back, but its answers are held: the batch is stored, the agent not told.
    proxy.set(HoldMode::Hold);
    wait_until(20, "the batch stored on the server", || async {
        srv.events("user=carl").await.unwrap().len() == 50
    })
    .await;
    wait_until(10, "the answer held", || async { proxy.held_bytes() > 0 }).await;
    assert_eq!(
        srv.metric("latchkey_events_total{result=\"duplicate\"}")
            .await
            .unwrap(),
        0
    );
    agent.kill9().unwrap();
    proxy.set(HoldMode::Pass);
    let _agent = AgentProcess::spawn(&prepared, &RUN).await.unwrap();
    // The restarted agent sends the unacknowledged batch again; the server keeps each once.
    wait_until(20, "the re-sent batch", || async {
        srv.metric("latchkey_events_total{result=\"duplicate\"}")
            .await
            .unwrap()
            >= 50
    })
    .await;
    let socket = prepared.socket.clone();
    run_blocking(move || session(&socket, SessionEvent::Close, "carl", "s0")).await;
    wait_until(20, "the logoff", || async {
        srv.events("user=carl").await.unwrap().len() == 51
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let evs = srv.events("user=carl").await.unwrap();
    assert_eq!(evs.len(), 51);
    assert_eq!(ids(&evs).len(), 51);
    assert_eq!(
        evs.iter()
            .filter(|e| e.event.kind == EventKind::Logon)
            .count(),
        50
    );
    assert_eq!(
        srv.metric("latchkey_events_total{result=\"stored\"}")
            .await
            .unwrap(),
        51
    );
}

/// A recorded journal: 60 entries, every third one a failed sshd password at PRIORITY 4
/// (20 match the rule), the others noise.
fn recorded_journal() -> (String, Vec<String>) {
    let mut lines = String::new();
    let mut wanted = Vec::new();
    for i in 0..60 {
        let (unit, prio, msg) = if i % 3 == 0 {
            wanted.push(format!("Failed password for user{i} from 10.0.0.{i}"));
            ("sshd.service", 4, wanted.last().unwrap().clone())
        } else if i % 3 == 1 {
            ("sshd.service", 6, format!("Accepted publickey for user{i}"))
        } else {
            ("cron.service", 3, format!("Failed password for cron{i}"))
        };
        lines.push_str(
            &serde_json::json!({
                "__CURSOR": format!("s=abc;i={i:x}"),
                "__REALTIME_TIMESTAMP": format!("{}", 1_700_000_000_000_000u64 + i * 1000),
                "_SYSTEMD_UNIT": unit,
                "PRIORITY": prio.to_string(),
                "MESSAGE": msg,
            })
            .to_string(),
        );
        lines.push('\n');
    }
    (lines, wanted)
}

/// A `journalctl` stand-in: records its arguments, prints the recorded entries after the
/// `--after-cursor` one (all without it), slowly, then follows forever.
fn fake_journalctl(dir: &Path, recorded: &Path) -> PathBuf {
    let script = dir.join("journalctl");
    let args_log = dir.join("journalctl.args");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
echo "$@" >> '{args}'
cursor=""
for a in "$@"; do
  case "$a" in --after-cursor=*) cursor="${{a#--after-cursor=}}";; esac
done
started=0
[ -z "$cursor" ] && started=1
while IFS= read -r line; do
  if [ $started = 1 ]; then printf '%s\n' "$line"; sleep 0.05; fi
  case "$line" in *"\"__CURSOR\":\"$cursor\""*) started=1;; esac
done < '{recorded}'
exec sleep 30
"#,
            args = args_log.display(),
            recorded = recorded.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_rules_resume_at_the_cursor_after_a_restart() {
    let srv = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (text, wanted) = recorded_journal();
    let recorded = dir.path().join("recorded.json");
    std::fs::write(&recorded, text).unwrap();
    let script = fake_journalctl(dir.path(), &recorded);
    let config = format!(
        "{FAST}[events.journal]\n\
         command = [\"{}\", \"--follow\", \"--output=json\", \"--after-cursor={{cursor}}\"]\n\
         restart_delay = \"100ms\"\n\
         [[events.journal.rules]]\nname = \"ssh-failures\"\n\
         match = [\"_SYSTEMD_UNIT=sshd.service\", \"PRIORITY<=4\", \"MESSAGE~^Failed password for \\\\w+\"]\n\
         [session_lock]\nenabled = false\n",
        script.display()
    );
    let mut agent = TestAgent::start_with(&srv, |s| s.config_append = config)
        .await
        .unwrap();
    // Stop mid-stream (the feed takes 3 s), then start again.
    wait_until(20, "some journal events", || async {
        srv.events("type=journal").await.unwrap().len() >= 5
    })
    .await;
    agent.stop().await;
    let before = srv.events("type=journal").await.unwrap().len();
    assert!(before < 20, "the restart came mid-stream ({before} of 20)");
    agent.restart().await.unwrap();
    wait_until(30, "all journal events", || async {
        srv.events("type=journal").await.unwrap().len() >= 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let evs = srv.events("type=journal").await.unwrap();
    let messages: Vec<String> = evs
        .iter()
        .map(|e| e.event.message.clone().unwrap())
        .collect();
    assert_eq!(messages, wanted, "each matching entry once, in order");
    assert!(evs.iter().all(|e| e.event.fields["rule"] == "ssh-failures"
        && e.event.fields["_SYSTEMD_UNIT"] == "sshd.service"));
    assert_eq!(evs[0].event.time_ms, 1_700_000_000_000);
    // The second run resumed after a saved cursor.
    let args = std::fs::read_to_string(dir.path().join("journalctl.args")).unwrap();
    let runs: Vec<&str> = args.lines().collect();
    assert_eq!(runs[0], "--follow --output=json", "{args}");
    assert!(
        runs[1].starts_with("--follow --output=json --after-cursor=s=abc;i="),
        "{args}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_follower_killed_mid_stream_neither_loses_nor_repeats() {
    let srv = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (text, wanted) = recorded_journal();
    let recorded = dir.path().join("recorded.json");
    std::fs::write(&recorded, text).unwrap();
    let script = fake_journalctl(dir.path(), &recorded);
    let config = format!(
        "{FAST}[events.journal]\n\
         command = [\"{}\"]\n\
         restart_delay = \"100ms\"\n\
         [[events.journal.rules]]\nname = \"ssh-failures\"\n\
         match = [\"_SYSTEMD_UNIT=sshd.service\", \"PRIORITY<=4\", \"MESSAGE~^Failed\"]\n\
         [session_lock]\nenabled = false\n",
        script.display()
    );
    let prepared = TestAgent::prepare(&srv, |s| s.config_append = config)
        .await
        .unwrap();
    let agent = AgentProcess::spawn(&prepared, &RUN).await.unwrap();
    wait_until(20, "some journal events", || async {
        srv.events("type=journal").await.unwrap().len() >= 5
    })
    .await;
    agent.kill9().unwrap();
    let before = srv.events("type=journal").await.unwrap().len();
    assert!(before < 20, "killed mid-stream ({before} of 20)");
    let _agent = AgentProcess::spawn(&prepared, &RUN).await.unwrap();
    wait_until(30, "all journal events", || async {
        srv.events("type=journal").await.unwrap().len() >= 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages: Vec<String> = srv
        .events("type=journal")
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.message.clone().unwrap())
        .collect();
    assert_eq!(messages, wanted, "each matching entry once, in order");
    // Without a {cursor} argument the cursor is appended.
    let args = std::fs::read_to_string(dir.path().join("journalctl.args")).unwrap();
    let runs: Vec<&str> = args.lines().collect();
    assert_eq!(runs[0], "", "{args}");
    assert!(runs[1].starts_with("--after-cursor=s=abc;i="), "{args}");
}
/// Opens a session through the real libpam with a logind session id.
async fn pam_open(agent: &TestAgent, service: &str, user: &str, id: &str) {
    let conf = agent.pam_conf(service).unwrap();
    let (service, user, id) = (service.to_string(), user.to_string(), id.to_string());
    run_blocking(move || {
        let mut pam = PamHarness::new(&service, &user, conf.path()).unwrap();
        pam.putenv("XDG_SESSION_ID", &id).unwrap();
        assert_eq!(pam.open_session(0), PamCode::SUCCESS);
    })
    .await;
}

async fn lock_events(srv: &TestServer) -> Vec<(String, String)> {
    srv.events("type=session_lock")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event.user.unwrap(), e.event.reason.unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_locked_once() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy("login", &[("session.max_hours", "2s")])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (agent, log) = lock_agent(&srv, dir.path(), None).await;
    pam_open(&agent, "login", "ann", "s1").await;
    // Through sshd (the `remote` policy: no limit): never locked.
    pam_open(&agent, "sshd", "ben", "s2").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        recorded_locks(&log).is_empty(),
        "nothing expired yet: {:?}",
        recorded_locks(&log)
    );
    wait_until(10, "the lock", || async {
        !recorded_locks(&log).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(recorded_locks(&log), vec!["ann s1".to_string()]);
    wait_until(10, "the lock event", || async {
        lock_events(&srv).await == vec![("ann".to_string(), "expired".to_string())]
    })
    .await;
    let open: Vec<SessionInfo> = srv
        .admin()
        .unwrap()
        .get("/v1/admin/sessions")
        .await
        .unwrap();
    assert_eq!(open.len(), 2);
    let ann = open.iter().find(|s| s.user == "ann").unwrap();
    assert_eq!(ann.expires_at, Some(ann.opened_at + 2));
    assert!(ann.locked_at.is_some());
    assert!(
        open.iter()
            .find(|s| s.user == "ben")
            .unwrap()
            .expires_at
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badging_out_locks_that_users_session() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("cat", &[]).await.unwrap();
    srv.add_user("dan", &[]).await.unwrap();
    let app = SoftApp::register(&srv, "cat").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (agent, log) = lock_agent(&srv, dir.path(), None).await;
    pam_open(&agent, "login", "cat", "s3").await;
    pam_open(&agent, "login", "dan", "s4").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(recorded_locks(&log).is_empty());
    // Badging in locks nothing; badging out locks cat's session, not dan's.
    assert!(app.badge(BadgeState::In).await.unwrap().ok);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(recorded_locks(&log).is_empty());
    assert!(app.badge(BadgeState::Out).await.unwrap().ok);
    wait_until(10, "the lock", || async {
        !recorded_locks(&log).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(recorded_locks(&log), vec!["cat s3".to_string()]);
    wait_until(10, "the lock event", || async {
        lock_events(&srv).await == vec![("cat".to_string(), "badged_out".to_string())]
    })
    .await;
    let cat: Vec<SessionInfo> = srv
        .admin()
        .unwrap()
        .get("/v1/admin/sessions?user=cat")
        .await
        .unwrap();
    assert_eq!(cat[0].badge.as_deref(), Some("out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_lock_when_the_server_stays_unreachable() {
    let mut srv = TestServer::start().await.unwrap();
    srv.set_policy("login", &[("session.lock_when_unreachable_after", "1s")])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (agent, log) = lock_agent(&srv, dir.path(), None).await;
    pam_open(&agent, "login", "eve", "s5").await;
    pam_open(&agent, "sshd", "fay", "s6").await;
    // The agent learns the policy from an answer.
    let a = agent.agent().unwrap().clone();
    wait_until(10, "the policy learnt", || {
        let a = a.clone();
        async move {
            a.state
                .conn()
                .query_row(
                    "SELECT unreachable_after FROM session_policy WHERE client_id = 'login'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .is_ok_and(|v| v == 1)
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(recorded_locks(&log).is_empty(), "reachable: no lock");
    // The last answer came at most one poll (100 ms) before the stop began; the lock must
    // wait the policy's second from it.
    let down = Instant::now();
    srv.stop().await;
    wait_until(10, "the lock", || async {
        !recorded_locks(&log).is_empty()
    })
    .await;
    assert!(
        down.elapsed() >= Duration::from_millis(700),
        "locked {:?} after the server went away",
        down.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(recorded_locks(&log), vec!["eve s5".to_string()]);
    // Back online, the lock event arrives.
    srv.restart().await.unwrap();
    wait_until(20, "the lock event", || async {
        lock_events(&srv).await == vec![("eve".to_string(), "unreachable".to_string())]
    })
    .await;
    assert_eq!(recorded_locks(&log), vec!["eve s5".to_string()]);
}
