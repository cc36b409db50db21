//! Journal rules (the Linux counterpart of the seed's XPath event filters): the agent follows
//! `journalctl --follow --output=json` (the command is configurable) and spools every entry
//! that matches a rule, as a low-priority `journal` event.
//!
//! Resume without loss or repetition: the cursor of a matching entry is saved in the same
//! transaction as its event, so after a crash either both are on disk or neither (and the
//! entry is read again). Cursors of entries that match nothing are saved at most once a
//! second: reading them again after a crash spools nothing.

use super::config::{JournalConfig, JournalRule};
use super::{Events, clip, new_event};
use crate::Agent;
use crate::agent_db::AgentDbError;
use latchkey_proto::events::{Event, EventKind};
use regex_lite::Regex;
use rusqlite::OptionalExtension;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

/// Journal fields copied into the event (besides MESSAGE).
const KEPT_FIELDS: [&str; 6] = [
    "_SYSTEMD_UNIT",
    "SYSLOG_IDENTIFIER",
    "PRIORITY",
    "_PID",
    "_HOSTNAME",
    "_COMM",
];

/// Longest journal line read (journald's own limit is far below).
const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Clone)]
enum Cond {
    Eq(String, String),
    Ne(String, String),
    Num(String, Cmp, i64),
    Re(String, Regex),
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Le,
    Ge,
    Lt,
    Gt,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    conds: Vec<Cond>,
}

fn field_name_ok(f: &str) -> bool {
    !f.is_empty()
        && f.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

impl Rule {
    pub fn parse(r: &JournalRule) -> crate::Result<Rule> {
        let bad = crate::AgentError::Config;
        if r.matches.is_empty() {
            return Err(bad("a rule needs at least one condition".into()));
        }
        let mut conds = Vec::new();
        for m in &r.matches {
            // The operator is the first of these after the field name.
            let pos = m.find(['=', '!', '<', '>', '~']).ok_or_else(|| {
                bad(format!(
                    "{m:?}: expected FIELD=value, FIELD<=N, FIELD~REGEX …"
                ))
            })?;
            let (field, rest) = m.split_at(pos);
            if !field_name_ok(field) {
                return Err(bad(format!(
                    "{m:?}: {field:?} is not a journal field name (A-Z, 0-9, _)"
                )));
            }
            let f = field.to_string();
            let num = |v: &str| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| bad(format!("{m:?}: {v:?} is not a number")))
            };
            let cond = if let Some(v) = rest.strip_prefix("!=") {
                Cond::Ne(f, v.to_string())
            } else if let Some(v) = rest.strip_prefix("<=") {
                Cond::Num(f, Cmp::Le, num(v)?)
            } else if let Some(v) = rest.strip_prefix(">=") {
                Cond::Num(f, Cmp::Ge, num(v)?)
            } else if let Some(v) = rest.strip_prefix('<') {
                Cond::Num(f, Cmp::Lt, num(v)?)
            } else if let Some(v) = rest.strip_prefix('>') {
                Cond::Num(f, Cmp::Gt, num(v)?)
            } else if let Some(v) = rest.strip_prefix('~') {
                Cond::Re(
                    f,
                    Regex::new(v)
                        .map_err(|e| bad(format!("{m:?}: bad regular expression: {e}")))?,
                )
            } else if let Some(v) = rest.strip_prefix('=') {
                Cond::Eq(f, v.to_string())
            } else {
                return Err(bad(format!("{m:?}: unknown operator")));
            };
            conds.push(cond);
        }
        Ok(Rule {
            name: r.name.clone(),
            conds,
        })
    }

    pub fn matches(&self, entry: &serde_json::Map<String, Value>) -> bool {
        self.conds.iter().all(|c| match c {
            Cond::Eq(f, v) => field(entry, f).is_some_and(|x| x == *v),
            Cond::Ne(f, v) => field(entry, f).is_none_or(|x| x != *v),
            Cond::Num(f, cmp, n) => field(entry, f)
                .and_then(|x| x.trim().parse::<i64>().ok())
                .is_some_and(|x| match cmp {
                    Cmp::Le => x <= *n,
                    Cmp::Ge => x >= *n,
                    Cmp::Lt => x < *n,
                    Cmp::Gt => x > *n,
                }),
            Cond::Re(f, re) => field(entry, f).is_some_and(|x| re.is_match(&x)),
        })
    }
}

