//! The session-lock watcher. Every `session_lock.poll_interval` it asks the servers about the
//! open local sessions (`POST /v1/sessions/state`) and runs the lock command for a session
//! when the server says it expired or its user badged out, or when no server answered for
//! longer than the policy's `session.lock_when_unreachable_after` (learnt from earlier
//! answers and kept in the state database, so it holds across restarts while offline).
//!
//! Each (session, trigger) is acted on once: the trigger is stored with the session in the
//! same transaction as the `session_lock` event. An outage ends when a server answers; the
//! next outage is a new trigger.

use super::{logind, new_event};
use crate::Agent;
use crate::sessions::{LocalSession, forget_trigger, mark_locked};
use crate::upstream::Outcome;
use latchkey_proto::events::{EventKind, LockReason, SessionStateRequest};
use rusqlite::{OptionalExtension, params};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const UNREACHABLE: &str = "unreachable";
/// The lock command may take this long.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

fn remembered_unreachable_after(agent: &Agent, client_id: &str) -> u64 {
    agent
        .state
        .conn()
        .query_row(
            "SELECT unreachable_after FROM session_policy WHERE client_id = ?1",
            [client_id],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .ok()
        .flatten()
        .map(|v| v.max(0) as u64)
        .unwrap_or(0)
}

fn remember_unreachable_after(agent: &Agent, client_id: &str, secs: u64) {
    let r = agent.state.conn().execute(
        "INSERT INTO session_policy (client_id, unreachable_after) VALUES (?1, ?2) \
         ON CONFLICT (client_id) DO UPDATE SET unreachable_after = excluded.unreachable_after",
        params![client_id, secs as i64],
    );
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot store the session policy");
    }
}

/// The lock command for one session: placeholders replaced inside each argument, so a user
/// or session name is always one argument, whatever it contains. The command runs as root:
/// a value that could read as an option (a leading `-`), or a logind id logind could not
/// have made (sessions stored before ids were checked), refuses the lock instead.
pub fn lock_argv(template: &[String], s: &LocalSession) -> crate::Result<Vec<String>> {
    if let Some(id) = &s.logind_id
        && !logind::valid_id(id)
    {
        return Err(crate::AgentError::Refused(format!(
            "refused: logind session {} {}",
            logind::shown(id),
            logind::Refusal::NotAnId
        )));
    }
    if s.user.starts_with('-') || s.lock_target().starts_with('-') {
        return Err(crate::AgentError::Refused(
            "refused: a user or session name starts with '-'".into(),
        ));
    }
    Ok(template
        .iter()
        .map(|a| {
            a.replace("{user}", &s.user)
                .replace("{session}", s.lock_target())
        })
        .collect())
}

/// A session an unprivileged user reported is checked against logind again before root
/// locks it: logind ids start again from 1 after a reboot, and the agent's rows outlive it.
fn still_theirs(agent: &Agent, s: &LocalSession) -> crate::Result<()> {
    match (s.reported_by_uid, &s.logind_id) {
        (Some(uid), Some(id)) => logind::check_owner(
            &agent.config.session_lock.logind_sessions,
            id,
            uid,
        )
        .map_err(|why| {
            crate::AgentError::Refused(format!("refused: session {} {why}", logind::shown(id)))
        }),
        _ => Ok(()),
    }
}

async fn lock(agent: &Agent, argv: &[String], s: &LocalSession, reason: LockReason, trigger: &str) {
    let argv = still_theirs(agent, s).and_then(|()| lock_argv(argv, s));
    let result = match argv.as_deref().map(|a| a.split_first()) {
        Err(why) => Err(why.to_string()),
        Ok(None) => Err("the lock command is empty".into()),
        Ok(Some((prog, args))) => {
            let child = tokio::process::Command::new(prog)
                .args(args)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .status();
            match tokio::time::timeout(COMMAND_TIMEOUT, child).await {
                Ok(Ok(st)) if st.success() => Ok(()),
                Ok(Ok(st)) => Err(format!("lock command ended with {st}")),
                Ok(Err(e)) => Err(format!("cannot run the lock command {prog:?}: {e}")),
                Err(_) => Err("lock command timed out".into()),
            }
        }
    };
    match &result {
        Ok(()) => {
            tracing::info!(user = %s.user, session = %s.lock_target(), reason = reason.as_str(), "session locked")
        }
        Err(e) => {
            tracing::error!(user = %s.user, session = %s.lock_target(), reason = reason.as_str(), error = %e, "session lock failed")
        }
    }
    let mut e = new_event(EventKind::SessionLock);
    e.user = Some(s.user.clone());
    e.session_id = Some(s.key.clone());
    e.service = Some(s.service.clone());
    e.client_id = Some(s.client_id.clone());
    e.reason = Some(reason.as_str().to_string());
    e.fields.insert("trigger".into(), trigger.to_string());
    if let Some(id) = &s.logind_id {
        e.fields.insert("logind_session".into(), id.clone());
    }
    e.fields.insert(
        "result".into(),
        match &result {
            Ok(()) => "ok".to_string(),
            Err(err) => super::clip(err),
        },
    );
    if let Err(err) = agent
        .events
        .record_with(&[e], |c| mark_locked(c, &s.key, trigger))
    {
        tracing::error!(error = %err, "session lock event NOT spooled");
    }
}

