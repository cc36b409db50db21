//! `/ui/admin/audit`: the audit log with filters, keyset paging (50 a page, an "older"
//! link) and a CSV export of the same filters — plus what the events and sessions pages
//! (`activity.rs`) share: the filter form, time fields, links that keep the filters.

use super::page;
use crate::http::Ctx;
use crate::store::AuditFilter;
use crate::web::csv;
use crate::web::layout::{self, FlashQuery};
use crate::web::session::{AdminSession, WebError, WebResult};
use axum::extract::{Query, State};
use axum::response::Response;
use latchkey_proto::routes;
use maud::{Markup, html};

/// Rows on a page.
pub const PAGE: usize = 50;
/// Rows in a CSV export at most (the newest).
pub const EXPORT: i64 = 10_000;

/// One field of a filter form: (id, name, label, value, hint).
pub type FilterField<'a> = (&'a str, &'a str, &'a str, &'a str, Option<&'a str>);

/// `2026-12-04T18:20` (what `<input type=datetime-local>` sends), with seconds, or a date,
/// read as UTC; empty is no bound.
pub fn parse_time(field: &str, v: &str) -> Result<Option<i64>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let full = match v.len() {
        10 => format!("{v}T00:00:00"),
        16 => format!("{v}:00"),
        _ => v.to_string(),
    };
    let t = humantime::parse_rfc3339_weak(&full).map_err(|_| {
        format!("{field}: {v:?} is not a time; use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC).")
    })?;
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{field}: {v:?} is before 1970."))?
        .as_secs();
    Ok(Some(i64::try_from(secs).unwrap_or(i64::MAX)))
}

/// A filter's From and Until fields read with [`parse_time`]: the refusal of the first
/// that cannot be read (and then neither bound), or the two bounds.
pub fn parse_range(since: &str, until: &str) -> (Option<String>, Option<i64>, Option<i64>) {
    match parse_time("From", since).and_then(|s| Ok((s, parse_time("Until", until)?))) {
        Ok((since, until)) => (None, since, until),
        Err(e) => (Some(e), None, None),
    }
}

/// `Some(trimmed)` of a non-empty filter value.
pub fn opt(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The links of a listing page, made from the filters it was asked with: the next page
/// ("older") and the CSV export of the same filters.
pub struct Listing<'a> {
    path: &'static str,
    pairs: Vec<(&'static str, &'a str)>,
}

impl<'a> Listing<'a> {
    pub fn new(path: &'static str, pairs: Vec<(&'static str, &'a str)>) -> Listing<'a> {
        Listing { path, pairs }
    }

    /// This listing's link with one more pair (`before=…`, `page=…`).
    pub fn with(&self, key: &'static str, value: &str) -> String {
        let mut p: Vec<(&str, &str)> = self.pairs.clone();
        p.push((key, value));
        link(self.path, &p)
    }

    /// The CSV export of the same filters.
    pub fn csv(&self) -> String {
        self.with("format", "csv")
    }

    /// A newest-first page asked for one row more than [`PAGE`]: cuts `rows` to the page
    /// and, when there was more, returns the "older" link (`before=` the last row's `key`).
    pub fn older_than<T, K: std::fmt::Display>(
        &self,
        rows: &mut Vec<T>,
        key: impl Fn(&T) -> K,
    ) -> Option<String> {
        let more = rows.len() > PAGE;
        rows.truncate(PAGE);
        more.then(|| {
            rows.last()
                .map(|e| self.with("before", &key(e).to_string()))
        })
        .flatten()
    }
}

/// `path?k=v&…` of the non-empty pairs (values encoded).
pub fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .copied()
        .collect();
    let q = serde_urlencoded::to_string(&kept).unwrap_or_default();
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{q}")
    }
}

