//! Admin routes for the web console's admin accounts (admin API key only): what
//! `latchkey admin add|list|remove|unlock` calls.

use super::Ctx;
use super::error::ApiErr;
use super::extract::{AdminCaller, Json};
use crate::engine::Actor;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_proto::admin::{AdminCreate, AdminCreated, AdminInfo};

pub async fn admin_add(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Json(req): Json<AdminCreate>,
) -> Result<(StatusCode, Json<AdminCreated>), ApiErr> {
    Ok((
        StatusCode::CREATED,
        Json(cx.engine.admin_add(&Actor::Admin, &req).await?),
    ))
}

pub async fn admin_list(
    State(cx): State<Ctx>,
    _: AdminCaller,
) -> Result<Json<Vec<AdminInfo>>, ApiErr> {
    Ok(Json(cx.engine.admin_list().await?))
}

pub async fn admin_remove(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiErr> {
    cx.engine.admin_remove(&Actor::Admin, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn admin_unlock(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(name): Path<String>,
) -> Result<Json<AdminInfo>, ApiErr> {
    Ok(Json(cx.engine.admin_unlock(&Actor::Admin, &name).await?))
}
