//! Client policies: parsing `key=value` settings and computing the effective policy.
//!
//! A client policy stores only the settings an admin set. The effective policy for a login
//! is: built-in defaults, overridden by the `*` policy, overridden by the client_id's own
//! policy when the user is in that policy's scope. A client_id without a policy of its own is
//! refused (a typo in a PAM stack must not silently get defaults).

use crate::store::Settings;
use latchkey_proto::Method;
use latchkey_proto::admin::{EnrollPolicy, FailMode, OfflinePolicy, Policy, UnknownUser};
use latchkey_proto::enroll::EnrollMethod;

pub const FALLBACK: &str = "*";
/// Longest a login transaction may live (`tx_ttl`), in seconds.
pub const MAX_TX_TTL: u64 = 3600;
pub const BUILT_IN: [&str; 5] = ["*", "login", "unlock", "elevation", "remote"];

/// Every key a policy accepts, with a one-line description (shown in errors and docs).
pub const KEYS: &[(&str, &str)] = &[
    ("mfa_required", "true|false: a second factor is needed"),
    ("methods", "comma list of otp,push,fido2,smartcard"),
    (
        "users",
        "comma list of user names in scope (empty: everyone)",
    ),
    ("groups", "comma list of groups in scope (empty: everyone)"),
    (
        "failmode",
        "closed|open: what agents do when no server answers",
    ),
    ("unknown_user", "deny|allow: users the server does not know"),
    ("lockout_threshold", "failures before a user is locked out"),
    (
        "lockout_backoff",
        "first lockout duration, e.g. 60s; doubles per further failure",
    ),
    ("lockout_max_backoff", "longest lockout, e.g. 1h"),
    ("max_attempts", "wrong codes allowed in one login"),
    ("tx_ttl", "lifetime of a login transaction, e.g. 120s"),
    (
        "offline.enabled",
        "true|false: agents may prepare offline logins",
    ),
    ("offline.max_days", "days an offline bundle stays valid"),
    (
        "offline.max_logins",
        "offline logins allowed before reconnecting",
    ),
    (
        "offline.max_failures",
        "offline failures before the bundle is wiped",
    ),
    (
        "fido2.user_verification",
        "required|preferred|discouraged: PIN/biometrics on security keys",
    ),
    (
        "session.max_hours",
        "longest session: hours (8, 0.5) or a duration (90m); 0 for no limit",
    ),
    (
        "session.lock_on_badge_out",
        "true|false: lock sessions when the user badges out",
    ),
    (
        "session.lock_when_unreachable_after",
        "lock when no server answered this long (e.g. 30m); 0 for never",
    ),
    (
        "enroll.inline",
        "off, or a comma list of totp,app,link: what a user without a token may enrol at the prompt",
    ),
    (
        "enroll.grace_logins",
        "logins a user without a token may finish with the password alone while asked to enrol",
    ),
    (
        "enroll.until",
        "a date (2027-03-31) or RFC 3339 time after which inline enrolment stops; off for none",
    ),
    ("enroll.ttl", "lifetime of a pending enrolment, e.g. 10m"),
    (
        "report_locks_user",
        "true|false: a user's \"this wasn't me\" in the self-service portal disables the user",
    ),
];

/// The client_id whose inline enrolment stays off unless its own policy turns it on: a
/// password stolen for a remote login must not become an enrolment (docs/enrollment.md).
pub const REMOTE: &str = "remote";

/// Default lifetime of a pending enrolment: 10 minutes.
pub const ENROLL_TTL: u64 = 600;

pub fn defaults(client_id: &str) -> Policy {
    Policy {
        client_id: client_id.to_string(),
        mfa_required: true,
        methods: Method::ALL.to_vec(),
        users: vec![],
        groups: vec![],
        failmode: FailMode::Closed,
        unknown_user: UnknownUser::Deny,
        lockout_threshold: 5,
        lockout_backoff: 60,
        lockout_max_backoff: 3600,
        max_attempts: 3,
        tx_ttl: 120,
        offline: OfflinePolicy {
            enabled: true,
            max_days: 7,
            max_logins: 10,
            max_failures: 5,
        },
        fido2: Default::default(),
        session: latchkey_proto::admin::SessionPolicy {
            max_secs: 0,
            lock_on_badge_out: true,
            lock_when_unreachable_after: 0,
        },
        enroll: EnrollPolicy {
            inline: vec![],
            grace_logins: 0,
            until: None,
            ttl: ENROLL_TTL,
        },
        report_locks_user: false,
    }
}

