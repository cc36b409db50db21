//! `/ui/admin/users/{name}`: one user — display name and groups, enable/disable, lockout
//! reset, the invite link, and the user's tokens (enrol TOTP/HOTP, revoke, HOTP resync).
//!
//! The two answers that carry a secret (a new token's seed, an invite link) are the POST's
//! own page (200, `Cache-Control: no-store`) rather than a redirect: the secret is drawn
//! once and is never stored, put in a URL or kept with the session.

use super::page;
use super::users::split_groups;
use crate::engine::Actor;
use crate::http::Ctx;
use crate::web::layout::{self, FlashQuery};
use crate::web::session::{AdminForm, AdminSession, WebResult};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use latchkey_proto::admin::{OtpTokenCreate, TokenInfo, UserUpdate};
use latchkey_proto::{TokenKind, routes};
use maud::{Markup, html};

pub const FLASH: &[(&str, &str)] = &[
    ("saved", "The user was saved."),
    (
        "disabled",
        "The user was disabled; its offline bundles are revoked.",
    ),
    ("enabled", "The user was enabled."),
    ("unlocked", "The lockout was reset."),
    ("revoked", "The token was removed."),
    ("resynced", "The HOTP token was resynchronised."),
    (
        "notresynced",
        "The two codes were not found in the resynchronisation window; the token is unchanged.",
    ),
];

/// `GET /ui/admin/users/{name}`.
pub async fn show(
    State(cx): State<Ctx>,
    admin: AdminSession,
    Path(name): Path<String>,
    Query(q): Query<FlashQuery>,
) -> WebResult<Response> {
    detail(&cx, &admin, &name, &q, None).await
}

/// The user page, with `once` (a secret just made) above everything else.
async fn detail(
    cx: &Ctx,
    admin: &AdminSession,
    name: &str,
    q: &FlashQuery,
    once: Option<Markup>,
) -> WebResult<Response> {
    let u = cx.engine.user_show(name).await?;
    let tokens = cx.engine.token_list(name).await?;
    let base = routes::ui_admin_user(&u.name);
    let act = |a: &str| format!("{base}/{a}");
    let s = &admin.session;
    let locked = u.locked_until.is_some();
    let body = html! {
        p { a href=(routes::UI_ADMIN_USERS) { "← Users" } }
        h1 { "User " (u.name) }
        @if let Some(once) = once { (once) }
        dl.kv #user-facts {
            dt { "State" }
            dd {
                @if !u.enabled { span.badge.err #user-state { "disabled" } }
                @else if locked { span.badge.warn #user-state { "locked" } }
                @else { span.badge.ok #user-state { "enabled" } }
            }
            @if let Some(t) = u.locked_until { dt { "Locked until" } dd { (layout::time(Some(t))) } }
            dt { "Created" } dd { (layout::time(Some(u.created_at))) }
            dt { "Tokens" } dd { (u.token_count) }
        }
        div.actions {
            @if u.enabled {
                (layout::post_button(&act("disable"), s, "Disable user", Some("disable-go"), "danger"))
                (layout::post_button(&act("invite"), s, "Invite link", Some("invite-go"), "secondary"))
            } @else {
                (layout::post_button(&act("enable"), s, "Enable user", Some("disable-go"), "secondary"))
            }
            @if locked {
                (layout::post_button(&act("unlock"), s, "Reset lockout", Some("unlock-go"), "secondary"))
            }
        }
        h2 { "Details" }
        form.card #user-edit method="post" action=(act("update")) {
            (layout::csrf_field(s))
            (layout::text_field("user-display", "display_name", "Display name", &u.display_name, None))
            (layout::text_field("user-groups", "groups", "Groups", &u.groups.join(", "), Some("Comma-separated; empty for none.")))
            button #user-save type="submit" { "Save" }
        }
        h2 { "Tokens" }
        (token_table(admin, &u.name, &tokens))
        h2 { "Enrol a token" }
        form.card #token-add method="post" action=(act("token")) {
            (layout::csrf_field(s))
            (layout::select_field("token-kind", "kind", "Kind", &[("totp", "TOTP (time-based, authenticator app)"), ("hotp", "HOTP (counter-based)")], "totp"))
            (layout::text_field("token-label", "label", "Label", "", Some("Optional, e.g. the phone's name.")))
            button #token-add-go type="submit" { "Enrol token" }
        }
        p.muted {
            "Token apps, security keys and smartcards are registered by the user (the self-service portal or an invite link) or with the CLI."
        }
    };
    page::render(cx, admin, "nav-users", &u.name, q, FLASH, body).await
}

