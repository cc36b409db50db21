//! `/ui/invite/{code}`: an invite link's landing. The code is redeemed at once (one use),
//! an invite session opens and the browser goes on to `/ui/me/` — the code is in the
//! address bar for this one request only, and no log line prints the path (web::log_path).

use crate::engine::{INVITE_GONE, Strength, Subject};
use crate::http::Ctx;
use crate::web::layout;
use crate::web::session::{self, WebError, WebResult};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use latchkey_proto::routes;

pub async fn land(
    State(cx): State<Ctx>,
    Path(code): Path<String>,
    req: axum::extract::Request,
) -> WebResult<Response> {
    let ip = session::peer_ip(req.extensions());
    if !cx.signin_limiter.allow(&ip) {
        return Err(WebError::TooMany);
    }
    if req.headers().contains_key(header::AUTHORIZATION) {
        return Err(WebError::Forbidden(
            "An API key is not a web session: open the link in a browser.".into(),
        ));
    }
    let user = match cx.engine.invite_redeem(&code, &ip).await {
        Ok(user) => user,
        Err(crate::engine::EngineError::Unauthorized(_)) => {
            return Ok(layout::error_page(StatusCode::GONE, INVITE_GONE));
        }
        Err(e) => return Err(e.into()),
    };
    // Opening a session replaces the one the browser held.
    if let Some(old) = session::cookie(req.headers(), session::COOKIE) {
        cx.engine.web_session_close(old).await?;
    }
    let (cookie, _) = cx
        .engine
        .web_session_open(
            Subject::User {
                name: user.into_string(),
                strength: Strength::Invite,
            },
            &ip,
        )
        .await?;
    let mut r = layout::see_other(routes::UI_ME);
    r.headers_mut()
        .append(header::SET_COOKIE, session::session_cookie(&cookie));
    Ok(r)
}
