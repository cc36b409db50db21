//! The token app's API: registration links (admin), registration, the push long poll, signed
//! answers, badge; and the machine side of push (send, wait).

use super::Ctx;
use super::error::ApiErr;
use super::extract::{AdminCaller, AppCaller, Json, MachineCaller, Query};
use crate::engine::Actor;
use crate::engine::{CodeKind, MAX_WAIT};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_proto::app::*;
use latchkey_proto::login::LoginStepResult;
use latchkey_proto::offline::WithOffline;
use serde::Deserialize;
use std::time::Duration;

pub async fn link_create(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(name): Path<String>,
    Json(req): Json<AppLinkCreate>,
) -> Result<(StatusCode, Json<AppLinkCreated>), ApiErr> {
    let issued = cx
        .engine
        .enrolment_code(&Actor::Admin, &name, CodeKind::TokenApp, req.expires_in)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(AppLinkCreated {
            code: issued.code,
            expires_at: issued.expires_at,
            tls_fingerprint: cx.engine.tls_fingerprint().to_string(),
        }),
    ))
}

pub async fn register(
    State(cx): State<Ctx>,
    Json(req): Json<AppRegister>,
) -> Result<(StatusCode, Json<AppRegistered>), ApiErr> {
    Ok((
        StatusCode::CREATED,
        Json(cx.engine.app_register(&req).await?),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    #[serde(default)]
    wait: Option<u64>,
}

pub async fn pending(
    State(cx): State<Ctx>,
    AppCaller(app): AppCaller,
    Query(q): Query<WaitQuery>,
) -> Result<Json<Vec<PushRequest>>, ApiErr> {
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(MAX_WAIT));
    Ok(Json(cx.engine.app_pending(&app, wait).await?))
}

pub async fn respond(
    State(cx): State<Ctx>,
    AppCaller(app): AppCaller,
    Json(req): Json<PushResponse>,
) -> Result<Json<PushVerdict>, ApiErr> {
    // `tx` is a `TxId`, at most 64 bytes by its type.
    if req.nonce.len() > 64 || req.signature.len() > 200 {
        return Err(ApiErr::bad_request("nonce or signature is too long"));
    }
    Ok(Json(cx.engine.app_respond(&app, &req).await?))
}

pub async fn badge(
    State(cx): State<Ctx>,
    AppCaller(app): AppCaller,
    Json(req): Json<Badge>,
) -> Result<Json<PushVerdict>, ApiErr> {
    Ok(Json(cx.engine.app_badge(&app, &req).await?))
}

pub async fn push_start(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Path(tx): Path<String>,
) -> Result<Json<PushStartResult>, ApiErr> {
    if tx.len() > 64 {
        return Err(ApiErr::bad_request("transaction id is too long"));
    }
    Ok(Json(cx.engine.push_start(&m.id, &m.hostname, &tx).await?))
}

pub async fn push_wait(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Path(tx): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<WithOffline<LoginStepResult>>, ApiErr> {
    if tx.len() > 64 {
        return Err(ApiErr::bad_request("transaction id is too long"));
    }
    let wait = Duration::from_secs(q.wait.unwrap_or(25));
    Ok(Json(cx.engine.push_wait(&m.id, &tx, wait).await?))
}
