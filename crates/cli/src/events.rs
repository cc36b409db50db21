//! `latchkey events` and `latchkey sessions`: what agents reported.

use crate::args::{EventsArgs, SessionsArgs};
use crate::commands::Outcome;
use crate::error::{CliError, Result};
use crate::output::{table, time};
use latchkey_client::{Client, Method, encode_path_segment as seg};
use latchkey_proto::events::{EventEntry, EventKind, EventPage, SessionInfo};
use latchkey_proto::routes;
use std::io::Write;
use std::time::SystemTime;

/// Seconds the server holds a follow request (below the client's 10 s timeout).
const FOLLOW_WAIT: u64 = 8;

fn decode<T: serde::de::DeserializeOwned>(client: &Client, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        CliError::Client(latchkey_client::Error::Protocol {
            server: client.base_url().to_string(),
            reason: format!("invalid JSON answer: {e}"),
        })
    })
}

/// `/v1/admin/events` with the parameters that are set.
pub fn events_path(
    a: &EventsArgs,
    since: Option<i64>,
    after: Option<i64>,
    wait: Option<u64>,
) -> String {
    let mut q = Vec::new();
    if let Some(u) = &a.user {
        q.push(format!("user={}", seg(u)));
    }
    if let Some(m) = &a.machine {
        q.push(format!("machine={}", seg(m)));
    }
    if let Some(k) = &a.kind {
        q.push(format!("type={}", seg(k)));
    }
    if let Some(s) = since {
        q.push(format!("since={s}"));
    }
    if let Some(l) = a.limit {
        q.push(format!("limit={l}"));
    }
    if let Some(a) = after {
        q.push(format!("after={a}"));
    }
    if let Some(w) = wait {
        q.push(format!("wait={w}"));
    }
    if q.is_empty() {
        routes::ADMIN_EVENTS.into()
    } else {
        format!("{}?{}", routes::ADMIN_EVENTS, q.join("&"))
    }
}

fn dash(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

/// The one-line summary of what an event says.
fn detail(e: &latchkey_proto::events::Event) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &e.client_id {
        parts.push(c.clone());
    }
    if let Some(m) = &e.method {
        parts.push(format!("method={m}"));
    }
    if let Some(o) = e.online {
        parts.push(if o { "online" } else { "offline" }.to_string());
    }
    if let Some(r) = &e.rhost {
        parts.push(format!("from {r}"));
    }
    if let Some(r) = &e.reason {
        parts.push(r.clone());
    }
    if let Some(m) = &e.message {
        parts.push(m.replace(['\n', '\r'], " "));
    }
    if let Some(r) = e.fields.get("rule") {
        parts.push(format!("rule={r}"));
    }
    if let Some(n) = e.fields.get("dropped") {
        parts.push(format!("dropped={n}"));
    }
    parts.join(" ")
}

pub fn render_events(entries: &[EventEntry], header: bool) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                time(e.event.time_ms.div_euclid(1000)),
                e.hostname.clone(),
                e.event.kind.to_string(),
                dash(&e.event.user),
                dash(&e.event.session_id),
                detail(&e.event),
            ]
        })
        .collect();
    let text = table(
        &["TIME", "MACHINE", "TYPE", "USER", "SESSION", "DETAIL"],
        &rows,
    );
    if header {
        text
    } else {
        text.lines().skip(1).map(|l| format!("{l}\n")).collect()
    }
}

