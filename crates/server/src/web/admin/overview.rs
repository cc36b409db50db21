//! `/ui/admin/`: the overview.

use super::page;
use crate::http::Ctx;
use crate::web::layout::FlashQuery;
use crate::web::session::{AdminSession, WebResult};
use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;

pub async fn show(
    State(cx): State<Ctx>,
    admin: AdminSession,
    Query(q): Query<FlashQuery>,
) -> WebResult<Response> {
    let o = cx.engine.admin_overview().await?;
    let stat = |n: i64, label: &str, id: &str| {
        html! { div.stat id=(id) { span.n { (n) } span.l { (label) } } }
    };
    let body = html! {
        h1 { "Overview" }
        div.stats {
            (stat(o.users, "users", "stat-users"))
            (stat(o.users_disabled, "disabled users", "stat-disabled"))
            (stat(o.machines_seen_day, "machines seen in the last day", "stat-machines-day"))
            (stat(o.failures_hour, "failed authentications in the last hour", "stat-failures-hour"))
            (stat(o.offline_machines, "machines holding offline bundles", "stat-offline"))
            (stat(o.machines, "machines joined", "stat-machines"))
        }
        h2 { "Tokens by kind" }
        div.table-wrap {
            table #tokens-by-kind .compact {
                thead { tr { th { "Kind" } th { "Count" } } }
                tbody {
                    @for (kind, n) in &o.tokens_by_kind {
                        tr { td { (kind) } td.num { (n) } }
                    }
                    tr { td { "app" } td.num { (o.apps) } }
                    tr { td { "fido2" } td.num { (o.fido2) } }
                }
            }
        }
    };
    page::render(&cx, &admin, "nav-overview", "Overview", &q, &[], body).await
}