fn parse_enroll_methods(v: &str) -> Result<Vec<EnrollMethod>, String> {
    if matches!(v.trim(), "" | "off" | "none") {
        return Ok(vec![]);
    }
    let mut out = Vec::new();
    for m in parse_list(v) {
        let m = m.parse::<EnrollMethod>()?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

/// `2027-03-31` (inline enrolment stops at the end of that day, UTC) or an RFC 3339 time;
/// `off` for no end.
fn parse_until(v: &str) -> Result<Option<i64>, String> {
    let v = v.trim();
    if matches!(v, "" | "off" | "never") {
        return Ok(None);
    }
    let (text, after) = if v.len() == 10 {
        (format!("{v}T23:59:59Z"), 1)
    } else {
        (v.to_string(), 0)
    };
    let t = humantime::parse_rfc3339_weak(&text)
        .map_err(|_| format!("{v:?} is not a date (2027-03-31) or an RFC 3339 time"))?;
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{v:?} is before 1970"))?
        .as_secs();
    Ok(Some(secs as i64 + after))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("{v:?} is not true or false")),
    }
}

fn parse_u32(v: &str, min: u32, max: u32) -> Result<u32, String> {
    let n: u32 = v
        .parse()
        .map_err(|_| format!("{v:?} is not a whole number"))?;
    if n < min || n > max {
        return Err(format!("{n} is outside {min}..={max}"));
    }
    Ok(n)
}

fn parse_secs(v: &str, min: u64, max: u64) -> Result<u64, String> {
    let secs = match v.parse::<u64>() {
        Ok(n) => n,
        Err(_) => humantime::parse_duration(v)
            .map_err(|_| format!("{v:?} is not a duration (e.g. 90s, 5m, 1h)"))?
            .as_secs(),
    };
    if secs < min || secs > max {
        return Err(format!("{secs}s is outside {min}s..={max}s"));
    }
    Ok(secs)
}

fn parse_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Applies one setting onto a policy. Errors say which key and why.
pub fn apply(p: &mut Policy, key: &str, value: &str) -> Result<(), String> {
    let r: Result<(), String> = (|| {
        match key {
            "mfa_required" => p.mfa_required = parse_bool(value)?,
            "methods" => {
                let mut methods = parse_list(value)
                    .iter()
                    .map(|m| m.parse::<Method>())
                    .collect::<Result<Vec<_>, _>>()?;
                methods.sort();
                methods.dedup();
                p.methods = methods;
            }
            "users" => p.users = parse_list(value),
            "groups" => p.groups = parse_list(value),
            "failmode" => {
                p.failmode = match value {
                    "closed" => FailMode::Closed,
                    "open" => FailMode::Open,
                    _ => return Err(format!("{value:?} is not closed or open")),
                }
            }
            "unknown_user" => {
                p.unknown_user = match value {
                    "deny" => UnknownUser::Deny,
                    "allow" => UnknownUser::Allow,
                    _ => return Err(format!("{value:?} is not deny or allow")),
                }
            }
            "lockout_threshold" => p.lockout_threshold = parse_u32(value, 1, 1000)?,
            "lockout_backoff" => p.lockout_backoff = parse_secs(value, 1, 86_400)?,
            "lockout_max_backoff" => p.lockout_max_backoff = parse_secs(value, 1, 30 * 86_400)?,
            "max_attempts" => p.max_attempts = parse_u32(value, 1, 100)?,
            "tx_ttl" => p.tx_ttl = parse_secs(value, 2, MAX_TX_TTL)?,
            "offline.enabled" => p.offline.enabled = parse_bool(value)?,
            "offline.max_days" => p.offline.max_days = parse_u32(value, 1, 365)?,
            "offline.max_logins" => p.offline.max_logins = parse_u32(value, 1, 10_000)?,
            "offline.max_failures" => p.offline.max_failures = parse_u32(value, 1, 100)?,
            "fido2.user_verification" => p.fido2.user_verification = value.parse()?,
            "session.max_hours" => p.session.max_secs = crate::engine::parse_hours(value)?,
            "session.lock_on_badge_out" => p.session.lock_on_badge_out = parse_bool(value)?,
            "enroll.inline" => p.enroll.inline = parse_enroll_methods(value)?,
            "enroll.grace_logins" => p.enroll.grace_logins = parse_u32(value, 0, 100)?,
            "enroll.until" => p.enroll.until = parse_until(value)?,
            "enroll.ttl" => p.enroll.ttl = parse_secs(value, 60, MAX_TX_TTL)?,
            "report_locks_user" => p.report_locks_user = parse_bool(value)?,
            "session.lock_when_unreachable_after" => {
                p.session.lock_when_unreachable_after = parse_secs(value, 0, 30 * 86_400)?
            }
            _ => {
                let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                return Err(format!("unknown setting (known: {})", known.join(", ")));
            }
        }
        Ok(())
    })();
    r.map_err(|e| format!("{key}: {e}"))
}