fn token_table(admin: &AdminSession, user: &str, tokens: &[TokenInfo]) -> Markup {
    let s = &admin.session;
    html! {
        @if tokens.is_empty() {
            p.muted #no-tokens { "No tokens yet." }
        } @else {
            div.table-wrap {
                table #tokens {
                    thead { tr { th { "Id" } th { "Kind" } th { "Label" } th { "Created" } th { "Last used" } th { "Actions" } } }
                    tbody {
                        @for t in tokens {
                            @let base = format!("/ui/admin/tokens/{}", routes::encode_path_segment(&t.id));
                            tr data-token=(t.id) {
                                td.mono { (t.id) }
                                td { (t.kind.to_string()) }
                                td { (t.label) }
                                td { (layout::time(Some(t.created_at))) }
                                td { (layout::time(t.last_used_at)) }
                                td.actions-cell {
                                    form.inline-form method="post" action=(format!("{base}/revoke")) {
                                        (layout::csrf_field(s))
                                        input type="hidden" name="user" value=(user);
                                        button.danger.small.revoke type="submit" aria-label=(format!("Remove token {}", t.id)) { "Remove" }
                                    }
                                    @if t.kind == TokenKind::Hotp {
                                        @let id1 = format!("resync1-{}", t.id);
                                        @let id2 = format!("resync2-{}", t.id);
                                        form.row-form.resync method="post" action=(format!("{base}/resync")) {
                                            (layout::csrf_field(s))
                                            input type="hidden" name="user" value=(user);
                                            div.field {
                                                label for=(id1) { "Code" }
                                                input type="text" id=(id1) name="code1" inputmode="numeric" autocomplete="off" size="8";
                                            }
                                            div.field {
                                                label for=(id2) { "Next code" }
                                                input type="text" id=(id2) name="code2" inputmode="numeric" autocomplete="off" size="8";
                                            }
                                            button.secondary.small type="submit" { "Resync" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ActionFields {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    groups: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    label: String,
}

/// `POST /ui/admin/users/{name}/{action}`: update, disable, enable, unlock, invite, token.
pub async fn action(
    State(cx): State<Ctx>,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
    AdminForm { admin, form }: AdminForm<ActionFields>,
) -> WebResult<Response> {
    let actor = admin.session.subject.actor();
    let to = routes::ui_admin_user(&name);
    let update = |u: UserUpdate| {
        let (cx, actor, name) = (&cx, &actor, &name);
        async move { cx.engine.user_update(actor, name, &u).await }
    };
    match action.as_str() {
        "update" => {
            let u = UserUpdate {
                display_name: Some(form.display_name.trim().to_string()),
                groups: Some(split_groups(&form.groups)),
                enabled: None,
            };
            let r = update(u).await;
            page::done(&cx, &admin, r, &to, "saved").await
        }
        "disable" | "enable" => {
            let on = action == "enable";
            let u = UserUpdate {
                enabled: Some(on),
                ..UserUpdate::default()
            };
            let r = update(u).await;
            page::done(&cx, &admin, r, &to, if on { "enabled" } else { "disabled" }).await
        }
        "unlock" => {
            let r = cx.engine.user_unlock(&actor, &name).await;
            page::done(&cx, &admin, r, &to, "unlocked").await
        }
        "invite" => invite(&cx, &admin, &actor, &name, &headers).await,
        "token" => token_add(&cx, &admin, &actor, &name, &form).await,
        _ => Err(crate::web::session::WebError::NotFound(
            "There is no such action.".into(),
        )),
    }
}

async fn invite(
    cx: &Ctx,
    admin: &AdminSession,
    actor: &Actor,
    name: &str,
    headers: &HeaderMap,
) -> WebResult<Response> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let to = routes::ui_admin_user(name);
    let invite = match cx.engine.user_invite(actor, name, None, host).await {
        Ok(i) => i,
        Err(e) => return page::done::<()>(cx, admin, Err(e), &to, "").await,
    };
    let url = invite.url.expose();
    let once = html! {
        section.card.secret #invite {
            h2 { "Invite link" }
            p { "Give this link to " (name) ". It works once, until " (layout::utc(invite.expires_at)) "; it is shown only now." }
            p.value #invite-url { (url) }
            (layout::qr_img(url, "QR code of the invite link"))
        }
    };
    detail(cx, admin, name, &FlashQuery::default(), Some(once)).await
}

async fn token_add(
    cx: &Ctx,
    admin: &AdminSession,
    actor: &Actor,
    name: &str,
    form: &ActionFields,
) -> WebResult<Response> {
    let to = routes::ui_admin_user(name);
    let kind = match form.kind.as_str() {
        "totp" => TokenKind::Totp,
        "hotp" => TokenKind::Hotp,
        _ => {
            let e = crate::engine::EngineError::Invalid("Choose TOTP or HOTP.".into());
            return page::done::<()>(cx, admin, Err(e), &to, "").await;
        }
    };
    let label = form.label.trim();
    let req = OtpTokenCreate {
        kind,
        algorithm: None,
        digits: None,
        period: None,
        label: (!label.is_empty()).then(|| label.to_string()),
        secret: None,
    };
    let enrolled = match cx.engine.token_add(actor, name, &req).await {
        Ok(t) => t,
        Err(e) => return page::done::<()>(cx, admin, Err(e), &to, "").await,
    };
    let uri = enrolled.otpauth_uri.as_str();
    let secret = latchkey_crypto::otpauth::OtpAuthUri::parse(uri)
        .map(|u| latchkey_crypto::base32_encode(&u.secret))
        .unwrap_or_default();
    let once = html! {
        section.card.secret #token-new data-token=(enrolled.token.id) {
            h2 { "New " (kind.to_string().to_uppercase()) " token " (enrolled.token.id) }
            p { "Scan the QR code with an authenticator app, or type the secret. It is shown only now." }
            (layout::qr_img(uri, "QR code of the new token"))
            p { "Secret: " span.value.mono #token-secret { (secret) } }
            details {
                summary { "otpauth URI" }
                p.value.mono #token-uri { (uri) }
            }
        }
    };
    detail(cx, admin, name, &FlashQuery::default(), Some(once)).await
}
