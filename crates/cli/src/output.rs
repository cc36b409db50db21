//! Text rendering for people: aligned tables and RFC 3339 UTC times. Pure functions returning
//! strings, so they are tested without a server.

use latchkey_proto::TokenKind;
use latchkey_proto::admin::{AuditEntry, Machine, Policy, TokenInfo, User};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Columns separated by two spaces, each as wide as its widest cell; no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let width = widths.get(i).copied().unwrap_or(0);
            line.extend(std::iter::repeat_n(
                ' ',
                width.saturating_sub(cell.chars().count()),
            ));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Unix seconds as `2025-01-31T12:00:00Z`.
pub fn time(unix: i64) -> String {
    let t = if unix >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(unix.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(unix.unsigned_abs()))
    };
    match t {
        Some(t) => humantime::format_rfc3339_seconds(t).to_string(),
        None => unix.to_string(),
    }
}

fn opt_time(unix: Option<i64>) -> String {
    unix.map(time).unwrap_or_else(|| "-".into())
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

/// How an enum is spelled on the wire (and so in `policy set`), e.g. `closed`.
fn wire_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `until <time>` while a lockout is in force, `no` otherwise.
fn locked(until: Option<i64>, now: i64) -> String {
    match until {
        Some(t) if t > now => format!("until {}", time(t)),
        _ => "no".into(),
    }
}

pub fn users(users: &[User]) -> String {
    if users.is_empty() {
        return "No users.\n".into();
    }
    let now = now_unix();
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                u.display_name.clone(),
                list(&u.groups),
                yes_no(u.enabled),
                u.token_count.to_string(),
                locked(u.locked_until, now),
            ]
        })
        .collect();
    table(
        &["NAME", "DISPLAY", "GROUPS", "ENABLED", "TOKENS", "LOCKED"],
        &rows,
    )
}

pub fn user(u: &User) -> String {
    key_values(
        &[
            ("name:", u.name.clone()),
            ("display name:", u.display_name.clone()),
            ("groups:", list(&u.groups)),
            ("enabled:", yes_no(u.enabled)),
            ("created:", time(u.created_at)),
            ("tokens:", u.token_count.to_string()),
            ("locked:", locked(u.locked_until, now_unix())),
        ],
        " ",
    )
}

/// `key<sep>value` lines with the keys padded to one width.
fn key_values(rows: &[(&str, String)], sep: &str) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{}\n", format!("{k:<width$}{sep}{v}").trim_end()))
        .collect()
}

pub fn tokens(tokens: &[TokenInfo]) -> String {
    if tokens.is_empty() {
        return "No tokens.\n".into();
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            // Apps and security keys have no OATH parameters of their own to show.
            let oath = matches!(t.kind, TokenKind::Totp | TokenKind::Hotp);
            let dash = |v: String| if oath { v } else { "-".into() };
            vec![
                t.id.clone(),
                t.kind.to_string(),
                dash(t.algorithm.to_string()),
                dash(t.digits.to_string()),
                t.period
                    .map(|p| format!("{p}s"))
                    .unwrap_or_else(|| "-".into()),
                match (&t.smartcard, t.label.is_empty()) {
                    (Some(sc), _) => {
                        format!("{} {} (until {})", t.label, sc.subject, time(sc.not_after))
                            .trim()
                            .to_string()
                    }
                    (None, true) => "-".into(),
                    (None, false) => t.label.clone(),
                },
                time(t.created_at),
                opt_time(t.last_used_at),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "KIND",
            "ALGORITHM",
            "DIGITS",
            "PERIOD",
            "LABEL",
            "CREATED",
            "LAST USED",
        ],
        &rows,
    )
}

pub fn policies(policies: &[Policy]) -> String {
    if policies.is_empty() {
        return "No policies.\n".into();
    }
    let rows: Vec<Vec<String>> = policies
        .iter()
        .map(|p| {
            let methods: Vec<String> = p.methods.iter().map(|m| m.to_string()).collect();
            vec![
                p.client_id.clone(),
                yes_no(p.mfa_required),
                list(&methods),
                list(&p.users),
                list(&p.groups),
                wire_name(&p.failmode),
                if p.offline.enabled {
                    format!("{}d/{} logins", p.offline.max_days, p.offline.max_logins)
                } else {
                    "no".into()
                },
            ]
        })
        .collect();
    table(
        &[
            "CLIENT_ID",
            "MFA",
            "METHODS",
            "USERS",
            "GROUPS",
            "FAILMODE",
            "OFFLINE",
        ],
        &rows,
    )
}

