//! `/ui/admin/policies`: client policies per client_id — the list, one policy's effective
//! settings with an edit form (one input per key), creating and removing. The values are
//! checked by the engine's `policy_set`, the same rules as `latchkey policy set`; the
//! `key=value` lines of the create form are read by the CLI's own parser
//! ([`parse_setting`]).

use super::page;
use crate::engine::EngineError;
use crate::http::Ctx;
use crate::policy;
use crate::web::layout::{self, FlashQuery};
use crate::web::session::{AdminForm, AdminSession, WebError, WebResult};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use latchkey_proto::admin::PolicyUpdate;
use latchkey_proto::policy_text::parse_setting;
use latchkey_proto::routes;
use maud::html;
use std::collections::BTreeMap;

const FLASH: &[(&str, &str)] = &[
    ("created", "The policy was saved."),
    ("saved", "The policy was saved."),
    ("nochange", "Nothing was changed."),
    ("removed", "The policy was removed."),
];

/// The id of a setting's input (`offline.max_days` → `pol-offline-max_days`).
fn input_id(key: &str) -> String {
    format!("pol-{}", key.replace('.', "-"))
}

pub async fn list(
    State(cx): State<Ctx>,
    admin: AdminSession,
    Query(q): Query<FlashQuery>,
) -> WebResult<Response> {
    let policies = cx.engine.policy_list().await?;
    let body = html! {
        h1 { "Client policies" }
        p.muted {
            "A policy applies to logins through its client_id (access context: login, unlock, elevation, remote, or one you define); "
            "what it does not set comes from " code { "*" } ", then the built-in defaults."
        }
        div.table-wrap {
            table #policies {
                thead { tr { th { "client_id" } th { "MFA" } th { "Methods" } th { "Scope" } th { "Fail mode" } th { "Offline" } } }
                tbody {
                    @for p in &policies {
                        tr data-policy=(p.client_id) {
                            td { a href=(routes::ui_admin_policy(&p.client_id)) { code { (p.client_id) } } }
                            td { @if p.mfa_required { "required" } @else { "off" } }
                            td { (p.methods.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ")) }
                            td {
                                @if p.users.is_empty() && p.groups.is_empty() { "everyone" }
                                @else {
                                    @if !p.users.is_empty() { "users: " (p.users.join(", ")) " " }
                                    @if !p.groups.is_empty() { "groups: " (p.groups.join(", ")) }
                                }
                            }
                            td { (p.settings().into_iter().find(|(k, _)| *k == "failmode").map(|(_, v)| v).unwrap_or_default()) }
                            td {
                                @if p.offline.enabled { (p.offline.max_days) " days, " (p.offline.max_logins) " logins" }
                                @else { "no" }
                            }
                        }
                    }
                }
            }
        }
        @if policies.is_empty() { p.muted { "No policies yet: the built-in defaults apply everywhere." } }
        h2 { "Create or change a policy" }
        form.card #policy-add method="post" action=(routes::UI_ADMIN_POLICIES) {
            (layout::csrf_field(&admin.session))
            (layout::text_field("policy-id", "client_id", "client_id", "", Some("e.g. login, remote, or * for the defaults of all.")))
            div.field {
                label for="policy-settings" { "Settings" }
                textarea id="policy-settings" name="settings" rows="4" aria-describedby="policy-settings-hint" {}
                div.hint id="policy-settings-hint" { "One key=value a line, as for latchkey policy set, e.g. mfa_required=true." }
            }
            button #policy-add-go type="submit" { "Save policy" }
        }
        (keys_help())
    };
    page::render(&cx, &admin, "nav-policies", "Policies", &q, FLASH, body).await
}

fn keys_help() -> maud::Markup {
    html! {
        details #policy-keys {
            summary { "The settings" }
            dl.kv {
                @for (k, what) in policy::KEYS { dt { code { (k) } } dd { (what) } }
            }
        }
    }
}

#[derive(serde::Deserialize)]
pub struct CreateFields {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    settings: String,
}

