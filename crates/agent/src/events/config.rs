//! `agent.toml` sections of the events work: `[events]` (spool and uploader),
//! `[events.journal]` (journal rules) and `[session_lock]`.

use crate::config::duration;
use crate::error::{AgentError, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Events per upload (at most 1000, the server's limit).
    pub upload_batch: usize,
    /// First wait after a failed upload; doubles per failure up to `retry_max`.
    #[serde(with = "duration")]
    pub retry_min: Duration,
    #[serde(with = "duration")]
    pub retry_max: Duration,
    /// Most events kept in the spool; past it journal entries go first, then reports of
    /// unprivileged local callers, then the agent's other records, authentication outcomes
    /// last, and the drop is itself recorded.
    pub spool_max: usize,
    /// Events one unprivileged local user (a non-root caller reporting a session of its own)
    /// may have waiting in the spool; past it its reports are refused. 0 refuses them all.
    pub caller_quota: usize,
    pub journal: JournalConfig,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            upload_batch: 500,
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            spool_max: 100_000,
            caller_quota: 1000,
            journal: JournalConfig::default(),
        }
    }
}

impl EventsConfig {
    pub fn spool_limits(&self) -> super::spool::Limits {
        super::spool::Limits {
            cap: self.spool_max,
            caller_quota: self.caller_quota,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// The follower, run without a shell. An argument holding `{cursor}` gets the saved
    /// cursor (and is left out when there is none yet); without such an argument,
    /// `--after-cursor=CURSOR` is appended when a cursor is saved.
    pub command: Vec<String>,
    /// Wait before starting the follower again after it ended.
    #[serde(with = "duration")]
    pub restart_delay: Duration,
    pub rules: Vec<JournalRule>,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            command: [
                "journalctl",
                "--follow",
                "--output=json",
                "--lines=0",
                "--after-cursor={cursor}",
            ]
            .map(String::from)
            .to_vec(),
            restart_delay: Duration::from_secs(5),
            rules: Vec::new(),
        }
    }
}

/// One rule: an entry matches when every condition holds. Conditions: `FIELD=value`,
/// `FIELD!=value`, `FIELD<=N`, `FIELD>=N`, `FIELD<N`, `FIELD>N` (numbers), `FIELD~REGEX`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JournalRule {
    pub name: String,
    #[serde(rename = "match")]
    pub matches: Vec<String>,
}

/// A command line: a TOML array (each element one argument) or a string split on
/// whitespace with `'…'`/`"…"` quoting. Never passed to a shell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum CommandLine {
    Args(Vec<String>),
    Line(String),
}

impl CommandLine {
    pub fn args(&self) -> Result<Vec<String>> {
        let args = match self {
            CommandLine::Args(a) => a.clone(),
            CommandLine::Line(l) => split_words(l)?,
        };
        if args.first().is_none_or(|p| p.is_empty()) {
            return Err(AgentError::Config("the command is empty".into()));
        }
        Ok(args)
    }
}

/// Splits like a shell would for plain words and quotes, with no expansion of any kind.
pub fn split_words(line: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(AgentError::Config(format!("unbalanced quote in {line:?}")));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LockConfig {
    /// Watch local sessions and lock them on the server's word or when unreachable.
    pub enabled: bool,
    /// `{user}` and `{session}` are replaced inside each argument.
    pub command: CommandLine,
    /// How often the sessions' state is asked.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// logind's session files (`<id>` with a `UID=` line): a session id that a non-root
    /// caller reports is used only when the file says the session is that caller's.
    pub logind_sessions: PathBuf,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            enabled: true,
            // `--`: whatever a session id is, loginctl reads it as one, never as an option.
            command: CommandLine::Args(
                ["loginctl", "lock-session", "--", "{session}"]
                    .map(String::from)
                    .to_vec(),
            ),
            poll_interval: Duration::from_secs(15),
            logind_sessions: PathBuf::from("/run/systemd/sessions"),
        }
    }
}

/// Parsed durations and limits, checked once at start.
#[derive(Debug, Clone)]
pub struct Timings {
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub journal_restart: Duration,
    pub lock_poll: Duration,
}

pub fn validate(ev: &EventsConfig, lock: &LockConfig) -> Result<Timings> {
    let bad = |msg: String| Err(AgentError::Config(msg));
    if ev.upload_batch == 0 || ev.upload_batch > latchkey_proto::events::MAX_BATCH {
        return bad(format!(
            "events.upload_batch must be 1..={}",
            latchkey_proto::events::MAX_BATCH
        ));
    }
    if ev.spool_max < 100 {
        return bad("events.spool_max must be at least 100".into());
    }
    if ev.caller_quota > ev.spool_max {
        return bad(format!(
            "events.caller_quota ({}) must be at most events.spool_max ({})",
            ev.caller_quota, ev.spool_max
        ));
    }
    let t = Timings {
        retry_min: ev.retry_min,
        retry_max: ev.retry_max,
        journal_restart: ev.journal.restart_delay,
        lock_poll: lock.poll_interval,
    };
    if t.retry_min.is_zero() || t.retry_min > t.retry_max {
        return bad("events.retry_min must be above 0 and at most events.retry_max".into());
    }
    if t.lock_poll < Duration::from_millis(50) {
        return bad("session_lock.poll_interval must be at least 50ms".into());
    }
    if ev.journal.command.is_empty() {
        return bad("events.journal.command is empty".into());
    }
    for r in &ev.journal.rules {
        super::journal::Rule::parse(r)
            .map_err(|e| AgentError::Config(format!("events.journal.rules {:?}: {e}", r.name)))?;
    }
    lock.command
        .args()
        .map_err(|e| AgentError::Config(format!("session_lock.command: {e}")))?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_with_quotes_and_nothing_else() {
        assert_eq!(
            split_words(r#"lock  --who "{user} x" '$HOME' a"b"c"#).unwrap(),
            vec!["lock", "--who", "{user} x", "$HOME", "abc"]
        );
        assert!(split_words("a 'b").is_err());
        assert!(CommandLine::Line("  ".into()).args().is_err());
    }

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        validate(&EventsConfig::default(), &LockConfig::default()).unwrap();
        let ev = EventsConfig {
            upload_batch: 0,
            ..Default::default()
        };
        assert!(
            validate(&ev, &LockConfig::default())
                .unwrap_err()
                .to_string()
                .contains("upload_batch")
        );
        let lock = LockConfig {
            poll_interval: Duration::from_millis(10),
            ..Default::default()
        };
        assert!(validate(&EventsConfig::default(), &lock).is_err());
        let ev = EventsConfig {
            spool_max: 500,
            ..Default::default()
        };
        assert!(
            validate(&ev, &LockConfig::default())
                .unwrap_err()
                .to_string()
                .contains("caller_quota")
        );
    }
}