/// Every setting, named as `policy set` expects it (the rendering is the proto's, shared
/// with the web console). Aligned in three groups: the core, `session.*`, the rest.
pub fn policy(p: &Policy) -> String {
    let mut rows = vec![("client_id", p.client_id.clone())];
    rows.extend(p.settings());
    let at = |key: &str| {
        rows.iter()
            .position(|(k, _)| *k == key)
            .unwrap_or(rows.len())
    };
    let (session, enroll) = (at("session.max_hours"), at("enroll.inline"));
    key_values(&rows[..session], " = ")
        + &key_values(&rows[session..enroll], " = ")
        + &key_values(&rows[enroll..], " = ")
}

pub fn machines(machines: &[Machine]) -> String {
    if machines.is_empty() {
        return "No machines.\n".into();
    }
    let rows: Vec<Vec<String>> = machines
        .iter()
        .map(|m| {
            vec![
                m.id.clone(),
                m.hostname.clone(),
                m.credential.clone(),
                time(m.created_at),
                opt_time(m.last_seen_at),
            ]
        })
        .collect();
    table(
        &["ID", "HOSTNAME", "CREDENTIAL", "JOINED", "LAST SEEN"],
        &rows,
    )
}

pub fn audit(entries: &[AuditEntry]) -> String {
    if entries.is_empty() {
        return "No audit entries.\n".into();
    }
    let dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                time(e.time),
                e.actor.clone(),
                e.action.clone(),
                dash(&e.user),
                dash(&e.client_id),
                e.result.clone(),
                e.detail.clone(),
            ]
        })
        .collect();
    table(
        &[
            "TIME", "ACTOR", "ACTION", "USER", "CLIENT", "RESULT", "DETAIL",
        ],
        &rows,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use latchkey_proto::admin::{FailMode, OfflinePolicy, UnknownUser};
    use latchkey_proto::{Method, OtpAlgorithm, TokenKind};

    #[test]
    fn table_aligns_columns_without_trailing_spaces() {
        let t = table(
            &["NAME", "X"],
            &[
                vec!["al".into(), "1".into()],
                vec!["bobby-long".into(), "22".into()],
            ],
        );
        assert_eq!(t, "NAME        X\nal          1\nbobby-long  22\n");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(time(1_738_324_800), "2025-01-31T12:00:00Z");
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn user_table_shows_lockout_only_while_in_force() {
        let u = |name: &str, locked_until| User {
            name: name.into(),
            display_name: "Bob B".into(),
            groups: vec!["admins".into(), "ops".into()],
            enabled: true,
            created_at: 0,
            token_count: 2,
            locked_until,
        };
        let out = users(&[u("bob", Some(1)), u("eve", Some(i64::from(u32::MAX)))]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAME  DISPLAY  GROUPS      ENABLED  TOKENS  LOCKED"));
        assert!(lines[1].ends_with("yes      2       no"), "{}", lines[1]);
        assert!(
            lines[2].contains("until 2106-02-07T06:28:15Z"),
            "{}",
            lines[2]
        );
        assert!(lines[1].contains("admins,ops"));
    }

    #[test]
    fn token_and_policy_views_name_everything() {
        let t = TokenInfo {
            id: "tok_1".into(),
            user: "bob".into(),
            kind: TokenKind::Totp,
            algorithm: OtpAlgorithm::Sha1,
            digits: 6,
            period: Some(30),
            label: String::new(),
            created_at: 1_738_324_800,
            last_used_at: None,
            smartcard: None,
        };
        let out = tokens(&[t]);
        assert!(
            out.contains("tok_1  totp  SHA1       6       30s     -      2025-01-31T12:00:00Z  -"),
            "{out}"
        );

        let p = Policy {
            client_id: "login".into(),
            mfa_required: true,
            methods: vec![Method::Otp, Method::Push],
            users: vec![],
            groups: vec!["staff".into()],
            failmode: FailMode::Closed,
            unknown_user: UnknownUser::Deny,
            lockout_threshold: 5,
            lockout_backoff: 30,
            lockout_max_backoff: 3600,
            max_attempts: 3,
            tx_ttl: 300,
            offline: OfflinePolicy {
                enabled: true,
                max_days: 7,
                max_logins: 10,
                max_failures: 5,
            },
            fido2: Default::default(),
            session: Default::default(),
            enroll: Default::default(),
            report_locks_user: false,
        };
        let shown = policy(&p);
        assert!(
            shown.contains("methods                 = otp,push\n"),
            "{shown}"
        );
        assert!(shown.contains("failmode                = closed\n"));
        assert!(shown.contains("offline.max_days        = 7\n"));
        let listed = policies(&[p]);
        assert!(
            listed.contains("login      yes  otp,push  -      staff   closed    7d/10 logins"),
            "{listed}"
        );
    }
}
