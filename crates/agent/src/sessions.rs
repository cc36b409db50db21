//! Sessions reported by the PAM session hooks, kept in the state database so a restarted
//! agent still watches them. Opening and closing a session writes its row and its
//! logon/logoff event in one transaction.
//!
//! Each PAM session gets a local key of its own: `su` or `sudo` inside a desktop session
//! inherit its `XDG_SESSION_ID`, so the logind id alone cannot tell them apart. The logind id
//! is kept beside the key; it is what the lock command gets as `{session}`.
//!
//! Root reports sessions for anyone (its PAM stacks); an unprivileged local user only for
//! itself, and what it reports is its claim: its events carry its uid, count against its
//! spool quota, and its logind ids must be its own sessions (see [`admit_logind_id`]).

use crate::agent_db::AgentDbError;
use crate::events::logind;
use crate::events::{Events, new_event};
use latchkey_proto::agent::OpenSession;
use latchkey_proto::events::EventKind;
use rusqlite::{OptionalExtension, params};
use std::path::Path;
use std::sync::Arc;

/// What the PAM module told about a session.
#[derive(Debug, Clone, Default)]
pub struct SessionFacts {
    pub user: String,
    pub service: String,
    pub client_id: String,
    pub tty: Option<String>,
    pub rhost: Option<String>,
    /// systemd-logind session id (`XDG_SESSION_ID`), once admitted ([`admit_logind_id`]).
    pub logind_id: Option<String>,
    /// The uid of an unprivileged reporter; None when root reported.
    pub reported_by_uid: Option<u32>,
    /// Why part of the report was not kept (the event's `reason`).
    pub note: Option<String>,
}

/// Who reports a session over the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporter {
    /// A root-run PAM stack (sshd, login, su).
    Root,
    /// An unprivileged local user, for itself.
    User { uid: u32 },
}

/// A logind id as kept for a session, with a note when a reported one was dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Admitted {
    pub logind_id: Option<String>,
    pub note: Option<String>,
}

/// The logind id to keep for a reported session, or why the report is refused.
///
/// Root's ids come from pam_systemd, unless something put a value into the PAM environment:
/// one that logind could not have made is dropped with a note, and the session still
/// recorded, so such a value neither reaches the lock command nor erases a logon. An
/// unprivileged caller opening a session must name one of its own logind sessions. When it
/// closes one, logind may have forgotten the session already; the id then only chooses
/// among the caller's own sessions, so its form is all that is checked.
pub fn admit_logind_id(
    reporter: Reporter,
    opening: bool,
    id: Option<String>,
    logind_dir: &Path,
) -> crate::Result<Admitted> {
    let Some(id) = id else {
        return Ok(Admitted::default());
    };
    let checked = match reporter {
        Reporter::User { uid } if opening => logind::check_owner(logind_dir, &id, uid),
        _ if logind::valid_id(&id) => Ok(()),
        _ => Err(logind::Refusal::NotAnId),
    };
    match (checked, reporter) {
        (Ok(()), _) => Ok(Admitted {
            logind_id: Some(id),
            note: None,
        }),
        (Err(why), Reporter::Root) => Ok(Admitted {
            logind_id: None,
            note: Some(format!(
                "logind session {} not kept: it {why}",
                logind::shown(&id)
            )),
        }),
        (Err(why), Reporter::User { .. }) => Err(crate::AgentError::Refused(format!(
            "session {} {why}",
            logind::shown(&id)
        ))),
    }
}

/// A session the agent watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSession {
    pub key: String,
    pub user: String,
    pub service: String,
    pub client_id: String,
    pub logind_id: Option<String>,
    pub opened_at: i64,
    /// Lock triggers already acted on.
    pub locks: Vec<String>,
    /// The uid of the unprivileged user who reported it (None: root did).
    pub reported_by_uid: Option<u32>,
}

impl LocalSession {
    /// What `{session}` means in the lock command.
    pub fn lock_target(&self) -> &str {
        self.logind_id.as_deref().unwrap_or(&self.key)
    }
}

#[derive(Clone)]
pub struct Sessions {
    events: Arc<Events>,
}

fn event_for(kind: EventKind, key: &str, f: &SessionFacts) -> latchkey_proto::events::Event {
    let mut e = new_event(kind);
    e.user = Some(f.user.clone());
    e.service = Some(f.service.clone());
    e.client_id = Some(f.client_id.clone());
    e.tty = f.tty.clone();
    e.rhost = f.rhost.clone();
    e.session_id = Some(key.to_string());
    e.reported_by_uid = f.reported_by_uid;
    e.reason = f.note.clone();
    if let Some(id) = &f.logind_id {
        e.fields.insert("logind_session".into(), id.clone());
    }
    e
}