/// The GET filter form (labelled inputs, a Filter button), the CSV link of the same
/// filters, and the error of a filter that could not be read.
pub fn filters(
    id: &str,
    action: &str,
    fields: &[FilterField<'_>],
    csv_href: &str,
    error: Option<&str>,
) -> Markup {
    html! {
        form.row-form.filters id=(id) method="get" action=(action) role="search" {
            @for (fid, name, label, value, hint) in fields {
                @let ty = if *name == "since" || *name == "until" { "datetime-local" } else { "text" };
                (layout::field(fid, name, label, value, *hint, ty, Some("off")))
            }
            button.secondary type="submit" { "Filter" }
            a.button.secondary.csv href=(csv_href) download { "Export CSV" }
        }
        @if let Some(e) = error { p.flash.err role="alert" { (e) } }
    }
}

/// The "older" link under a table when there is more.
pub fn older(href: Option<String>) -> Markup {
    html! {
        @if let Some(h) = href {
            nav.pager aria-label="Pages" { a.older #older href=(h) { "Older →" } }
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    result: String,
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

impl AuditQuery {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("user", &self.user),
            ("actor", &self.actor),
            ("action", &self.action),
            ("client_id", &self.client_id),
            ("result", &self.result),
            ("since", &self.since),
            ("until", &self.until),
        ]
    }
}

const AUDIT_CSV: &[&str] = &[
    "id",
    "time",
    "actor",
    "action",
    "user",
    "client_id",
    "result",
    "detail",
];

pub async fn audit(
    State(cx): State<Ctx>,
    admin: AdminSession,
    Query(q): Query<AuditQuery>,
) -> WebResult<Response> {
    let (error, since, until) = parse_range(&q.since, &q.until);
    let csv_out = q.format == "csv";
    if let (true, Some(e)) = (csv_out, &error) {
        return Err(WebError::Invalid(e.clone()));
    }
    let f = AuditFilter {
        user: opt(&q.user),
        actor: opt(&q.actor),
        action: opt(&q.action),
        client_id: opt(&q.client_id),
        result: opt(&q.result),
        since,
        until,
        before: if csv_out { None } else { q.before },
        limit: if csv_out { EXPORT } else { PAGE as i64 + 1 },
    };
    let mut rows = if error.is_some() {
        Vec::new()
    } else {
        cx.engine.audit_search(f).await?
    };
    if csv_out {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|e| {
                vec![
                    e.id.to_string(),
                    layout::utc(e.time),
                    e.actor.clone(),
                    e.action.clone(),
                    e.user.clone().unwrap_or_default(),
                    e.client_id.clone().unwrap_or_default(),
                    e.result.clone(),
                    e.detail.clone(),
                ]
            })
            .collect();
        return Ok(csv::response("latchkey-audit.csv", AUDIT_CSV, &cells));
    }
    let listing = Listing::new(routes::UI_ADMIN_AUDIT, q.pairs());
    let next = listing.older_than(&mut rows, |e| e.id);
    let fields: Vec<FilterField<'_>> = vec![
        ("f-user", "user", "User", &q.user, None),
        (
            "f-actor",
            "actor",
            "Actor",
            &q.actor,
            Some("admin, admin:NAME, user:NAME, machine:ID"),
        ),
        (
            "f-action",
            "action",
            "Action",
            &q.action,
            Some("e.g. user.add, or user for all user.*"),
        ),
        ("f-client", "client_id", "client_id", &q.client_id, None),
        (
            "f-result",
            "result",
            "Result",
            &q.result,
            Some("ok, fail or deny"),
        ),
        ("f-since", "since", "From (UTC)", &q.since, None),
        ("f-until", "until", "Until (UTC)", &q.until, None),
    ];
    let body = html! {
        h1 { "Audit log" }
        (filters("audit-filter", routes::UI_ADMIN_AUDIT, &fields, &listing.csv(), error.as_deref()))
        div.table-wrap {
            table #audit {
                thead { tr { th { "Time" } th { "Actor" } th { "Action" } th { "User" } th { "client_id" } th { "Result" } th { "Detail" } } }
                tbody {
                    @for e in &rows {
                        tr data-audit=(e.id) {
                            td { (layout::time(Some(e.time))) }
                            td { (e.actor) }
                            td { (e.action) }
                            td { (e.user.as_deref().unwrap_or("")) }
                            td { (e.client_id.as_deref().unwrap_or("")) }
                            td { (result_badge(&e.result)) }
                            td { (e.detail) }
                        }
                    }
                }
            }
        }
        @if rows.is_empty() { p.muted { "Nothing matches." } }
        (older(next))
    };
    page::render(&cx, &admin, "nav-audit", "Audit log", &q.flash, &[], body).await
}

pub fn result_badge(r: &str) -> Markup {
    html! {
        @match r {
            "ok" => span.badge.ok { (r) },
            "fail" | "deny" => span.badge.err { (r) },
            _ => span.badge { (r) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_times_are_utc_and_refusals_name_the_field() {
        assert_eq!(parse_time("From", ""), Ok(None));
        assert_eq!(parse_time("From", "1970-01-02"), Ok(Some(86_400)));
        assert_eq!(
            parse_time("From", "2023-11-14T22:13"),
            Ok(Some(1_699_999_980))
        );
        assert_eq!(
            parse_time("From", "2023-11-14T22:13:20"),
            Ok(Some(1_700_000_000))
        );
        assert!(
            parse_time("Until", "soon")
                .unwrap_err()
                .starts_with("Until:")
        );
    }

    #[test]
    fn links_keep_only_the_filters_given() {
        assert_eq!(link("/p", &[("a", ""), ("b", " ")]), "/p");
        assert_eq!(link("/p", &[("a", "x y"), ("b", "")]), "/p?a=x+y");
    }
}
