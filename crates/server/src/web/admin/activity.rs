//! `/ui/admin/events` (what agents reported: logons, authentications, locks…) and
//! `/ui/admin/sessions` (the sessions open now), each with filters, 50 a page and a CSV
//! export of the same filters. Events page by their sequence number (keyset); open
//! sessions are few and page by position.

use super::logs::{self, EXPORT, FilterField, Listing, PAGE, opt, parse_range};
use super::page;
use crate::http::Ctx;
use crate::store::EventFilter;
use crate::web::csv;
use crate::web::layout::{self, FlashQuery};
use crate::web::session::{AdminSession, WebError, WebResult};
use axum::extract::{Query, State};
use axum::response::Response;
use latchkey_proto::events::EventEntry;
use latchkey_proto::routes;
use maud::html;

#[derive(Debug, Default, serde::Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    machine: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    format: String,
    #[serde(flatten)]
    flash: FlashQuery,
}

const EVENTS_CSV: &[&str] = &[
    "seq",
    "time",
    "type",
    "user",
    "machine_id",
    "hostname",
    "session_id",
    "service",
    "client_id",
    "rhost",
    "method",
    "online",
    "reason",
    "message",
];

fn event_cells(e: &EventEntry) -> Vec<String> {
    let ev = &e.event;
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    vec![
        e.seq.to_string(),
        layout::utc(ev.time_ms.div_euclid(1000)),
        ev.kind.to_string(),
        s(&ev.user),
        e.machine_id.clone(),
        e.hostname.clone(),
        s(&ev.session_id),
        s(&ev.service),
        s(&ev.client_id),
        s(&ev.rhost),
        s(&ev.method),
        ev.online.map(|o| o.to_string()).unwrap_or_default(),
        s(&ev.reason),
        s(&ev.message),
    ]
}

pub async fn events(
    State(cx): State<Ctx>,
    admin: AdminSession,
    Query(q): Query<EventsQuery>,
) -> WebResult<Response> {
    let (error, since, until) = parse_range(&q.since, &q.until);
    let csv_out = q.format == "csv";
    let f = EventFilter {
        user: opt(&q.user),
        machine: opt(&q.machine),
        kind: opt(&q.kind),
        since_ms: since.map(|s| s.saturating_mul(1000)),
        until_ms: until.map(|s| s.saturating_mul(1000)),
        after: None,
        limit: if csv_out { EXPORT } else { PAGE as i64 + 1 },
    };
    let before = if csv_out { None } else { q.before };
    if let (true, Some(e)) = (csv_out, &error) {
        return Err(WebError::Invalid(e.clone()));
    }
    let (mut rows, error) = match error {
        Some(e) => (Vec::new(), Some(e)),
        None => match cx.engine.events_older(f, before).await {
            Ok(r) => (r, None),
            Err(crate::engine::EngineError::Invalid(e)) => (Vec::new(), Some(format!("Type: {e}"))),
            Err(e) => return Err(e.into()),
        },
    };
    if let (true, Some(e)) = (csv_out, &error) {
        return Err(WebError::Invalid(e.clone()));
    }
    if csv_out {
        let cells: Vec<Vec<String>> = rows.iter().map(event_cells).collect();
        return Ok(csv::response("latchkey-events.csv", EVENTS_CSV, &cells));
    }
    let listing = Listing::new(
        routes::UI_ADMIN_EVENTS,
        vec![
            ("user", q.user.as_str()),
            ("machine", &q.machine),
            ("type", &q.kind),
            ("since", &q.since),
            ("until", &q.until),
        ],
    );
    let next = listing.older_than(&mut rows, |e| e.seq);
    let fields: Vec<FilterField<'_>> = vec![
        ("f-user", "user", "User", &q.user, None),
        (
            "f-machine",
            "machine",
            "Machine",
            &q.machine,
            Some("hostname or id"),
        ),
        (
            "f-type",
            "type",
            "Type",
            &q.kind,
            Some("logon, logoff, unlock, auth_success, auth_failure, lock…"),
        ),
        ("f-since", "since", "From (UTC)", &q.since, None),
        ("f-until", "until", "Until (UTC)", &q.until, None),
    ];
    let body = html! {
        h1 { "Events" }
        (logs::filters("events-filter", routes::UI_ADMIN_EVENTS, &fields, &listing.csv(), error.as_deref()))
        div.table-wrap {
            table #events {
                thead { tr { th { "Time" } th { "Type" } th { "User" } th { "Machine" } th { "Context" } th { "Method" } th { "Where" } th { "From" } th { "Why" } } }
                tbody {
                    @for e in &rows {
                        @let ev = &e.event;
                        tr data-seq=(e.seq) {
                            td { (layout::time(Some(ev.time_ms.div_euclid(1000)))) }
                            td { (ev.kind.to_string()) }
                            td { (ev.user.as_deref().unwrap_or("")) }
                            td { (e.hostname) }
                            td { (ev.client_id.as_deref().or(ev.service.as_deref()).unwrap_or("")) }
                            td { (ev.method.as_deref().unwrap_or("")) }
                            td { @match ev.online { Some(true) => "online", Some(false) => "offline", None => "" } }
                            td { (ev.rhost.as_deref().unwrap_or("")) }
                            td { (ev.reason.as_deref().or(ev.message.as_deref()).unwrap_or("")) }
                        }
                    }
                }
            }
        }
        @if rows.is_empty() { p.muted { "Nothing matches." } }
        (logs::older(next))
    };
    page::render(&cx, &admin, "nav-events", "Events", &q.flash, &[], body).await
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct SessionsQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    machine: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    page: usize,
    #[serde(default)]
    format: String,
    #[serde(flatten)]
    flash: FlashQuery,
}

