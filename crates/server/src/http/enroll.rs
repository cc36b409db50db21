//! Inline enrolment routes (docs/enrollment.md): the machine's agent carries the person's
//! choice, the first code, the wait for the token app and a skip; the engine decides.

use super::Ctx;
use super::error::ApiErr;
use super::extract::{Json, MachineCaller};
use super::login::rate_limit;
use axum::extract::{Path, Query, State};
use latchkey_proto::WaitQuery;
use latchkey_proto::enroll::{EnrollBegin, EnrollBegun, EnrollWait};
use latchkey_proto::login::{LoginOtp, LoginStepResult};
use latchkey_proto::offline::WithOffline;
use std::time::Duration;

fn check_tx(tx: &str) -> Result<(), ApiErr> {
    if tx.len() > 64 {
        return Err(ApiErr::bad_request("transaction id is too long"));
    }
    Ok(())
}

pub async fn begin(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Path(tx): Path<String>,
    headers: axum::http::HeaderMap,
    Json(req): Json<EnrollBegin>,
) -> Result<Json<EnrollBegun>, ApiErr> {
    rate_limit(&cx, &m.id)?;
    check_tx(&tx)?;
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    Ok(Json(cx.engine.enroll_begin(&m.id, &tx, &req, host).await?))
}

pub async fn confirm(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Path(tx): Path<String>,
    Json(req): Json<LoginOtp>,
) -> Result<Json<WithOffline<LoginStepResult>>, ApiErr> {
    rate_limit(&cx, &m.id)?;
    check_tx(&tx)?;
    if req.code.len() > 64 {
        return Err(ApiErr::bad_request("code is too long"));
    }
    Ok(Json(
        cx.engine
            .enroll_confirm(&m.id, &tx, req.code.expose())
            .await?,
    ))
}

pub async fn wait(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Path(tx): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<EnrollWait>, ApiErr> {
    rate_limit(&cx, &m.id)?;
    check_tx(&tx)?;
    let wait = Duration::from_secs(q.wait.unwrap_or(25));
    Ok(Json(cx.engine.enroll_wait(&m.id, &tx, wait).await?))
}

pub async fn skip(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Path(tx): Path<String>,
) -> Result<Json<WithOffline<LoginStepResult>>, ApiErr> {
    rate_limit(&cx, &m.id)?;
    check_tx(&tx)?;
    Ok(Json(cx.engine.enroll_skip(&m.id, &tx).await?))
}