pub async fn events(
    client: &Client,
    json: bool,
    out: &mut (dyn Write + Send),
    a: &EventsArgs,
) -> Result<Outcome> {
    if let Some(k) = &a.kind {
        k.parse::<EventKind>().map_err(CliError::Usage)?;
    }
    let since = a
        .since
        .map(|s| s.to_unix(SystemTime::now()))
        .transpose()
        .map_err(CliError::Usage)?;
    let (_, bytes) = client
        .request(Method::GET, &events_path(a, since, None, None), None)
        .await?;
    let page: EventPage = decode(client, &bytes)?;
    let mut printed = 0usize;
    if json && !a.follow {
        out.write_all(&bytes)?;
        out.write_all(b"\n")?;
        return Ok(Outcome::Success);
    }
    let print = |out: &mut (dyn Write + Send), evs: &[EventEntry], first: bool| -> Result<()> {
        if json {
            for e in evs {
                let line = serde_json::to_string(e)
                    .map_err(|err| CliError::Other(format!("cannot encode an event: {err}")))?;
                writeln!(out, "{line}")?;
            }
        } else if first && evs.is_empty() && !a.follow {
            out.write_all(b"No events.\n")?;
        } else if !evs.is_empty() {
            out.write_all(render_events(evs, first).as_bytes())?;
        }
        out.flush()?;
        Ok(())
    };
    let take = |evs: Vec<EventEntry>, printed: usize| -> Vec<EventEntry> {
        match a.count {
            Some(n) => evs.into_iter().take(n.saturating_sub(printed)).collect(),
            None => evs,
        }
    };
    let first = take(page.events, printed);
    printed += first.len();
    print(out, &first, true)?;
    if !a.follow {
        return Ok(Outcome::Success);
    }
    let mut after = page.last_seq;
    while a.count.is_none_or(|n| printed < n) {
        let path = events_path(a, since, Some(after), Some(FOLLOW_WAIT));
        let bytes = match client.request(Method::GET, &path, None).await {
            Ok((_, b)) => b,
            Err(e) if e.is_unreachable() => {
                // The server restarts or the network hiccups: keep following.
                eprintln!("latchkey: {e}; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let page: EventPage = decode(client, &bytes)?;
        after = page.last_seq;
        let evs = take(page.events, printed);
        printed += evs.len();
        print(out, &evs, false)?;
    }
    Ok(Outcome::Success)
}

pub fn render_sessions(sessions: &[SessionInfo]) -> String {
    if sessions.is_empty() {
        return "No open sessions.\n".into();
    }
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                s.user.clone(),
                if s.hostname.is_empty() {
                    s.machine_id.clone()
                } else {
                    s.hostname.clone()
                },
                s.session_id.clone(),
                dash(&s.service),
                dash(&s.rhost),
                time(s.opened_at),
                s.expires_at.map(time).unwrap_or_else(|| "-".into()),
                match (&s.badge, s.badge_time) {
                    (Some(b), Some(t)) => format!("{b} {}", time(t)),
                    _ => "-".into(),
                },
                s.locked_at.map(time).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "USER", "MACHINE", "SESSION", "SERVICE", "FROM", "OPENED", "EXPIRES", "BADGE", "LOCKED",
        ],
        &rows,
    )
}

pub async fn sessions(
    client: &Client,
    json: bool,
    out: &mut (dyn Write + Send),
    a: &SessionsArgs,
) -> Result<Outcome> {
    let path = match &a.user {
        Some(u) => format!("{}?user={}", routes::ADMIN_SESSIONS, seg(u)),
        None => routes::ADMIN_SESSIONS.into(),
    };
    let (_, bytes) = client.request(Method::GET, &path, None).await?;
    let list: Vec<SessionInfo> = decode(client, &bytes)?;
    if json {
        out.write_all(&bytes)?;
        out.write_all(b"\n")?;
    } else {
        out.write_all(render_sessions(&list).as_bytes())?;
    }
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_has_only_the_given_parameters() {
        let a = EventsArgs {
            user: Some("bob smith".into()),
            machine: None,
            kind: Some("logon".into()),
            since: None,
            limit: None,
            follow: false,
            count: None,
        };
        assert_eq!(
            events_path(&a, Some(5), Some(9), Some(8)),
            "/v1/admin/events?user=bob%20smith&type=logon&since=5&after=9&wait=8"
        );
    }
}