impl Sessions {
    pub fn new(events: Arc<Events>) -> Sessions {
        Sessions { events }
    }

    /// Records an opened session; returns its local key.
    pub fn open(&self, f: &SessionFacts) -> Result<String, AgentDbError> {
        let key = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let e = event_for(EventKind::Logon, &key, f);
        let opened_at = e.time_ms.div_euclid(1000);
        self.events.record_with(&[e], |c| {
            c.execute(
                "INSERT INTO local_sessions \
                 (key, user, service, client_id, logind_id, opened_at, locks, reported_by_uid) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', ?7)",
                params![
                    key,
                    f.user,
                    f.service,
                    f.client_id,
                    f.logind_id,
                    opened_at,
                    f.reported_by_uid
                ],
            )?;
            Ok(())
        })?;
        Ok(key)
    }

    /// Records a closed session: the newest open one of this user and service (with the same
    /// logind id when one is given). An unprivileged user closes only what it reported
    /// itself: a session root's PAM stack reported stays watched (and lockable) until root
    /// says it closed.
    pub fn close(&self, f: &SessionFacts) -> Result<(), AgentDbError> {
        let key: Option<String> = self
            .events
            .db()
            .conn()
            .query_row(
                "SELECT key FROM local_sessions WHERE user = ?1 AND service = ?2 \
                 AND (?3 IS NULL OR logind_id = ?3) AND (?4 IS NULL OR reported_by_uid = ?4) \
                 ORDER BY opened_at DESC, rowid DESC LIMIT 1",
                params![f.user, f.service, f.logind_id, f.reported_by_uid],
                |r| r.get(0),
            )
            .optional()?;
        let key = key.unwrap_or_default();
        let mut e = event_for(EventKind::Logoff, &key, f);
        if key.is_empty() {
            e.session_id = None;
            e.reason = Some("no matching open session".into());
        }
        self.events.record_with(&[e], |c| {
            c.execute("DELETE FROM local_sessions WHERE key = ?1", [&key])?;
            Ok(())
        })
    }

