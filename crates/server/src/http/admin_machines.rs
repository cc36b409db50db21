//! Admin routes for the fleet of machines: the list, removal, join tokens, forgetting an
//! offline bundle; and the audit log (admin API key only).

use super::Ctx;
use super::error::ApiErr;
use super::extract::{AdminCaller, Json, Query};
use crate::engine::Actor;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_proto::admin::*;
use latchkey_proto::offline::{ForgetOffline, ForgetOfflineQueued};

pub async fn machine_list(
    State(cx): State<Ctx>,
    _: AdminCaller,
) -> Result<Json<Vec<Machine>>, ApiErr> {
    Ok(Json(cx.engine.machine_list().await?))
}

pub async fn machine_remove(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiErr> {
    cx.engine.machine_remove(&Actor::Admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn join_token_create(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Json(req): Json<JoinTokenCreate>,
) -> Result<(StatusCode, Json<JoinTokenCreated>), ApiErr> {
    Ok((
        StatusCode::CREATED,
        Json(cx.engine.join_token_create(&Actor::Admin, &req).await?),
    ))
}

/// `POST /v1/admin/machines/{machine}/forget-offline`: the agent wipes the user's bundle at
/// its next contact with any server.
pub async fn forget_offline(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(machine): Path<String>,
    Json(req): Json<ForgetOffline>,
) -> Result<Json<ForgetOfflineQueued>, ApiErr> {
    Ok(Json(
        cx.engine
            .forget_offline(&Actor::Admin, &machine, req)
            .await?,
    ))
}

pub async fn audit(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiErr> {
    Ok(Json(
        cx.engine
            .audit_log(q.user.as_deref(), q.since, q.limit)
            .await?,
    ))
}