/// A field as text. journalctl's JSON gives a string, an array of bytes (binary or invalid
/// UTF-8), an array of those (a field set several times: the first counts), or null.
pub fn field(entry: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    fn text(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Array(a) if a.iter().all(Value::is_u64) => {
                let bytes: Vec<u8> = a
                    .iter()
                    .filter_map(Value::as_u64)
                    .map(|b| b.min(255) as u8)
                    .collect();
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            Value::Array(a) => a.first().and_then(text),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    entry.get(name).and_then(text)
}

/// The event for an entry matched by `rule`.
pub fn entry_event(entry: &serde_json::Map<String, Value>, rule: &str) -> Event {
    let mut e = new_event(EventKind::Journal);
    if let Some(us) = field(entry, "__REALTIME_TIMESTAMP").and_then(|t| t.parse::<i64>().ok()) {
        e.time_ms = us / 1000;
    }
    e.message = field(entry, "MESSAGE").map(|m| clip(&m));
    e.fields.insert("rule".into(), rule.to_string());
    for f in KEPT_FIELDS {
        if let Some(v) = field(entry, f) {
            e.fields.insert(f.to_string(), clip(&v));
        }
    }
    // The uid an entry is about, when the journal names it (pam_unix, sshd).
    if let Some(u) = field(entry, "_AUDIT_LOGINUID").filter(|u| u != "4294967295") {
        e.fields.insert("_AUDIT_LOGINUID".into(), u);
    }
    e
}

pub fn saved_cursor(events: &Events) -> Result<Option<String>, AgentDbError> {
    Ok(events
        .db()
        .conn()
        .query_row("SELECT cursor FROM journal_cursor WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?)
}

fn save_cursor(c: &rusqlite::Connection, cursor: &str) -> Result<(), AgentDbError> {
    c.execute(
        "INSERT INTO journal_cursor (id, cursor) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor",
        [cursor],
    )?;
    Ok(())
}

/// The follower's argv for a saved cursor (see `JournalConfig::command`).
pub fn command_for(cfg: &JournalConfig, cursor: Option<&str>) -> Vec<String> {
    let has_placeholder = cfg.command.iter().any(|a| a.contains("{cursor}"));
    let mut argv: Vec<String> = cfg
        .command
        .iter()
        .filter_map(|a| match (a.contains("{cursor}"), cursor) {
            (false, _) => Some(a.clone()),
            (true, Some(c)) => Some(a.replace("{cursor}", c)),
            (true, None) => None,
        })
        .collect();
    if let (false, Some(c)) = (has_placeholder, cursor) {
        argv.push(format!("--after-cursor={c}"));
    }
    argv
}

/// Follows the journal until shutdown, restarting the follower when it ends.
pub async fn run(agent: Arc<Agent>, mut shutdown: watch::Receiver<bool>) {
    let cfg = agent.config.events.journal.clone();
    let rules: Vec<Rule> = cfg
        .rules
        .iter()
        .filter_map(|r| Rule::parse(r).ok())
        .collect();
    if rules.is_empty() {
        return;
    }
    loop {
        if let Err(e) = follow_once(&agent.events, &cfg, &rules, &mut shutdown).await {
            tracing::warn!(error = %e, "journal follower stopped");
        }
        if !super::upload::pause(agent.timings.journal_restart, &mut shutdown).await {
            return;
        }
    }
}

async fn follow_once(
    events: &Events,
    cfg: &JournalConfig,
    rules: &[Rule],
    shutdown: &mut watch::Receiver<bool>,
) -> crate::Result<()> {
    let local = crate::AgentError::Local;
    let cursor = saved_cursor(events)?;
    let argv = command_for(cfg, cursor.as_deref());
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| crate::AgentError::Config("the journal command is empty".into()))?;
    let mut child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| local(format!("cannot run {prog:?}: {e}")))?;
    tracing::info!(command = %prog, resume = cursor.is_some(), "following the journal");
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| local("no stdout".into()))?;
    // `next_line` is cancel safe: a timeout or shutdown never loses part of a line.
    let mut lines = BufReader::with_capacity(64 * 1024, stdout).lines();
    let mut pending: Option<String> = None;
    let mut last_flush = Instant::now();
    let result = loop {
        let read = tokio::select! {
            _ = shutdown.changed() => break Ok(()),
            r = tokio::time::timeout(Duration::from_secs(1), lines.next_line()) => r,
        };
        let line = match read {
            // Quiet journal: a chance to save a pending cursor.
            Err(_) => None,
            Ok(Ok(None)) => break Err(local("the journal command ended".into())),
            Ok(Ok(Some(l))) if l.len() > MAX_LINE => continue,
            Ok(Ok(Some(l))) => Some(l),
            Ok(Err(e)) => break Err(local(format!("reading the journal: {e}"))),
        };
        if let Some(buf) = line.filter(|l| !l.trim().is_empty()) {
            let Ok(Value::Object(entry)) = serde_json::from_str::<Value>(buf.trim()) else {
                tracing::debug!("skipping a journal line that is not a JSON object");
                continue;
            };
            let Some(cur) = field(&entry, "__CURSOR") else {
                continue;
            };
            let matched: Vec<Event> = rules
                .iter()
                .filter(|r| r.matches(&entry))
                .map(|r| entry_event(&entry, &r.name))
                .collect();
            if matched.is_empty() {
                pending = Some(cur);
            } else {
                events
                    .record_with(&matched, |c| save_cursor(c, &cur))
                    .map_err(|e| local(format!("spooling a journal event: {e}")))?;
                pending = None;
                last_flush = Instant::now();
            }
        }
        if pending.is_some() && last_flush.elapsed() >= Duration::from_secs(1) {
            flush(events, &mut pending)?;
            last_flush = Instant::now();
        }
    };
    flush(events, &mut pending)?;
    let _ = child.kill().await;
    result
}

fn flush(events: &Events, pending: &mut Option<String>) -> crate::Result<()> {
    if let Some(cur) = pending.take() {
        let conn = events.db().conn();
        save_cursor(&conn, &cur)
            .map_err(|e| crate::AgentError::Local(format!("saving the journal cursor: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(m: &[&str]) -> Rule {
        Rule::parse(&JournalRule {
            name: "r".into(),
            matches: m.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap()
    }

    fn entry(j: &str) -> serde_json::Map<String, Value> {
        match serde_json::from_str(j).unwrap() {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn conditions_all_have_to_hold() {
        let r = rule(&[
            "_SYSTEMD_UNIT=sshd.service",
            "PRIORITY<=4",
            "MESSAGE~^Failed password for (\\w+)",
        ]);
        let hit = entry(
            r#"{"_SYSTEMD_UNIT":"sshd.service","PRIORITY":"3","MESSAGE":"Failed password for bob"}"#,
        );
        assert!(r.matches(&hit));
        let low = entry(
            r#"{"_SYSTEMD_UNIT":"sshd.service","PRIORITY":"6","MESSAGE":"Failed password for bob"}"#,
        );
        assert!(!r.matches(&low));
        let other = entry(
            r#"{"_SYSTEMD_UNIT":"cron.service","PRIORITY":"3","MESSAGE":"Failed password for bob"}"#,
        );
        assert!(!r.matches(&other));
        let missing =
            entry(r#"{"_SYSTEMD_UNIT":"sshd.service","MESSAGE":"Failed password for bob"}"#);
        assert!(!r.matches(&missing));
        assert!(rule(&["_COMM!=cron"]).matches(&missing));
    }

    #[test]
    fn binary_messages_are_read_as_lossy_text() {
        let e = entry(
            r#"{"MESSAGE":[104,105,255],"__CURSOR":"c","__REALTIME_TIMESTAMP":"1700000000123456"}"#,
        );
        assert_eq!(field(&e, "MESSAGE").unwrap(), "hi\u{fffd}");
        let ev = entry_event(&e, "bin");
        assert_eq!(ev.time_ms, 1_700_000_000_123);
        assert_eq!(ev.fields["rule"], "bin");
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let bad = |m: &str| {
            Rule::parse(&JournalRule {
                name: "x".into(),
                matches: vec![m.into()],
            })
            .unwrap_err()
        };
        assert!(bad("PRIORITY<=high").to_string().contains("not a number"));
        assert!(bad("MESSAGE~(").to_string().contains("regular expression"));
        assert!(bad("message=x").to_string().contains("field name"));
        assert!(bad("NOOP").to_string().contains("expected"));
    }

    #[test]
    fn the_cursor_goes_into_the_command() {
        let cfg = JournalConfig::default();
        assert_eq!(
            command_for(&cfg, None),
            vec!["journalctl", "--follow", "--output=json", "--lines=0"]
        );
        assert_eq!(
            command_for(&cfg, Some("s=1;i=2")).last().unwrap(),
            "--after-cursor=s=1;i=2"
        );
        let plain = JournalConfig {
            command: vec!["/opt/feed".into()],
            ..Default::default()
        };
        assert_eq!(
            command_for(&plain, Some("c9")),
            vec!["/opt/feed", "--after-cursor=c9"]
        );
    }
}