const SESSIONS_CSV: &[&str] = &[
    "user",
    "machine_id",
    "hostname",
    "session_id",
    "service",
    "client_id",
    "rhost",
    "opened_at",
    "expires_at",
    "locked_at",
    "badge",
];

pub async fn sessions(
    State(cx): State<Ctx>,
    admin: AdminSession,
    Query(q): Query<SessionsQuery>,
) -> WebResult<Response> {
    let user = opt(&q.user);
    let machine = opt(&q.machine);
    let client = opt(&q.client_id);
    let mut all = cx.engine.sessions_list(user.as_deref()).await?;
    all.retain(|s| {
        machine
            .as_deref()
            .is_none_or(|m| s.machine_id == m || s.hostname == m)
            && client
                .as_deref()
                .is_none_or(|c| s.client_id.as_deref() == Some(c))
    });
    // Newest first, like the other listings.
    all.reverse();
    let t = |v: Option<i64>| v.map(layout::utc).unwrap_or_default();
    if q.format == "csv" {
        let cells: Vec<Vec<String>> = all
            .iter()
            .take(EXPORT as usize)
            .map(|s| {
                vec![
                    s.user.clone(),
                    s.machine_id.clone(),
                    s.hostname.clone(),
                    s.session_id.clone(),
                    s.service.clone().unwrap_or_default(),
                    s.client_id.clone().unwrap_or_default(),
                    s.rhost.clone().unwrap_or_default(),
                    layout::utc(s.opened_at),
                    t(s.expires_at),
                    t(s.locked_at),
                    s.badge.clone().unwrap_or_default(),
                ]
            })
            .collect();
        return Ok(csv::response("latchkey-sessions.csv", SESSIONS_CSV, &cells));
    }
    let start = q.page.saturating_mul(PAGE);
    let more = all.len() > start.saturating_add(PAGE);
    let rows: Vec<_> = all.iter().skip(start).take(PAGE).collect();
    let listing = Listing::new(
        routes::UI_ADMIN_SESSIONS,
        vec![
            ("user", q.user.as_str()),
            ("machine", &q.machine),
            ("client_id", &q.client_id),
        ],
    );
    let next = more.then(|| listing.with("page", &(q.page + 1).to_string()));
    let fields: Vec<FilterField<'_>> = vec![
        ("f-user", "user", "User", &q.user, None),
        (
            "f-machine",
            "machine",
            "Machine",
            &q.machine,
            Some("hostname or id"),
        ),
        ("f-client", "client_id", "client_id", &q.client_id, None),
    ];
    let body = html! {
        h1 { "Open sessions" }
        (logs::filters("sessions-filter", routes::UI_ADMIN_SESSIONS, &fields, &listing.csv(), None))
        div.table-wrap {
            table #sessions {
                thead { tr { th { "User" } th { "Machine" } th { "Session" } th { "Context" } th { "From" } th { "Opened" } th { "Expires" } th { "Locked" } th { "Badge" } } }
                tbody {
                    @for s in &rows {
                        tr data-session=(format!("{}:{}", s.machine_id, s.session_id)) {
                            td { (s.user) }
                            td { (s.hostname) }
                            td.mono { (s.session_id) }
                            td { (s.client_id.as_deref().or(s.service.as_deref()).unwrap_or("")) }
                            td { (s.rhost.as_deref().unwrap_or("")) }
                            td { (layout::time(Some(s.opened_at))) }
                            td { (layout::time(s.expires_at)) }
                            td { (layout::time(s.locked_at)) }
                            td { (s.badge.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        @if rows.is_empty() { p.muted { "No open session matches." } }
        (logs::older(next))
    };
    page::render(&cx, &admin, "nav-sessions", "Sessions", &q.flash, &[], body).await
}
