//! Machine-facing routes: join and the login API.

use super::Ctx;
use super::error::ApiErr;
use super::extract::{ConnInfo, Json, MachineCaller};
use crate::metrics::Outcome;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_proto::ErrorCode;
use latchkey_proto::login::{
    AccountCheck, AccountStatus, LoginOtp, LoginStart, LoginStartResult, LoginStepResult,
};
use latchkey_proto::machine::{JoinRequest, JoinResponse};
use latchkey_proto::offline::WithOffline;
use std::time::Instant;

pub async fn join(
    State(cx): State<Ctx>,
    Extension(conn): Extension<ConnInfo>,
    Json(req): Json<JoinRequest>,
) -> Result<Json<JoinResponse>, ApiErr> {
    let ip = conn.peer.map(|p| p.ip().to_string()).unwrap_or_default();
    if !cx.limiter.allow(&format!("join:{ip}")) {
        cx.engine.metrics().rate_limited();
        return Err(ApiErr::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many join attempts; wait a moment",
        ));
    }
    Ok(Json(cx.engine.machine_join(&ip, &req).await?))
}

pub(super) fn rate_limit(cx: &Ctx, machine_id: &str) -> Result<(), ApiErr> {
    if cx.limiter.allow(machine_id) {
        return Ok(());
    }
    cx.engine.metrics().rate_limited();
    tracing::warn!(machine = machine_id, "login API rate limit hit");
    Err(ApiErr::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
        "this machine sends too many login requests; slow down",
    ))
}

pub async fn login_start(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Json(req): Json<LoginStart>,
) -> Result<Json<WithOffline<LoginStartResult>>, ApiErr> {
    rate_limit(&cx, &m.id)?;
    let t0 = Instant::now();
    let res = cx.engine.login_start(&m.id, &req).await?;
    let metrics = cx.engine.metrics();
    metrics.login(match res.inner {
        LoginStartResult::Allow { .. } => Outcome::StartAllow,
        LoginStartResult::Challenge { .. } => Outcome::StartChallenge,
        LoginStartResult::Deny { .. } => Outcome::StartDeny,
        LoginStartResult::Enroll { .. } => Outcome::StartEnroll,
    });
    metrics.start_latency(t0.elapsed());
    Ok(Json(res))
}

pub async fn login_otp(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Path(tx): Path<String>,
    Json(req): Json<LoginOtp>,
) -> Result<Json<WithOffline<LoginStepResult>>, ApiErr> {
    rate_limit(&cx, &m.id)?;
    if tx.len() > 64 || req.code.len() > 64 {
        return Err(ApiErr::bad_request("transaction id or code is too long"));
    }
    let t0 = Instant::now();
    let res = cx.engine.login_otp(&m.id, &tx, req.code.expose()).await?;
    let metrics = cx.engine.metrics();
    metrics.login(match res.inner {
        LoginStepResult::Success { .. } => Outcome::OtpSuccess,
        LoginStepResult::Retry { .. } => Outcome::OtpRetry,
        LoginStepResult::Deny { .. } => Outcome::OtpDeny,
        // Not an answer to a code; counted by the push routes' audit records instead.
        LoginStepResult::Pending { .. } => Outcome::OtpRetry,
    });
    metrics.otp_latency(t0.elapsed());
    Ok(Json(res))
}

pub async fn account_check(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Json(req): Json<AccountCheck>,
) -> Result<Json<WithOffline<AccountStatus>>, ApiErr> {
    rate_limit(&cx, &m.id)?;
    Ok(Json(
        cx.engine
            .account_check(&m.id, &req.user, &req.client_id)
            .await?,
    ))
}
