//! Admin routes for client policies (admin API key only).

use super::Ctx;
use super::error::ApiErr;
use super::extract::{AdminCaller, Json};
use crate::engine::Actor;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_proto::admin::{Policy, PolicyUpdate};

pub async fn policy_list(
    State(cx): State<Ctx>,
    _: AdminCaller,
) -> Result<Json<Vec<Policy>>, ApiErr> {
    Ok(Json(cx.engine.policy_list().await?))
}

pub async fn policy_show(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<Policy>, ApiErr> {
    Ok(Json(cx.engine.policy_show(&id).await?))
}

pub async fn policy_set(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(id): Path<String>,
    Json(req): Json<PolicyUpdate>,
) -> Result<Json<Policy>, ApiErr> {
    Ok(Json(cx.engine.policy_set(&Actor::Admin, &id, &req).await?))
}

pub async fn policy_remove(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiErr> {
    cx.engine.policy_remove(&Actor::Admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
