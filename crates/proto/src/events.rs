//! Events and sessions: what agents upload (`POST /v1/events`), what they ask about their
//! sessions (`POST /v1/sessions/state`), and what admins read (`GET /v1/admin/events`,
//! `GET /v1/admin/sessions`).
//!
//! Every event gets a UUID (v7) on the machine where it happened, before it is stored anywhere;
//! the server keeps each UUID once, so an agent may send an event any number of times and it
//! is stored exactly once.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Largest batch the server accepts in one `POST /v1/events`.
pub const MAX_BATCH: usize = 1000;

/// Longest text field of an event (messages are cut, with `…`, by the agent).
pub const MAX_TEXT: usize = 2048;

/// What happened.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A session opened (PAM `open_session`).
    Logon,
    /// A session closed (PAM `close_session`).
    Logoff,
    /// A screen was unlocked (a successful login through the `unlock` context).
    Unlock,
    /// A second factor passed.
    AuthSuccess,
    /// A second factor failed (or no server and no offline way).
    AuthFailure,
    /// A journal entry matched a rule of the agent's `[journal]` section.
    Journal,
    /// The agent ran the lock command on a session.
    SessionLock,
    /// The agent's spool was full and dropped events (the count is in `fields.dropped`).
    SpoolDropped,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::Logon,
        EventKind::Logoff,
        EventKind::Unlock,
        EventKind::AuthSuccess,
        EventKind::AuthFailure,
        EventKind::Journal,
        EventKind::SessionLock,
        EventKind::SpoolDropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Logon => "logon",
            EventKind::Logoff => "logoff",
            EventKind::Unlock => "unlock",
            EventKind::AuthSuccess => "auth_success",
            EventKind::AuthFailure => "auth_failure",
            EventKind::Journal => "journal",
            EventKind::SessionLock => "session_lock",
            EventKind::SpoolDropped => "spool_dropped",
        }
    }

    /// Journal entries may be dropped first when an agent's spool is full; everything else
    /// (authentication, sessions, locks) is kept as long as there is room.
    pub fn is_low_priority(self) -> bool {
        matches!(self, EventKind::Journal)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown event type {s:?} (known: {})", known.join(", "))
            })
    }
}

/// One event as the agent records and uploads it. The machine is not part of it: the server
/// takes it from the credential of the upload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Event {
    /// UUID given when the event was created (agents use version 7, time-ordered; the
    /// server accepts any version).
    pub id: String,
    /// Unix milliseconds when it happened (the agent's clock).
    pub time_ms: i64,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The local session key (systemd-logind session id when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhost: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<String>,
    /// PAM service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Authentication method (`otp`, `push`, `fido2`, `smartcard`, `offline_qr` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Authentication events: whether a server decided (true) or the offline path (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// Why: a failure reason, a lock trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Free text (a journal MESSAGE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Anything else (journal fields, a rule name, a drop count).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// Set when an unprivileged local user reported the event over the agent socket (a
    /// session of its own): that user's uid. Its service, rhost and tty are what that user
    /// claimed, not what a root-run PAM stack saw. Absent for everything the agent itself
    /// or root reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_by_uid: Option<u32>,
}

impl Event {
    pub fn new(id: String, time_ms: i64, kind: EventKind) -> Event {
        Event {
            id,
            time_ms,
            kind,
            user: None,
            session_id: None,
            rhost: None,
            tty: None,
            service: None,
            client_id: None,
            method: None,
            online: None,
            reason: None,
            message: None,
            fields: BTreeMap::new(),
            reported_by_uid: None,
        }
    }
}

/// `POST /v1/events`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    pub events: Vec<Event>,
}

/// Answer to `POST /v1/events`: ids now stored (new or already there) and ids the server will
/// never take (malformed). The agent deletes both from its spool, and nothing else.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct EventsAccepted {
    pub accepted: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedEvent>,
    /// How many of `accepted` were new to the server (the rest were re-sent duplicates).
    #[serde(default)]
    pub inserted: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct RejectedEvent {
    pub id: String,
    pub reason: String,
}

