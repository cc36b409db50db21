//! The page shell every `/ui` page is drawn in (maud: every interpolated value is escaped),
//! the flash line, the CSRF fields and small form helpers.
//!
//! Pages are plain HTML that works without script: real links and buttons, a `<label for>`
//! on every input, no inline style or script (the CSP forbids both; looks are classes of
//! `ui.css`).

use super::assets;
use super::session::SigninCsrf;
use crate::engine::WebSession;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// One link of the navigation bar.
#[derive(Debug, Clone, Copy)]
pub struct NavLink {
    /// The element id (`nav-users` is `a#nav-users`).
    pub id: &'static str,
    pub href: &'static str,
    pub label: &'static str,
}

/// What the page shell shows around a page's body.
#[derive(Debug, Default)]
pub struct Nav<'a> {
    pub links: &'static [NavLink],
    /// The id of the link of this page (marked `aria-current`).
    pub current: &'a str,
    /// Who is signed in (shown beside the sign-out button).
    pub who: Option<&'a str>,
    /// The session, when there is one: the sign-out form needs its CSRF token.
    pub session: Option<&'a WebSession>,
    pub flash: Option<Flash>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlashKind {
    Ok,
    Err,
}

/// The one line at the top of a page saying what the last action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub kind: FlashKind,
    pub text: String,
}

/// `?ok=CODE` / `?err=CODE` of a page reached by a post/redirect/get. The code is looked up
/// in the page's table, so no text a user typed ever travels in a URL; the code
/// [`SAID`] means "the sentence stored with the session" (a refusal's own reason).
#[derive(Debug, Default, serde::Deserialize)]
pub struct FlashQuery {
    pub ok: Option<String>,
    pub err: Option<String>,
}

/// The flash code for "show the sentence the session holds" ([`crate::engine::Engine::web_flash_set`]).
pub const SAID: &str = "said";

impl FlashQuery {
    /// The flash this query asks for: a code of `table`, or the session's stored sentence
    /// for [`SAID`]. Unknown codes show nothing.
    pub fn flash(&self, table: &[(&str, &str)], said: Option<String>) -> Option<Flash> {
        let pick = |code: &str, kind: FlashKind| {
            if code == SAID {
                return said.clone().map(|text| Flash { kind, text });
            }
            table.iter().find(|(c, _)| *c == code).map(|(_, t)| Flash {
                kind,
                text: (*t).to_string(),
            })
        };
        if let Some(code) = &self.err {
            return pick(code, FlashKind::Err);
        }
        self.ok.as_deref().and_then(|c| pick(c, FlashKind::Ok))
    }
}

