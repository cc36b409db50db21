//! A policy's settings as the text `policy set` takes back (`key = value`): one rendering,
//! shared by the CLI's `policy show` and the web console's policy page, so what an admin
//! reads is what either accepts.

use crate::admin::Policy;

fn wire_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// Seconds as hours for `session.max_hours` (`0`, `8`, `0.5`).
pub fn hours(secs: u64) -> String {
    if secs.is_multiple_of(3600) {
        (secs / 3600).to_string()
    } else {
        format!("{:.4}", secs as f64 / 3600.0)
            .trim_end_matches('0')
            .to_string()
    }
}

/// Unix seconds as RFC 3339 UTC (`2027-03-31T00:00:00Z`), what `enroll.until` takes back.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `key=value` for `policy set`. The key must be non-empty and without spaces; the value may
/// be empty (e.g. `users=` clears a list). The server validates keys and values.
pub fn parse_setting(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE (e.g. mfa_required=true), got {s:?}"))?;
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(format!("invalid setting name {key:?} in {s:?}"));
    }
    Ok((key.to_string(), value.to_string()))
}

impl Policy {
    /// Every setting but `client_id`, in the order of `latchkey policy show`, each value
    /// written as `policy set KEY=VALUE` takes it.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let p = self;
        let methods: Vec<String> = p.methods.iter().map(|m| m.to_string()).collect();
        let inline = if p.enroll.inline.is_empty() {
            "off".to_string()
        } else {
            p.enroll
                .inline
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        vec![
            ("mfa_required", p.mfa_required.to_string()),
            ("methods", methods.join(",")),
            ("users", p.users.join(",")),
            ("groups", p.groups.join(",")),
            ("failmode", wire_name(&p.failmode)),
            ("unknown_user", wire_name(&p.unknown_user)),
            ("lockout_threshold", p.lockout_threshold.to_string()),
            ("lockout_backoff", p.lockout_backoff.to_string()),
            ("lockout_max_backoff", p.lockout_max_backoff.to_string()),
            ("max_attempts", p.max_attempts.to_string()),
            ("tx_ttl", p.tx_ttl.to_string()),
            ("offline.enabled", p.offline.enabled.to_string()),
            ("offline.max_days", p.offline.max_days.to_string()),
            ("offline.max_logins", p.offline.max_logins.to_string()),
            ("offline.max_failures", p.offline.max_failures.to_string()),
            (
                "fido2.user_verification",
                p.fido2.user_verification.to_string(),
            ),
            ("session.max_hours", hours(p.session.max_secs)),
            (
                "session.lock_on_badge_out",
                p.session.lock_on_badge_out.to_string(),
            ),
            (
                "session.lock_when_unreachable_after",
                p.session.lock_when_unreachable_after.to_string(),
            ),
            ("enroll.inline", inline),
            ("enroll.grace_logins", p.enroll.grace_logins.to_string()),
            (
                "enroll.until",
                p.enroll.until.map_or_else(|| "off".to_string(), rfc3339),
            ),
            ("enroll.ttl", p.enroll.ttl.to_string()),
            ("report_locks_user", p.report_locks_user.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(1_806_451_200), "2027-03-31T00:00:00Z");
    }

    #[test]
    fn hours_are_short() {
        assert_eq!(hours(8 * 3600), "8");
        assert_eq!(hours(1800), "0.5");
        assert_eq!(hours(0), "0");
    }
}