pub async fn create(
    State(cx): State<Ctx>,
    AdminForm { admin, form }: AdminForm<CreateFields>,
) -> WebResult<Response> {
    let id = form.client_id.trim().to_string();
    let mut settings = BTreeMap::new();
    for line in form
        .settings
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        match parse_setting(line) {
            Ok((k, v)) => {
                settings.insert(k, v);
            }
            Err(e) => {
                let r = Err::<(), _>(EngineError::Invalid(e));
                return page::done(&cx, &admin, r, routes::UI_ADMIN_POLICIES, "").await;
            }
        }
    }
    let actor = admin.session.subject.actor();
    let r = cx
        .engine
        .policy_set(&actor, &id, &PolicyUpdate { settings })
        .await;
    match r {
        Ok(_) => {
            page::done(
                &cx,
                &admin,
                Ok(()),
                &routes::ui_admin_policy(&id),
                "created",
            )
            .await
        }
        Err(e) => page::done::<()>(&cx, &admin, Err(e), routes::UI_ADMIN_POLICIES, "").await,
    }
}

pub async fn show(
    State(cx): State<Ctx>,
    admin: AdminSession,
    Path(id): Path<String>,
    Query(q): Query<FlashQuery>,
) -> WebResult<Response> {
    let d = cx.engine.policy_detail(&id).await?;
    let action = routes::ui_admin_policy(&id);
    let shown = d.effective.settings();
    let body = html! {
        p { a href=(routes::UI_ADMIN_POLICIES) { "← Policies" } }
        h1 { "Policy " code { (id) } }
        p.muted { "Each field shows the policy's own value; an empty field inherits the value shown beside it. Clear a field to inherit again." }
        form.card #policy-edit method="post" action=(action) {
            (layout::csrf_field(&admin.session))
            input type="hidden" name="op" value="save";
            div.table-wrap {
                table #policy-settings-table {
                    thead { tr { th { "Setting" } th { "Own value" } th { "Effective" } } }
                    tbody {
                        @for (k, what) in policy::KEYS {
                            @let iid = input_id(k);
                            @let own = d.own.get(*k).map(String::as_str).unwrap_or("");
                            @let eff = shown.iter().find(|(s, _)| s == k).map(|(_, v)| v.as_str()).unwrap_or("");
                            tr data-key=(k) {
                                td {
                                    label for=(iid) { code { (k) } }
                                    div.hint id=(format!("{iid}-hint")) { (what) }
                                }
                                td { input type="text" id=(iid) name=(k) value=(own) aria-describedby=(format!("{iid}-hint")); }
                                td.mono.effective { (eff) }
                            }
                        }
                    }
                }
            }
            button #policy-save type="submit" { "Save" }
        }
        @if id != policy::FALLBACK {
            form.inline-form #policy-remove method="post" action=(action) {
                (layout::csrf_field(&admin.session))
                input type="hidden" name="op" value="remove";
                button.danger #policy-remove-go type="submit" { "Remove this policy" }
            }
        }
    };
    page::render(
        &cx,
        &admin,
        "nav-policies",
        &format!("Policy {id}"),
        &q,
        FLASH,
        body,
    )
    .await
}

/// `POST /ui/admin/policies/{id}`: `op=save` (the changed fields only; an emptied field
/// returns the key to its inherited value) or `op=remove`.
pub async fn change(
    State(cx): State<Ctx>,
    Path(id): Path<String>,
    AdminForm { admin, form }: AdminForm<BTreeMap<String, String>>,
) -> WebResult<Response> {
    let actor = admin.session.subject.actor();
    let to = routes::ui_admin_policy(&id);
    match form.get("op").map(String::as_str) {
        Some("remove") => {
            let r = cx.engine.policy_remove(&actor, &id).await;
            match r {
                Ok(()) => {
                    page::done(&cx, &admin, Ok(()), routes::UI_ADMIN_POLICIES, "removed").await
                }
                Err(e) => page::done::<()>(&cx, &admin, Err(e), &to, "").await,
            }
        }
        Some("save") => {
            let d = cx.engine.policy_detail(&id).await?;
            let mut settings = BTreeMap::new();
            for (k, _) in policy::KEYS {
                let Some(v) = form.get(*k) else { continue };
                let v = v.trim();
                let own = d.own.get(*k).map(String::as_str).unwrap_or("");
                if v != own {
                    settings.insert((*k).to_string(), v.to_string());
                }
            }
            if settings.is_empty() {
                return page::done(&cx, &admin, Ok(()), &to, "nochange").await;
            }
            let r = cx
                .engine
                .policy_set(&actor, &id, &PolicyUpdate { settings })
                .await;
            page::done(&cx, &admin, r, &to, "saved").await
        }
        _ => Err(WebError::Invalid(
            "The form is incomplete or malformed.".into(),
        )),
    }
}