/// A full page: `<!doctype html>`, the viewport, the stylesheet, the nav, the flash line
/// and `<main>`.
pub fn page(title: &str, nav: &Nav<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · latchkey" }
                link rel="stylesheet" href=(assets::url("ui.css"));
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    div.top-inner {
                        a.brand href="/ui/" { "latchkey" }
                        @if !nav.links.is_empty() {
                            nav aria-label="Main" {
                                ul {
                                    @for l in nav.links {
                                        li {
                                            a id=(l.id) href=(l.href)
                                                aria-current=[(l.id == nav.current).then_some("page")] {
                                                (l.label)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        @if let Some(s) = nav.session {
                            form #signout method="post" action="/ui/signout" {
                                (csrf_field(s))
                                @if let Some(who) = nav.who {
                                    span.muted { (who) " " }
                                }
                                button.secondary.small type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main {
                    @if let Some(f) = &nav.flash {
                        @let class = match f.kind { FlashKind::Ok => "flash ok", FlashKind::Err => "flash err" };
                        p class=(class) role=(if f.kind == FlashKind::Err { "alert" } else { "status" }) { (f.text) }
                    }
                    (body)
                }
            }
        }
    }
}

/// A rendered page as an answer (the middleware adds the security headers).
pub fn html_response(status: StatusCode, m: Markup) -> Response {
    (status, Html(m.into_string())).into_response()
}

/// A page that only says one sentence: refusals on `/ui` are pages, not the API's JSON.
pub fn error_page(status: StatusCode, sentence: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Refused");
    let nav = Nav {
        flash: Some(Flash {
            kind: FlashKind::Err,
            text: sentence.to_string(),
        }),
        ..Nav::default()
    };
    html_response(
        status,
        page(
            title,
            &nav,
            html! {
                h1 { (title) }
                p { a href="/ui/" { "Back to the start page" } }
            },
        ),
    )
}

/// 303 See Other to `to` (a path of ours, with its flash code).
pub fn see_other(to: &str) -> Response {
    let v = HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/ui/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response()
}

/// The hidden CSRF field every form of a signed-in page carries.
pub fn csrf_field(session: &WebSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// The hidden field of a sign-in form (no session yet: a double-submit token whose cookie
/// [`SigninCsrf::set_cookie`] sets).
pub fn signin_csrf(pre: &SigninCsrf) -> Markup {
    html! { input type="hidden" name="csrf" value=(pre.token()); }
}

/// A labelled text input.
pub fn text_field(id: &str, name: &str, label: &str, value: &str, hint: Option<&str>) -> Markup {
    field(id, name, label, value, hint, "text", None)
}

/// A labelled input of any type, with an optional `autocomplete`.
pub fn field(
    id: &str,
    name: &str,
    label: &str,
    value: &str,
    hint: Option<&str>,
    ty: &str,
    autocomplete: Option<&str>,
) -> Markup {
    let hint_id = format!("{id}-hint");
    html! {
        div.field {
            label for=(id) { (label) }
            input type=(ty) id=(id) name=(name) value=(value) autocomplete=[autocomplete]
                aria-describedby=[hint.map(|_| hint_id.as_str())];
            @if let Some(h) = hint { div.hint id=(hint_id) { (h) } }
        }
    }
}

/// A labelled select; `options` are (value, label).
pub fn select_field(
    id: &str,
    name: &str,
    label: &str,
    options: &[(&str, &str)],
    selected: &str,
) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(name) {
                @for (v, l) in options {
                    option value=(v) selected[*v == selected] { (l) }
                }
            }
        }
    }
}

/// A form that is one button posting to `action` (revoke, remove, unlock…).
pub fn post_button(
    action: &str,
    session: &WebSession,
    label: &str,
    id: Option<&str>,
    class: &str,
) -> Markup {
    html! {
        form.inline-form method="post" action=(action) {
            (csrf_field(session))
            button type="submit" id=[id] class=(class) { (label) }
        }
    }
}

/// A QR code of `text` as an `<img>` of inline SVG data (`img-src data:` in the CSP).
pub fn qr_img(text: &str, alt: &str) -> Markup {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return html! { p.muted { "(The QR code could not be drawn; use the text below.)" } };
    };
    let w = code.width();
    let quiet = 4;
    let size = w + 2 * quiet;
    let mut path = String::new();
    for (i, c) in code.to_colors().iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (x, y) = (i % w + quiet, i / w + quiet);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" shape-rendering=\"crispEdges\"><rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    );
    use base64::Engine as _;
    let data = format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    );
    html! { img.qr src=(data) alt=(alt); }
}

/// A time as `YYYY-MM-DD HH:MM:SS UTC`, or `—`.
pub fn time(unix: Option<i64>) -> Markup {
    match unix {
        Some(t) if t > 0 => html! { time datetime=(rfc3339(t)) { (utc(t)) } },
        _ => html! { "—" },
    }
}

fn rfc3339(t: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time.
pub fn utc(t: i64) -> String {
    rfc3339(t).replacen('T', " ", 1).replace('Z', " UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn flash_codes_come_from_the_table_only() {
        let q = FlashQuery {
            ok: Some("added".into()),
            err: None,
        };
        let t = [("added", "The user was added.")];
        assert_eq!(
            q.flash(&t, None).map(|f| f.text),
            Some("The user was added.".into())
        );
        let q = FlashQuery {
            ok: None,
            err: Some("<script>".into()),
        };
        assert_eq!(q.flash(&t, None), None);
        let q = FlashQuery {
            ok: None,
            err: Some(SAID.into()),
        };
        assert_eq!(
            q.flash(&t, Some("No.".into())),
            Some(Flash {
                kind: FlashKind::Err,
                text: "No.".into()
            })
        );
    }
}