    pub fn list(&self) -> Result<Vec<LocalSession>, AgentDbError> {
        let conn = self.events.db().conn();
        let mut stmt = conn.prepare_cached(
            "SELECT key, user, service, client_id, logind_id, opened_at, locks, reported_by_uid \
             FROM local_sessions ORDER BY opened_at, rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            let locks: String = r.get(6)?;
            Ok(LocalSession {
                key: r.get(0)?,
                user: r.get(1)?,
                service: r.get(2)?,
                client_id: r.get(3)?,
                logind_id: r.get(4)?,
                opened_at: r.get(5)?,
                locks: locks
                    .split('\n')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                reported_by_uid: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// For `latchkey-agent status`: every session, or only those of user `only` (what an
    /// unprivileged caller may see: who else is logged in is not its business).
    pub fn open_sessions(&self, only: Option<&str>) -> Vec<OpenSession> {
        match self.list() {
            Ok(l) => l
                .into_iter()
                .filter(|s| only.is_none_or(|u| u == s.user))
                .map(|s| OpenSession {
                    user: s.user,
                    service: s.service,
                    session_id: s.logind_id,
                    opened_at: s.opened_at,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the sessions");
                Vec::new()
            }
        }
    }

    pub fn events(&self) -> &Events {
        &self.events
    }
}

/// Marks a lock trigger done for a session (inside the lock event's transaction).
pub fn mark_locked(c: &rusqlite::Connection, key: &str, trigger: &str) -> Result<(), AgentDbError> {
    c.execute(
        "UPDATE local_sessions SET locks = locks || ?2 || char(10) WHERE key = ?1",
        params![key, trigger],
    )?;
    Ok(())
}

/// Forgets that sessions were locked for `trigger` (a server answered again: a later outage
/// is a new trigger).
pub fn forget_trigger(events: &Events, trigger: &str) -> Result<(), AgentDbError> {
    events.db().conn().execute(
        "UPDATE local_sessions SET locks = replace(locks, ?1 || char(10), '') WHERE instr(locks, ?1) > 0",
        [trigger],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent_db::AgentDb;

    const LIMITS: crate::events::spool::Limits = crate::events::spool::Limits {
        cap: 1000,
        caller_quota: 10,
    };

    fn facts(user: &str, service: &str, logind: Option<&str>) -> SessionFacts {
        SessionFacts {
            user: user.into(),
            service: service.into(),
            client_id: "login".into(),
            logind_id: logind.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn su_inside_a_session_keeps_the_outer_session() {
        let db = Arc::new(AgentDb::in_memory().unwrap());
        let ev = Arc::new(Events::open(db, LIMITS).unwrap());
        let s = Sessions::new(ev.clone());
        let outer = s.open(&facts("alice", "login", Some("4"))).unwrap();
        s.open(&facts("alice", "su", Some("4"))).unwrap();
        s.close(&facts("alice", "su", Some("4"))).unwrap();
        let left = s.list().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].key, outer);
        assert_eq!(left[0].lock_target(), "4");
        // logon, logon, logoff: each spooled with the session's key.
        let spooled = ev.spool().batch(ev.db(), 10).unwrap();
        let kinds: Vec<EventKind> = spooled.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![EventKind::Logon, EventKind::Logon, EventKind::Logoff]
        );
        assert_eq!(spooled[1].session_id, spooled[2].session_id);
        let c = ev.db().conn();
        mark_locked(&c, &outer, "expired").unwrap();
        mark_locked(&c, &outer, "unreachable").unwrap();
        drop(c);
        forget_trigger(&ev, "unreachable").unwrap();
        assert_eq!(s.list().unwrap()[0].locks, vec!["expired".to_string()]);
    }

    #[test]
    fn a_user_closes_only_what_it_reported_and_sees_only_its_own() {
        let db = Arc::new(AgentDb::in_memory().unwrap());
        let ev = Arc::new(Events::open(db, LIMITS).unwrap());
        let s = Sessions::new(ev.clone());
        // sshd (root) reported bob's session; bob reports one of its own.
        s.open(&facts("bob", "sshd", None)).unwrap();
        s.open(&facts("alice", "login", None)).unwrap();
        let own = SessionFacts {
            reported_by_uid: Some(1001),
            ..facts("bob", "sshd", None)
        };
        let bobs = s.open(&own).unwrap();
        s.close(&own).unwrap();
        s.close(&own).unwrap();
        let left: Vec<(String, Option<u32>)> = s
            .list()
            .unwrap()
            .into_iter()
            .map(|l| (l.user, l.reported_by_uid))
            .collect();
        assert_eq!(
            left,
            vec![("bob".to_string(), None), ("alice".to_string(), None)]
        );
        let shown: Vec<String> = s
            .open_sessions(Some("bob"))
            .into_iter()
            .map(|o| o.user)
            .collect();
        assert_eq!(shown, vec!["bob".to_string()]);
        assert_eq!(s.open_sessions(None).len(), 2);
        let spooled = ev.spool().batch(ev.db(), 10).unwrap();
        let marked: Vec<Option<u32>> = spooled.iter().map(|e| e.reported_by_uid).collect();
        assert_eq!(marked, vec![None, None, Some(1001), Some(1001), Some(1001)]);
        assert_eq!(spooled[3].session_id.as_deref(), Some(bobs.as_str()));
        assert_eq!(
            spooled[4].reason.as_deref(),
            Some("no matching open session")
        );
    }

    #[test]
    fn logind_ids_from_root_are_kept_when_well_formed_and_users_must_own_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let user = Reporter::User { uid: 1001 };
        let id = |s: &str| Some(s.to_string());
        let kept = admit_logind_id(Reporter::Root, true, id("c4"), dir.path()).unwrap();
        assert_eq!(kept.logind_id.as_deref(), Some("c4"));
        let dropped = admit_logind_id(Reporter::Root, true, id("--host=x"), dir.path()).unwrap();
        assert_eq!(dropped.logind_id, None);
        assert!(dropped.note.unwrap().contains("\"--host=x\""));
        let refused = admit_logind_id(user, true, id("c4"), dir.path()).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "session \"c4\" is not an open logind session"
        );
        assert!(admit_logind_id(user, true, id("-c"), dir.path()).is_err());
        // Closing: logind may have forgotten it; the form still counts.
        assert!(admit_logind_id(user, false, id("c4"), dir.path()).is_ok());
        assert!(admit_logind_id(user, false, id("-c"), dir.path()).is_err());
        assert_eq!(
            admit_logind_id(user, true, None, dir.path()).unwrap(),
            Admitted::default()
        );
    }
}
