//! `/ui/admin/users`: the user list with search, and adding a user.

use super::page;
use crate::http::Ctx;
use crate::web::layout::{self, FlashQuery};
use crate::web::session::{AdminForm, AdminSession, WebResult};
use axum::extract::{Query, State};
use axum::response::Response;
use latchkey_proto::admin::UserCreate;
use latchkey_proto::routes;
use maud::html;

const FLASH: &[(&str, &str)] = &[("added", "The user was added.")];

#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    format: String,
    #[serde(flatten)]
    flash: FlashQuery,
}

pub async fn list(
    State(cx): State<Ctx>,
    admin: AdminSession,
    Query(lq): Query<ListQuery>,
) -> WebResult<Response> {
    let needle = lq.q.trim().to_lowercase();
    let users: Vec<_> = cx
        .engine
        .user_list()
        .await?
        .into_iter()
        .filter(|u| {
            needle.is_empty()
                || u.name.to_lowercase().contains(&needle)
                || u.display_name.to_lowercase().contains(&needle)
                || u.groups.iter().any(|g| g.to_lowercase().contains(&needle))
        })
        .collect();
    let now = crate::engine::now();
    if lq.format == "csv" {
        let rows: Vec<Vec<String>> = users
            .iter()
            .map(|u| {
                vec![
                    u.name.clone(),
                    u.display_name.clone(),
                    u.groups.join(","),
                    if u.enabled { "enabled" } else { "disabled" }.to_string(),
                    u.locked_until.map(layout::utc).unwrap_or_default(),
                    u.token_count.to_string(),
                    layout::utc(u.created_at),
                ]
            })
            .collect();
        return Ok(crate::web::csv::response(
            "latchkey-users.csv",
            &[
                "name",
                "display_name",
                "groups",
                "state",
                "locked_until",
                "tokens",
                "created_at",
            ],
            &rows,
        ));
    }
    let csv_href = super::logs::link(routes::UI_ADMIN_USERS, &[("q", &lq.q), ("format", "csv")]);
    let body = html! {
        h1 { "Users" }
        form.row-form #user-search method="get" action=(routes::UI_ADMIN_USERS) role="search" {
            div.field {
                label for="user-q" { "Search by name, display name or group" }
                input type="search" id="user-q" name="q" value=(lq.q);
            }
            button.secondary type="submit" { "Search" }
            a.button.secondary.csv href=(csv_href) download { "Export CSV" }
        }
        div.table-wrap {
            table #users {
                thead { tr { th { "Name" } th { "Display name" } th { "Groups" } th { "State" } th { "Tokens" } } }
                tbody {
                    @for u in &users {
                        tr data-user=(u.name) {
                            td { a href=(routes::ui_admin_user(&u.name)) { (u.name) } }
                            td { (u.display_name) }
                            td { (u.groups.join(", ")) }
                            td {
                                @if !u.enabled { span.badge.err { "disabled" } }
                                @else if u.locked_until.is_some_and(|t| t > now) { span.badge.warn { "locked" } }
                                @else { span.badge.ok { "enabled" } }
                            }
                            td.num { (u.token_count) }
                        }
                    }
                }
            }
        }
        @if users.is_empty() { p.muted { "No users match." } }
        h2 { "Add a user" }
        form.card #user-add method="post" action=(routes::UI_ADMIN_USERS) {
            (layout::csrf_field(&admin.session))
            (layout::text_field("user-name", "name", "User name (the login name)", "", None))
            (layout::text_field("user-display", "display_name", "Display name", "", Some("Optional; the user name if empty.")))
            (layout::text_field("user-groups", "groups", "Groups", "", Some("Comma-separated, e.g. staff, admins.")))
            button #user-add-go type="submit" { "Add user" }
        }
    };
    page::render(&cx, &admin, "nav-users", "Users", &lq.flash, FLASH, body).await
}

#[derive(serde::Deserialize)]
pub struct AddFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    groups: String,
}

pub async fn add(
    State(cx): State<Ctx>,
    AdminForm { admin, form }: AdminForm<AddFields>,
) -> WebResult<Response> {
    let display = form.display_name.trim();
    let req = UserCreate {
        name: form.name.trim().to_string(),
        display_name: (!display.is_empty()).then(|| display.to_string()),
        groups: split_groups(&form.groups),
    };
    let actor = admin.session.subject.actor();
    let r = cx.engine.user_add(&actor, req).await;
    page::done(&cx, &admin, r, routes::UI_ADMIN_USERS, "added").await
}

/// `staff, admins` → `["staff", "admins"]` (empty entries dropped).
pub fn split_groups(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect()
}
