//! FIDO2 routes: the admin's registration code, the machine side of registration, and the
//! login step.

use super::Ctx;
use super::error::ApiErr;
use super::extract::{AdminCaller, Json, MachineCaller};
use super::login::rate_limit;
use crate::engine::Actor;
use crate::engine::CodeKind;
use crate::metrics::Outcome;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_proto::fido2::*;
use latchkey_proto::login::LoginStepResult;
use latchkey_proto::offline::WithOffline;

/// Longest base64url field accepted (attestation objects are the largest, ~1–3 KiB).
const MAX_FIELD: usize = 24 * 1024;

fn check_len(fields: &[(&str, &str)]) -> Result<(), ApiErr> {
    for (name, v) in fields {
        if v.len() > MAX_FIELD {
            return Err(ApiErr::bad_request(format!("{name} is too long")));
        }
    }
    Ok(())
}

/// `POST /v1/admin/users/{name}/fido2`
pub async fn registration_create(
    State(cx): State<Ctx>,
    _: AdminCaller,
    Path(name): Path<String>,
    Json(req): Json<Fido2RegistrationCreate>,
) -> Result<(StatusCode, Json<Fido2RegistrationCreated>), ApiErr> {
    let kind = CodeKind::SecurityKey { label: req.label };
    let issued = cx
        .engine
        .enrolment_code(&Actor::Admin, &name, kind, req.expires_in)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Fido2RegistrationCreated {
            user: issued.user,
            code: issued.code,
            expires_at: issued.expires_at,
            rp_id: cx.engine.cfg().fido2_rp_id.clone(),
        }),
    ))
}

/// `POST /v1/fido2/register/start`
pub async fn register_start(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Json(req): Json<Fido2RegisterStart>,
) -> Result<Json<Fido2RegisterOptions>, ApiErr> {
    rate_limit(&cx, &m.id)?;
    check_len(&[("code", req.code.expose())])?;
    Ok(Json(cx.engine.fido2_register_start(&m.id, &req).await?))
}

/// `POST /v1/fido2/register/finish`
pub async fn register_finish(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Json(req): Json<Fido2RegisterFinish>,
) -> Result<(StatusCode, Json<Fido2Registered>), ApiErr> {
    rate_limit(&cx, &m.id)?;
    check_len(&[
        ("code", req.code.expose()),
        ("attestation_object", &req.attestation_object),
        ("client_data_json", &req.client_data_json),
    ])?;
    Ok((
        StatusCode::CREATED,
        Json(cx.engine.fido2_register_finish(&m.id, &req).await?),
    ))
}

/// `POST /v1/login/{tx}/fido2`
pub async fn login_fido2(
    State(cx): State<Ctx>,
    MachineCaller(m): MachineCaller,
    Path(tx): Path<String>,
    Json(req): Json<LoginFido2>,
) -> Result<Json<WithOffline<LoginStepResult>>, ApiErr> {
    rate_limit(&cx, &m.id)?;
    if tx.len() > 64 {
        return Err(ApiErr::bad_request("transaction id is too long"));
    }
    check_len(&[
        ("credential_id", &req.credential_id),
        ("authenticator_data", &req.authenticator_data),
        ("signature", &req.signature),
        ("client_data_json", &req.client_data_json),
    ])?;
    let res = cx.engine.login_fido2(&m.id, &tx, &req).await?;
    cx.engine.metrics().login(match res.inner {
        LoginStepResult::Success { .. } => Outcome::Fido2Success,
        LoginStepResult::Deny { .. } => Outcome::Fido2Deny,
        _ => Outcome::Fido2Retry,
    });
    Ok(Json(res))
}