/// An event as stored by the server (`GET /v1/admin/events`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct EventEntry {
    /// Server sequence number: increasing in the order events were stored.
    pub seq: i64,
    pub machine_id: String,
    pub hostname: String,
    /// Unix seconds when the server stored it.
    pub received_at: i64,
    #[serde(flatten)]
    pub event: Event,
}

/// `GET /v1/admin/events` answer. `last_seq` is the highest `seq` the query covered: pass it
/// as `after` to follow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct EventPage {
    pub events: Vec<EventEntry>,
    pub last_seq: i64,
}

/// Query of `GET /v1/admin/events`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Machine id or hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Event type (`logon`, `auth_failure` …).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Unix seconds: events that happened at or after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Only events stored after this `seq` (follow with the previous page's `last_seq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// At most this many (default 1000, at most 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// With `after`: hold the request up to this many seconds (at most 60) until an event
    /// matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<u64>,
}

/// Query of `GET /v1/admin/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// One local session in `POST /v1/sessions/state`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LocalSession {
    pub session_id: String,
    pub user: String,
    pub client_id: String,
    /// Unix seconds.
    pub opened_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionStateRequest {
    pub sessions: Vec<LocalSession>,
}

/// Why a session must be locked.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum LockReason {
    /// Open longer than the policy's `session.max_hours`.
    Expired,
    /// The user badged out after the session opened.
    BadgedOut,
    /// No server answered for longer than `session.lock_when_unreachable_after`.
    Unreachable,
}

impl LockReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LockReason::Expired => "expired",
            LockReason::BadgedOut => "badged_out",
            LockReason::Unreachable => "unreachable",
        }
    }
}

/// One reason to lock a session now. `trigger` is the key the agent locks once for, per
/// session: `expired`, or `badged_out:TIME` (a later badge-out is a new trigger).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LockOrder {
    pub reason: LockReason,
    pub trigger: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SessionVerdict {
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<LockOrder>,
    /// Unix seconds when the session expires (policy `session.max_hours`), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Policy `session.lock_when_unreachable_after` in seconds (0: never), for the agent to
    /// apply when it can no longer ask.
    #[serde(default)]
    pub lock_when_unreachable_after: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SessionStateResponse {
    pub sessions: Vec<SessionVerdict>,
    pub server_time: i64,
}

/// A session as the server derives it from logon/logoff events (`GET /v1/admin/sessions`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SessionInfo {
    pub machine_id: String,
    pub hostname: String,
    pub session_id: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhost: Option<String>,
    /// Unix seconds.
    pub opened_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// `in`, `out` or absent (the user never badged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge_time: Option<i64>,
    /// Unix seconds of the last lock event of this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_is_refused() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert!("login".parse::<EventKind>().is_err());
    }

    #[test]
    fn entry_flattens_the_event() {
        let mut e = Event::new("u".into(), 5, EventKind::Logon);
        e.user = Some("alice".into());
        let entry = EventEntry {
            seq: 1,
            machine_id: "m".into(),
            hostname: "h".into(),
            received_at: 2,
            event: e.clone(),
        };
        let v = serde_json::to_value(&entry).unwrap();
        assert_eq!(v["kind"], "logon");
        assert_eq!(v["user"], "alice");
        let back: EventEntry = serde_json::from_value(v).unwrap();
        assert_eq!(back.event, e);
    }

    #[test]
    fn a_caller_reported_event_says_whose_claim_it_is() {
        let mut e = Event::new("u".into(), 5, EventKind::Logon);
        assert!(
            !serde_json::to_string(&e)
                .unwrap()
                .contains("reported_by_uid")
        );
        e.reported_by_uid = Some(65534);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["reported_by_uid"], 65534);
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), e);
    }
}
