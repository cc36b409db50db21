//! What every console page shares: the nav, the shell with the admin's flash, and the end
//! of every POST (303 with a flash code; a refusal's sentence kept with the session).

use crate::engine::EngineError;
use crate::http::Ctx;
use crate::web::layout::{self, FlashQuery, Nav, NavLink, SAID};
use crate::web::session::{AdminSession, WebError, WebResult};
use axum::http::StatusCode;
use axum::response::Response;
use maud::Markup;

/// The console's navigation (ids for the browser tests: `a#nav-…`).
pub const NAV: &[NavLink] = &[
    NavLink {
        id: "nav-overview",
        href: "/ui/admin/",
        label: "Overview",
    },
    NavLink {
        id: "nav-users",
        href: "/ui/admin/users",
        label: "Users",
    },
    NavLink {
        id: "nav-policies",
        href: "/ui/admin/policies",
        label: "Policies",
    },
    NavLink {
        id: "nav-machines",
        href: "/ui/admin/machines",
        label: "Machines",
    },
    NavLink {
        id: "nav-audit",
        href: "/ui/admin/audit",
        label: "Audit",
    },
    NavLink {
        id: "nav-events",
        href: "/ui/admin/events",
        label: "Events",
    },
    NavLink {
        id: "nav-sessions",
        href: "/ui/admin/sessions",
        label: "Sessions",
    },
];

/// A console page for `admin`, with the flash `q` asks for (codes of `table`).
pub async fn render(
    cx: &Ctx,
    admin: &AdminSession,
    current: &str,
    title: &str,
    q: &FlashQuery,
    table: &[(&str, &str)],
    body: Markup,
) -> WebResult<Response> {
    let said = if q.err.as_deref() == Some(SAID) || q.ok.as_deref() == Some(SAID) {
        cx.engine.web_flash_take(&admin.cookie).await?
    } else {
        None
    };
    let nav = Nav {
        links: NAV,
        current,
        who: Some(&admin.name),
        session: Some(&admin.session),
        flash: q.flash(table, said),
    };
    Ok(layout::html_response(
        StatusCode::OK,
        layout::page(title, &nav, body),
    ))
}

/// The end of a console POST: 303 to `to?ok=CODE` when the engine agreed; when it refused
/// for a reason the admin can act on, that sentence is kept with the session and the page
/// shows it (`?err=said`). A database failure is a 503 page.
pub async fn done<T>(
    cx: &Ctx,
    admin: &AdminSession,
    result: Result<T, EngineError>,
    to: &str,
    ok: &str,
) -> WebResult<Response> {
    let sep = if to.contains('?') { '&' } else { '?' };
    match result {
        Ok(_) => Ok(layout::see_other(&format!("{to}{sep}ok={ok}"))),
        Err(e) => match WebError::from(e) {
            WebError::Invalid(s) | WebError::NotFound(s) | WebError::Forbidden(s) => {
                cx.engine.web_flash_set(&admin.cookie, &s).await?;
                Ok(layout::see_other(&format!("{to}{sep}err={SAID}")))
            }
            other => Err(other),
        },
    }
}
