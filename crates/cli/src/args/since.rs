//! `--since`: a moment given as a duration ago ("1h") or as an RFC 3339 time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `--since`: relative ("1h" ago) or absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Ago(Duration),
    At(SystemTime),
}

impl Since {
    /// Unix seconds of the moment, with `now` for relative values.
    pub fn to_unix(self, now: SystemTime) -> Result<i64, String> {
        let at = match self {
            Since::At(t) => t,
            Since::Ago(d) => now
                .checked_sub(d)
                .ok_or_else(|| "--since reaches before 1970".to_string())?,
        };
        let secs = at
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "--since is before 1970".to_string())?
            .as_secs();
        i64::try_from(secs).map_err(|_| "--since is too far in the future".to_string())
    }
}

/// `--since`: a duration ago (`30m`, `1h`, `2days`) or a time: RFC 3339 (`2025-01-31T12:00:00Z`,
/// `…+02:00`), also with a space for `T`, or a bare date (midnight UTC).
pub fn parse_since(s: &str) -> Result<Since, String> {
    let s = s.trim();
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(Since::Ago(d));
    }
    parse_time(s).map(Since::At).map_err(|_| {
        format!(
            "expected a duration ago like 1h or 30m, or an RFC 3339 time like \
             2025-01-31T12:00:00Z, got {s:?}"
        )
    })
}

fn parse_time(s: &str) -> Result<SystemTime, humantime::TimestampError> {
    if s.len() == 10 {
        return humantime::parse_rfc3339(&format!("{s}T00:00:00Z"));
    }
    // humantime reads UTC only; apply a numeric offset (`+02:00`, `-0500`) ourselves.
    let offset = split_offset(s);
    let (base, offset_secs) = offset.unwrap_or((s, 0));
    let t = humantime::parse_rfc3339_weak(base)?;
    let shifted = if offset_secs >= 0 {
        t.checked_sub(Duration::from_secs(offset_secs.unsigned_abs()))
    } else {
        t.checked_add(Duration::from_secs(offset_secs.unsigned_abs()))
    };
    shifted.ok_or(humantime::TimestampError::OutOfRange)
}

/// Splits `…±HH:MM` or `…±HHMM` into the rest and the offset in seconds. The date's own
/// dashes are in its first 10 characters, so a sign after them starts an offset.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    let at = s.rfind(['+', '-'])?;
    if at <= 10 {
        return None;
    }
    let tail = &s[at + 1..];
    if !tail.is_ascii() {
        return None;
    }
    let digits = match tail.len() {
        5 if tail.as_bytes()[2] == b':' => format!("{}{}", &tail[..2], &tail[3..]),
        4 => tail.to_string(),
        _ => return None,
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits[2..].parse().ok()?;
    let sign = if s.as_bytes()[at] == b'-' { -1 } else { 1 };
    Some((&s[..at], sign * (hours * 3600 + minutes * 60)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use clap::Parser;

    fn at(s: &str) -> i64 {
        parse_since(s).unwrap().to_unix(SystemTime::now()).unwrap()
    }

    #[test]
    fn since_accepts_durations_ago() {
        let now = SystemTime::now();
        let since = parse_since("1h").unwrap();
        assert_eq!(since, Since::Ago(Duration::from_secs(3600)));
        let now_unix = now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        assert_eq!(since.to_unix(now).unwrap(), now_unix - 3600);
        assert_eq!(
            parse_since("30m").unwrap(),
            Since::Ago(Duration::from_secs(1800))
        );
        assert_eq!(
            parse_since("2d").unwrap(),
            Since::Ago(Duration::from_secs(172_800))
        );
    }

    #[test]
    fn since_accepts_rfc3339_times_with_offsets() {
        assert_eq!(at("2025-01-31T12:00:00Z"), 1_738_324_800);
        assert_eq!(at("2025-01-31 12:00:00"), 1_738_324_800);
        assert_eq!(at("2025-01-31T12:00:00.5Z"), 1_738_324_800);
        assert_eq!(at("2025-01-31T14:00:00+02:00"), 1_738_324_800);
        assert_eq!(at("2025-01-31T07:00:00-05:00"), 1_738_324_800);
        assert_eq!(at("2025-01-31T07:00:00-0500"), 1_738_324_800);
        assert_eq!(at("2025-01-31"), 1_738_281_600);
    }

    #[test]
    fn since_refuses_garbage() {
        for bad in [
            "yesterday",
            "1 fortnight",
            "2025-13-01T00:00:00Z",
            "",
            "12:00",
        ] {
            assert!(parse_since(bad).is_err(), "{bad:?}");
        }
        let err = Cli::try_parse_from(["latchkey", "audit", "--since", "soon"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
