//! Smartcard routes: the login answer, machine enrollment with a one-time code, and the admin
//! registration of a certificate.

use super::Ctx;
use super::error::ApiErr;
use super::extract::{AdminCaller, Json, MachineCaller};
use super::login::rate_limit;
use crate::engine::Actor;
use crate::engine::CodeKind;
use crate::metrics::Outcome;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_proto::admin::TokenInfo;
use latchkey_proto::login::LoginStepResult;
use latchkey_proto::offline::WithOffline;
use latchkey_proto::smartcard::{
    LoginSmartcard, SmartcardAdd, SmartcardCodeCreate, SmartcardEnroll, SmartcardEnrollCode,
};

/// `POST /v1/login/{tx}/smartcard`
pub async fn login(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Path(tx): Path<String>,
    Json(req): Json<LoginSmartcard>,
) -> Result<Json<WithOffline<LoginStepResult>>, ApiErr> {
    rate_limit(&cx, &m.id)?;
    // An RSA-8192 signature is 1 KiB; base64 of 2 KiB leaves room.
    if tx.len() > 64 || req.fingerprint.len() > 80 || req.signature.len() > 2800 {
        return Err(ApiErr::bad_request(
            "transaction id, fingerprint or signature is too long",
        ));
    }
    let res = cx.engine.login_smartcard(&m.id, &tx, &req).await?;
    cx.engine.metrics().login(match res.inner {
        LoginStepResult::Success { .. } => Outcome::SmartcardSuccess,
        LoginStepResult::Retry { .. } => Outcome::SmartcardRetry,
        _ => Outcome::SmartcardDeny,
    });
    Ok(Json(res))
}

/// `POST /v1/smartcards/enroll`: a joined machine registers a card's certificate for a user
/// with the one-time code an admin created for that user.
pub async fn enroll(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Json(req): Json<SmartcardEnroll>,
) -> Result<(StatusCode, Json<TokenInfo>), ApiErr> {
    rate_limit(&cx, &m.id)?;
    if req.code.len() > 200 || req.cert.len() > 32 * 1024 {
        return Err(ApiErr::bad_request("code or certificate is too long"));
    }
    Ok((
        StatusCode::CREATED,
        Json(cx.engine.smartcard_enroll(&m.id, &req).await?),
    ))
}

/// `POST /v1/admin/users/{name}/smartcards`
pub async fn add(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(name): Path<String>,
    Json(req): Json<SmartcardAdd>,
) -> Result<(StatusCode, Json<TokenInfo>), ApiErr> {
    Ok((
        StatusCode::CREATED,
        Json(cx.engine.smartcard_add(&Actor::Admin, &name, &req).await?),
    ))
}

/// `POST /v1/admin/users/{name}/smartcards/enroll`
pub async fn code_create(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(name): Path<String>,
    Json(req): Json<SmartcardCodeCreate>,
) -> Result<(StatusCode, Json<SmartcardEnrollCode>), ApiErr> {
    let issued = cx
        .engine
        .enrolment_code(&Actor::Admin, &name, CodeKind::Smartcard, req.expires_in)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SmartcardEnrollCode {
            user: issued.user,
            code: issued.code,
            expires_at: issued.expires_at,
        }),
    ))
}