/// Applies all settings of a stored policy.
pub fn apply_all(p: &mut Policy, settings: &Settings) -> Result<(), String> {
    settings.iter().try_for_each(|(k, v)| apply(p, k, v))
}

/// Whether a user is in the scope of a policy's settings.
pub fn in_scope(settings: &Settings, user: &str, groups: &[String]) -> bool {
    let users = settings
        .get("users")
        .map(|v| parse_list(v))
        .unwrap_or_default();
    let scope_groups = settings
        .get("groups")
        .map(|v| parse_list(v))
        .unwrap_or_default();
    if users.is_empty() && scope_groups.is_empty() {
        return true;
    }
    users.iter().any(|u| u == user) || scope_groups.iter().any(|g| groups.contains(g))
}

/// The policy shown to admins for a client_id: defaults ← `*` ← own settings.
pub fn effective(
    client_id: &str,
    star: Option<&Settings>,
    own: Option<&Settings>,
) -> Result<Policy, String> {
    let mut p = defaults(client_id);
    if let Some(star) = star {
        apply_all(&mut p, star)?;
    }
    // Scope lists belong to each policy; they are not inherited from `*`.
    p.users.clear();
    p.groups.clear();
    // Inline enrolment is not inherited by `remote`: only its own policy turns it on.
    if client_id == REMOTE {
        p.enroll.inline.clear();
    }
    if let Some(own) = own {
        apply_all(&mut p, own)?;
    }
    Ok(p)
}

/// The policy that governs one login of `user` (with `groups`) through `client_id`.
pub fn for_login(
    client_id: &str,
    star: Option<&Settings>,
    own: &Settings,
    user: &str,
    groups: &[String],
) -> Result<Policy, String> {
    let star_applies = star.is_some_and(|s| in_scope(s, user, groups));
    let star = if star_applies { star } else { None };
    if in_scope(own, user, groups) {
        effective(client_id, star, Some(own))
    } else {
        effective(client_id, star, None)
    }
}

