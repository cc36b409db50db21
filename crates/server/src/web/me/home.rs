//! `/ui/me/`: the user's own tokens (rename, remove, test) and recent logins ("This wasn't
//! me"), with the buttons that add a token.

use super::{invite_note, me, nav};
use crate::http::Ctx;
use crate::web::layout::{self, FlashQuery, SAID};
use crate::web::session::{UserForm, UserSession, WebError, WebResult};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use latchkey_proto::{TokenKind, routes};
use maud::html;

const FLASH: &[(&str, &str)] = &[
    ("renamed", "The token was renamed."),
    ("removed", "The token was removed."),
    ("totp", "Your authenticator app is enrolled."),
    ("key", "Your security key is registered."),
    (
        "reported",
        "Thank you: the login was reported to your administrators.",
    ),
    (
        "locked",
        "The login was reported, and your account is locked until an administrator looks at it.",
    ),
];

fn kind_label(k: TokenKind) -> &'static str {
    match k {
        TokenKind::Totp => "authenticator app",
        TokenKind::Hotp => "hardware code token",
        TokenKind::App => "latchkey token app",
        TokenKind::Fido2 => "security key",
        TokenKind::Smartcard => "smartcard",
    }
}

/// `GET /ui/me/`.
pub async fn show(
    State(cx): State<Ctx>,
    user: UserSession,
    Query(q): Query<FlashQuery>,
) -> WebResult<Response> {
    let me = me(&user);
    let tokens = cx.engine.own_tokens(&me).await?;
    let logins = cx.engine.own_logins(&me).await?;
    let said = cx.engine.web_flash_take(&user.cookie).await?;
    let flash = q.flash(FLASH, said);
    let csrf = &user.session;
    let body = html! {
        h1 { "Your second factors" }
        @if let Some(note) = invite_note(&user) {
            p.card { (note) " " a #signin-strong href=(routes::UI_ME_SIGNIN) { "Sign in with a factor you have" } }
        }
        div.actions {
            a.button #add-totp href=(routes::UI_ME_TOTP) { "Add an authenticator app" }
            a.button #add-app href=(routes::UI_ME_APP) { "Add the latchkey token app" }
            a.button #add-key href=(routes::UI_ME_KEY) { "Add a security key or passkey" }
        }
        @if tokens.is_empty() {
            p.muted { "You have no second factor yet: add one above." }
        } @else {
            div.table-wrap {
                table #tokens {
                    thead { tr { th { "Name" } th { "Kind" } th { "Added" } th { "Last used" } th { "Actions" } } }
                    tbody {
                        @for t in &tokens {
                            @let action = |a: &str| latchkey_proto::routes::fill(routes::UI_ME_TOKEN_ACTION, &[&t.id, a]);
                            tr data-token=(t.id) {
                                td {
                                    form.rename.row-form method="post" action=(action("rename")) {
                                        (layout::csrf_field(csrf))
                                        div.field {
                                            label for=(format!("label-{}", t.id)) { "Name" }
                                            input.label type="text" id=(format!("label-{}", t.id)) name="label" value=(t.label) maxlength="64";
                                        }
                                        button.secondary.small type="submit" { "Rename" }
                                    }
                                }
                                td { (kind_label(t.kind)) }
                                td { (layout::time(Some(t.created_at))) }
                                td { (layout::time(t.last_used_at)) }
                                td.actions-cell {
                                    @if matches!(t.kind, TokenKind::Totp | TokenKind::Hotp) {
                                        a.test.button.secondary.small href=(latchkey_proto::routes::fill(routes::UI_ME_TEST, &[&t.id])) { "Test" }
                                        " "
                                    }
                                    form.inline-form method="post" action=(action("remove")) {
                                        (layout::csrf_field(csrf))
                                        button.remove.danger.small type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Your recent logins" }
        @if logins.is_empty() {
            p.muted { "No logins recorded yet." }
        } @else {
            div.table-wrap {
                table #logins {
                    thead { tr { th { "Time" } th { "Machine" } th { "Context" } th { "Online" } th { "Result" } th { "" } } }
                    tbody {
                        @for l in &logins {
                            tr data-event=(l.id) {
                                td { (layout::time(Some(l.time_ms / 1000))) }
                                td {
                                    (l.machine)
                                    @if let Some(r) = &l.rhost { span.muted { " from " (r) } }
                                }
                                td {
                                    (l.client_id.as_deref().unwrap_or("—"))
                                    @if let Some(s) = &l.service { span.muted { " (" (s) ")" } }
                                }
                                td { (match l.online { Some(true) => "online", Some(false) => "offline", None => "—" }) }
                                td {
                                    @if l.success { span.badge.ok { "success" } } @else { span.badge.err { "refused" } }
                                    @if let Some(m) = &l.method { span.muted { " " (m) } }
                                }
                                td.actions-cell {
                                    form.inline-form method="post" action=(latchkey_proto::routes::fill(routes::UI_ME_LOGIN_REPORT, &[&l.id])) {
                                        (layout::csrf_field(csrf))
                                        button.report.secondary.small type="submit" { "This wasn't me" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::html_response(
        axum::http::StatusCode::OK,
        layout::page("Your second factors", &nav(&user, "nav-me", flash), body),
    ))
}

#[derive(serde::Deserialize)]
pub struct TokenFields {
    #[serde(default)]
    label: String,
}

/// Back to `/ui/me/` with the engine's refusal as the flash (never in the URL).
pub async fn refused(cx: &Ctx, user: &UserSession, to: &str, e: WebError) -> WebResult<Response> {
    let text = match e {
        WebError::Invalid(s) | WebError::Forbidden(s) | WebError::NotFound(s) => s,
        other => return Err(other),
    };
    cx.engine.web_flash_set(&user.cookie, &text).await?;
    Ok(layout::see_other(&format!("{to}?err={SAID}")))
}

/// `POST /ui/me/tokens/{id}/rename|remove`.
pub async fn token_action(
    State(cx): State<Ctx>,
    Path((id, action)): Path<(String, String)>,
    UserForm { user, form }: UserForm<TokenFields>,
) -> WebResult<Response> {
    let me = me(&user);
    let (r, ok) = match action.as_str() {
        "rename" => (
            cx.engine.own_token_rename(&me, &id, &form.label).await,
            "renamed",
        ),
        "remove" => (cx.engine.own_token_remove(&me, &id).await, "removed"),
        _ => return Err(WebError::NotFound("There is no such page.".into())),
    };
    match r {
        Ok(()) => Ok(layout::see_other(&format!("{}?ok={ok}", routes::UI_ME))),
        Err(e) => refused(&cx, &user, routes::UI_ME, e.into()).await,
    }
}

#[derive(serde::Deserialize)]
pub struct Nothing {}

/// `POST /ui/me/logins/{id}/report`: "This wasn't me".
pub async fn report(
    State(cx): State<Ctx>,
    Path(id): Path<String>,
    UserForm { user, .. }: UserForm<Nothing>,
) -> WebResult<Response> {
    match cx.engine.own_login_report(&me(&user), &id).await {
        Ok(false) => Ok(layout::see_other(&format!("{}?ok=reported", routes::UI_ME))),
        // The account is disabled: this session ends with it.
        Ok(true) => {
            cx.engine.web_session_close(&user.cookie).await?;
            Ok(layout::error_page(
                axum::http::StatusCode::OK,
                "The login was reported, and your account is locked until an administrator looks at it.",
            ))
        }
        Err(e) => refused(&cx, &user, routes::UI_ME, e.into()).await,
    }
}
