//! `/ui/admin/machines`: the joined machines (hostname, id, last seen, the users whose
//! offline bundles each holds), removing one, asking one to forget a user's offline data,
//! and creating a join token (shown once, in the POST's own page).

use super::page;
use crate::http::Ctx;
use crate::web::layout::{self, FlashQuery};
use crate::web::session::{AdminForm, AdminSession, WebError, WebResult};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use latchkey_proto::admin::JoinTokenCreate;
use latchkey_proto::offline::ForgetOffline;
use latchkey_proto::routes;
use maud::{Markup, html};

const FLASH: &[(&str, &str)] = &[
    (
        "removed",
        "The machine was removed; its key no longer works.",
    ),
    (
        "forgotten",
        "The machine will wipe that user's offline bundle at its next contact.",
    ),
];

/// Join token lifetimes offered (seconds, label).
const LIFETIMES: &[(&str, &str)] = &[
    ("3600", "1 hour"),
    ("86400", "1 day"),
    ("604800", "7 days"),
    ("2592000", "30 days"),
];

fn action_path(id: &str, action: &str) -> String {
    format!(
        "/ui/admin/machines/{}/{action}",
        routes::encode_path_segment(id)
    )
}

pub async fn list(
    State(cx): State<Ctx>,
    admin: AdminSession,
    Query(q): Query<FlashQuery>,
) -> WebResult<Response> {
    page(&cx, &admin, &q, None).await
}

async fn page(
    cx: &Ctx,
    admin: &AdminSession,
    q: &FlashQuery,
    once: Option<Markup>,
) -> WebResult<Response> {
    let machines = cx.engine.machine_list().await?;
    let holders = cx.engine.offline_holders().await?;
    let s = &admin.session;
    let body = html! {
        h1 { "Machines" }
        @if let Some(once) = once { (once) }
        div.table-wrap {
            table #machines {
                thead { tr { th { "Hostname" } th { "Id" } th { "Credential" } th { "Joined" } th { "Last seen" } th { "Offline bundles" } th { "Actions" } } }
                tbody {
                    @for m in &machines {
                        @let held = holders.get(&m.id).map(Vec::as_slice).unwrap_or(&[]);
                        @let fid = format!("forget-user-{}", m.id);
                        tr data-machine=(m.id) {
                            td { (m.hostname) }
                            td.mono { (m.id) }
                            td { (m.credential) }
                            td { (layout::time(Some(m.created_at))) }
                            td { (layout::time(m.last_seen_at)) }
                            td.offline { @if held.is_empty() { span.muted { "none" } } @else { (held.join(", ")) } }
                            td.actions-cell {
                                @if !held.is_empty() {
                                    form.row-form.forget method="post" action=(action_path(&m.id, "forget")) {
                                        (layout::csrf_field(s))
                                        div.field {
                                            label for=(fid) { "User" }
                                            select id=(fid) name="user" {
                                                @for u in held { option value=(u) { (u) } }
                                            }
                                        }
                                        button.secondary.small type="submit" { "Forget offline data" }
                                    }
                                }
                                form.inline-form method="post" action=(action_path(&m.id, "remove")) {
                                    (layout::csrf_field(s))
                                    button.danger.small.remove type="submit" aria-label=(format!("Remove machine {}", m.hostname)) { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if machines.is_empty() { p.muted { "No machine has joined yet." } }
        h2 { "Join a machine" }
        form.card #join-token method="post" action=(routes::UI_ADMIN_JOIN_TOKENS) {
            (layout::csrf_field(s))
            (layout::select_field("join-expires", "expires_in", "Valid for", LIFETIMES, "86400"))
            (layout::text_field("join-note", "note", "Note", "", Some("Optional, e.g. the machine it is for.")))
            button #join-token-go type="submit" { "Create join token" }
        }
    };
    page::render(cx, admin, "nav-machines", "Machines", q, FLASH, body).await
}

#[derive(serde::Deserialize)]
pub struct MachineFields {
    #[serde(default)]
    user: String,
}

/// `POST /ui/admin/machines/{id}/{remove|forget}`.
pub async fn action(
    State(cx): State<Ctx>,
    Path((id, action)): Path<(String, String)>,
    AdminForm { admin, form }: AdminForm<MachineFields>,
) -> WebResult<Response> {
    let actor = admin.session.subject.actor();
    let to = routes::UI_ADMIN_MACHINES;
    match action.as_str() {
        "remove" => {
            let r = cx.engine.machine_remove(&actor, &id).await;
            page::done(&cx, &admin, r, to, "removed").await
        }
        "forget" => {
            let req = ForgetOffline {
                user: form.user.trim().to_string(),
            };
            let r = cx.engine.forget_offline(&actor, &id, req).await;
            page::done(&cx, &admin, r, to, "forgotten").await
        }
        _ => Err(WebError::NotFound("There is no such action.".into())),
    }
}

#[derive(serde::Deserialize)]
pub struct JoinFields {
    #[serde(default)]
    expires_in: String,
    #[serde(default)]
    note: String,
}

/// `POST /ui/admin/join-tokens`: the token is drawn once in this answer, never stored.
pub async fn join_token(
    State(cx): State<Ctx>,
    AdminForm { admin, form }: AdminForm<JoinFields>,
) -> WebResult<Response> {
    let actor = admin.session.subject.actor();
    let note = form.note.trim();
    let req = JoinTokenCreate {
        expires_in: form.expires_in.trim().parse().unwrap_or(0),
        note: (!note.is_empty()).then(|| note.to_string()),
    };
    let t = match cx.engine.join_token_create(&actor, &req).await {
        Ok(t) => t,
        Err(e) => {
            return page::done::<()>(&cx, &admin, Err(e), routes::UI_ADMIN_MACHINES, "").await;
        }
    };
    let once = html! {
        section.card.secret #join {
            h2 { "Join token" }
            p { "Use it once on the new machine before " (layout::utc(t.expires_at)) "; it is shown only now:" }
            p.value.mono #join-token-value { (t.join_token) }
            p.muted { "On the machine: " code { "latchkey-agent join --server https://THIS-SERVER --join-token TOKEN --pin " (cx.engine.tls_fingerprint()) } }
        }
    };
    page(&cx, &admin, &FlashQuery::default(), Some(once)).await
}