/// How long no server has answered: the shorter of the time since this watcher's last
/// answer (exact) and since any server answered anything, a login or an upload (whole
/// seconds, from the server list), so a long stretch without sessions does not count.
fn unreachable_for(agent: &Agent, last_answer: Instant) -> Duration {
    let since_start = last_answer.elapsed();
    let newest = agent
        .engine
        .server()
        .status()
        .iter()
        .filter_map(|s| s.last_contact)
        .max();
    match newest {
        Some(t) => {
            let now = super::now_ms().div_euclid(1000);
            Duration::from_secs(now.saturating_sub(t).max(0) as u64).min(since_start)
        }
        None => since_start,
    }
}

pub async fn run(agent: Arc<Agent>, mut shutdown: watch::Receiver<bool>) {
    let argv = match agent.config.session_lock.command.args() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "session lock disabled");
            return;
        }
    };
    let interval = agent.timings.lock_poll;
    let mut last_answer = Instant::now();
    loop {
        if !super::upload::pause(interval, &mut shutdown).await {
            return;
        }
        let sessions = match agent.sessions.list() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the sessions");
                continue;
            }
        };
        if sessions.is_empty() {
            continue;
        }
        let req = SessionStateRequest {
            sessions: sessions
                .iter()
                .map(|s| latchkey_proto::events::LocalSession {
                    session_id: s.key.clone(),
                    user: s.user.clone(),
                    client_id: s.client_id.clone(),
                    opened_at: s.opened_at,
                })
                .collect(),
        };
        let answer = tokio::select! {
            _ = shutdown.changed() => return,
            a = agent.engine.server().session_state(&req, &agent.config.machine_id) => a,
        };
        match answer {
            Outcome::Answer(answered) => {
                agent.engine.note_server_time(answered.server_time).await;
                let resp = answered.value;
                last_answer = Instant::now();
                if let Err(e) = forget_trigger(&agent.events, UNREACHABLE) {
                    tracing::warn!(error = %e, "cannot reset the unreachable lock trigger");
                }
                for v in resp.sessions {
                    let Some(s) = sessions.iter().find(|s| s.key == v.session_id) else {
                        continue;
                    };
                    if remembered_unreachable_after(&agent, &s.client_id)
                        != v.lock_when_unreachable_after
                    {
                        remember_unreachable_after(
                            &agent,
                            &s.client_id,
                            v.lock_when_unreachable_after,
                        );
                    }
                    for order in v.locks {
                        if !s.locks.contains(&order.trigger) {
                            lock(&agent, &argv, s, order.reason, &order.trigger).await;
                        }
                    }
                }
            }
            Outcome::Unreachable(_) | Outcome::Refused { .. } => {
                let down = unreachable_for(&agent, last_answer);
                for s in &sessions {
                    let after = remembered_unreachable_after(&agent, &s.client_id);
                    if after > 0
                        && down >= Duration::from_secs(after)
                        && !s.locks.iter().any(|t| t == UNREACHABLE)
                    {
                        lock(&agent, &argv, s, LockReason::Unreachable, UNREACHABLE).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_stay_inside_their_argument() {
        let s = LocalSession {
            key: "k1".into(),
            user: "eve; rm -rf /".into(),
            service: "login".into(),
            client_id: "login".into(),
            logind_id: Some("7".into()),
            opened_at: 0,
            locks: vec![],
            reported_by_uid: None,
        };
        let t: Vec<String> = ["lock", "--user={user}", "{session}"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            lock_argv(&t, &s).unwrap(),
            vec!["lock", "--user=eve; rm -rf /", "7"]
        );
    }

    #[test]
    fn nothing_that_could_be_an_option_reaches_the_lock_command() {
        let s = LocalSession {
            key: "k1".into(),
            user: "eve".into(),
            service: "login".into(),
            client_id: "login".into(),
            logind_id: Some("--host=attacker@evil".into()),
            opened_at: 0,
            locks: vec![],
            reported_by_uid: None,
        };
        let t = crate::events::config::LockConfig::default()
            .command
            .args()
            .unwrap();
        assert_eq!(t, vec!["loginctl", "lock-session", "--", "{session}"]);
        assert!(
            lock_argv(&t, &s)
                .unwrap_err()
                .to_string()
                .starts_with("refused:")
        );
        let s = LocalSession {
            user: "-eve".into(),
            logind_id: None,
            ..s
        };
        assert!(lock_argv(&t, &s).is_err());
    }
}
