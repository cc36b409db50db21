//! Durations in `agent.toml`: written as text (`"1.5s"`, `"5m"`), held as `Duration` from
//! the moment the file is loaded, so a bad value stops the agent at start with the key named
//! and nothing parses a duration again later.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// A duration's text that does not read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration (e.g. 1.5s, 10s, 5m)")]
pub struct NotADuration(pub String);

pub fn parse(v: &str) -> Result<Duration, NotADuration> {
    humantime::parse_duration(v.trim()).map_err(|_| NotADuration(v.to_string()))
}

/// The shortest exact text for `d` in the units people write (`1500ms`, `10s`, `5m`).
pub fn format(d: Duration) -> String {
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    if nanos == 0 {
        match secs {
            0 => "0s".to_string(),
            s if s % 3600 == 0 => format!("{}h", s / 3600),
            s if s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    } else if nanos % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        humantime::format_duration(d).to_string()
    }
}

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = String::deserialize(d)?;
    parse(&v).map_err(D::Error::custom)
}

/// The same for an optional key.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(v) => parse(&v).map(Some).map_err(D::Error::custom),
            None => Ok(None),
        }
    }
}

/// The dotted key (`offline.clock_skew`) of the value at `at` in a TOML text, so that a
/// load error names it whatever the value's type.
pub fn key_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let key = before[line_start..].split('=').next()?.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let table = before[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        let inner = l.strip_prefix('[')?.strip_suffix(']')?;
        Some(inner.trim_matches(['[', ']']).trim().to_string())
    });
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_durations_read_back_the_same() {
        for d in [
            Duration::from_millis(1500),
            Duration::from_secs(10),
            Duration::from_secs(300),
            Duration::from_secs(7200),
            Duration::from_millis(100),
            Duration::ZERO,
        ] {
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_secs(300)), "5m");
    }

    #[test]
    fn a_key_is_found_with_its_table() {
        let text = "timeout = \"x\"\n[offline]\ncode_digits = 8\nclock_skew = \"soon\"\n";
        let at = text.find("\"soon\"").unwrap();
        assert_eq!(key_at(text, at).as_deref(), Some("offline.clock_skew"));
        assert_eq!(key_at(text, 10).as_deref(), Some("timeout"));
    }
}
