//! `POST /ui/admin/tokens/{id}/{action}`: removing a token and resynchronising an HOTP
//! token, from the user page (its hidden `user` field says where to go back to).

use super::page;
use crate::engine::{EngineError, validate_user_name};
use crate::http::Ctx;
use crate::web::session::{AdminForm, WebError, WebResult};
use axum::extract::{Path, State};
use axum::response::Response;
use latchkey_proto::{Secret, routes};

#[derive(serde::Deserialize)]
pub struct TokenFields {
    #[serde(default)]
    user: String,
    #[serde(default)]
    code1: Secret,
    #[serde(default)]
    code2: Secret,
}

pub async fn action(
    State(cx): State<Ctx>,
    Path((id, action)): Path<(String, String)>,
    AdminForm { admin, form }: AdminForm<TokenFields>,
) -> WebResult<Response> {
    validate_user_name(&form.user).map_err(WebError::from)?;
    let to = routes::ui_admin_user(&form.user);
    let actor = admin.session.subject.actor();
    // The token must be the user's: the page's own link never names another user's token,
    // and a form that does is refused rather than acted on.
    let owned = cx
        .engine
        .token_list(&form.user)
        .await?
        .iter()
        .any(|t| t.id == id);
    if !owned {
        let e = EngineError::NotFound(format!("token {id:?} not found"));
        return page::done::<()>(&cx, &admin, Err(e), &to, "").await;
    }
    match action.as_str() {
        "revoke" => {
            let r = cx.engine.token_remove(&actor, &id).await;
            page::done(&cx, &admin, r, &to, "revoked").await
        }
        "resync" => {
            let r = cx
                .engine
                .hotp_resync(
                    &actor,
                    &id,
                    form.code1.expose().trim(),
                    form.code2.expose().trim(),
                )
                .await;
            match r {
                Ok(v) if !v.ok => Ok(crate::web::layout::see_other(&format!(
                    "{to}?err=notresynced"
                ))),
                r => page::done(&cx, &admin, r, &to, "resynced").await,
            }
        }
        _ => Err(WebError::NotFound("There is no such action.".into())),
    }
}
