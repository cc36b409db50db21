//! Admin routes for users and their tokens (admin API key only).

use super::Ctx;
use super::error::ApiErr;
use super::extract::{AdminCaller, Json};
use crate::engine::Actor;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_proto::admin::*;

type ApiResult<T> = Result<Json<T>, ApiErr>;

pub async fn user_add(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Json(req): Json<UserCreate>,
) -> Result<(StatusCode, Json<User>), ApiErr> {
    Ok((
        StatusCode::CREATED,
        Json(cx.engine.user_add(&Actor::Admin, req).await?),
    ))
}

pub async fn user_list(State(cx): State<Ctx>, _: AdminCaller) -> ApiResult<Vec<User>> {
    Ok(Json(cx.engine.user_list().await?))
}

pub async fn user_show(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(name): Path<String>,
) -> ApiResult<User> {
    Ok(Json(cx.engine.user_show(&name).await?))
}

pub async fn user_update(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(name): Path<String>,
    Json(req): Json<UserUpdate>,
) -> ApiResult<User> {
    Ok(Json(
        cx.engine.user_update(&Actor::Admin, &name, &req).await?,
    ))
}

pub async fn user_remove(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiErr> {
    cx.engine.user_remove(&Actor::Admin, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/admin/users/{name}/invite`: the link's host is the one the admin reached the
/// server by, unless `web_origin` says otherwise (Engine::public_base).
pub async fn user_invite(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    Json(req): Json<UserInviteCreate>,
) -> Result<(StatusCode, Json<UserInvited>), ApiErr> {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let invite = cx
        .engine
        .user_invite(&crate::engine::Actor::Admin, &name, req.expires_in, host)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserInvited {
            user: invite.user,
            url: invite.url,
            expires_at: invite.expires_at,
        }),
    ))
}

pub async fn token_add(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(name): Path<String>,
    Json(req): Json<OtpTokenCreate>,
) -> Result<(StatusCode, Json<TokenEnrolled>), ApiErr> {
    Ok((
        StatusCode::CREATED,
        Json(cx.engine.token_add(&Actor::Admin, &name, &req).await?),
    ))
}

pub async fn token_list(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(name): Path<String>,
) -> ApiResult<Vec<TokenInfo>> {
    Ok(Json(cx.engine.token_list(&name).await?))
}

/// Removes an OATH token, or revokes a token app (and the TOTP seed it received).
pub async fn token_remove(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiErr> {
    cx.engine.token_remove(&Actor::Admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn token_verify(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(name): Path<String>,
    Json(req): Json<VerifyRequest>,
) -> ApiResult<VerifyResult> {
    if req.code.len() > 64 {
        return Err(ApiErr::bad_request("code is too long"));
    }
    Ok(Json(
        cx.engine
            .admin_verify(&Actor::Admin, &name, req.code.expose())
            .await?,
    ))
}

pub async fn token_resync(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(id): Path<String>,
    Json(req): Json<TokenResync>,
) -> ApiResult<VerifyResult> {
    Ok(Json(
        cx.engine
            .hotp_resync(&Actor::Admin, &id, req.code1.expose(), req.code2.expose())
            .await?,
    ))
}