/// Lockout duration after the `failures`-th consecutive failure.
pub fn lockout_secs(p: &Policy, failures: i64) -> i64 {
    let threshold = i64::from(p.lockout_threshold);
    if failures < threshold {
        return 0;
    }
    let doublings = (failures - threshold).min(30) as u32;
    let secs = p
        .lockout_backoff
        .saturating_mul(1u64 << doublings)
        .min(p.lockout_max_backoff);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, &str)]) -> Settings {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_inherit_from_star_and_override() {
        let star = s(&[("lockout_threshold", "7"), ("mfa_required", "false")]);
        let own = s(&[("mfa_required", "true"), ("tx_ttl", "5m")]);
        let p = for_login("login", Some(&star), &own, "alice", &[]).unwrap();
        assert!(p.mfa_required);
        assert_eq!(p.lockout_threshold, 7);
        assert_eq!(p.tx_ttl, 300);
    }

    #[test]
    fn out_of_scope_user_gets_star_policy() {
        let star = s(&[("mfa_required", "true")]);
        let own = s(&[("mfa_required", "false"), ("groups", "pilot")]);
        let pilot = for_login("login", Some(&star), &own, "bob", &["pilot".into()]).unwrap();
        assert!(!pilot.mfa_required);
        let other = for_login("login", Some(&star), &own, "carol", &["staff".into()]).unwrap();
        assert!(other.mfa_required);
    }

    #[test]
    fn remote_does_not_inherit_inline_enrolment_but_may_set_its_own() {
        let star = s(&[("enroll.inline", "totp,app"), ("enroll.grace_logins", "2")]);
        let login = effective("login", Some(&star), Some(&s(&[]))).unwrap();
        assert_eq!(login.enroll.inline, [EnrollMethod::Totp, EnrollMethod::App]);
        assert_eq!(login.enroll.grace_logins, 2);
        let remote = effective(REMOTE, Some(&star), Some(&s(&[]))).unwrap();
        assert!(remote.enroll.inline.is_empty(), "{:?}", remote.enroll);
        let own = s(&[("enroll.inline", "app")]);
        let remote = effective(REMOTE, Some(&star), Some(&own)).unwrap();
        assert_eq!(remote.enroll.inline, [EnrollMethod::App]);
    }

    #[test]
    fn enrolment_settings_parse_and_refuse_what_is_not_there() {
        let mut p = defaults("login");
        apply(&mut p, "enroll.until", "2027-03-31").unwrap();
        // The end of that day, UTC.
        assert_eq!(p.enroll.until, Some(1_806_537_600));
        apply(&mut p, "enroll.until", "off").unwrap();
        assert_eq!(p.enroll.until, None);
        apply(&mut p, "enroll.ttl", "15m").unwrap();
        assert_eq!(p.enroll.ttl, 900);
        apply(&mut p, "enroll.inline", "totp, totp").unwrap();
        assert_eq!(p.enroll.inline, [EnrollMethod::Totp]);
        apply(&mut p, "enroll.inline", "off").unwrap();
        assert!(p.enroll.inline.is_empty());
        apply(&mut p, "enroll.inline", "link,totp").unwrap();
        assert_eq!(p.enroll.inline, [EnrollMethod::Link, EnrollMethod::Totp]);
        assert!(!p.report_locks_user);
        apply(&mut p, "report_locks_user", "true").unwrap();
        assert!(p.report_locks_user);
        for (k, v) in [
            ("report_locks_user", "sometimes"),
            ("enroll.inline", "sms"),
            ("enroll.until", "next week"),
            ("enroll.ttl", "5s"),
            ("enroll.grace_logins", "-1"),
        ] {
            let e = apply(&mut p, k, v).unwrap_err();
            assert!(e.starts_with(k), "{e}");
        }
    }

    #[test]
    fn bad_settings_are_refused_with_reason() {
        let mut p = defaults("x");
        assert!(
            apply(&mut p, "mfa_required", "maybe")
                .unwrap_err()
                .starts_with("mfa_required:")
        );
        assert!(apply(&mut p, "methods", "otp,sms").is_err());
        assert!(
            apply(&mut p, "nope", "1")
                .unwrap_err()
                .contains("unknown setting")
        );
        assert!(apply(&mut p, "tx_ttl", "1s").is_err());
        assert!(apply(&mut p, "tx_ttl", "2h").is_err());
        apply(&mut p, "offline.max_days", "3").unwrap();
        assert_eq!(p.offline.max_days, 3);
        assert_eq!(
            p.fido2.user_verification,
            latchkey_proto::fido2::UserVerification::Preferred
        );
        apply(&mut p, "fido2.user_verification", "required").unwrap();
        assert_eq!(
            p.fido2.user_verification,
            latchkey_proto::fido2::UserVerification::Required
        );
        assert!(apply(&mut p, "fido2.user_verification", "always").is_err());
    }

    #[test]
    fn lockout_backoff_doubles_and_caps() {
        let p = defaults("x");
        assert_eq!(lockout_secs(&p, 4), 0);
        assert_eq!(lockout_secs(&p, 5), 60);
        assert_eq!(lockout_secs(&p, 6), 120);
        assert_eq!(lockout_secs(&p, 100), 3600);
    }
}
