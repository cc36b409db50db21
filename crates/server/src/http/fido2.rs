//! FIDO2 routes: the admin's registration code, the machine side of registration, and the
//! login step.

use super::error::ApiErr;
use super::extract::{AdminCaller, Json, MachineCaller};
use crate::metrics::Outcome;
use crate::state::Shared;
use crate::store::Fido2Row;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_crypto::keys::generate_api_key;
use latchkey_proto::admin::TokenInfo;
use latchkey_proto::fido2::*;
use latchkey_proto::login::LoginStepResult;
use latchkey_proto::{OtpAlgorithm, TokenKind};

pub(super) fn token_view(c: &Fido2Row) -> TokenInfo {
    TokenInfo {
        id: c.id.clone(),
        user: c.user_name.clone(),
        kind: TokenKind::Fido2,
        algorithm: OtpAlgorithm::Sha1,
        digits: 0,
        period: None,
        label: c.label.clone(),
        created_at: c.created_at,
        last_used_at: c.last_used_at,
        smartcard: None,
    }
}

fn internal(e: impl std::fmt::Display) -> ApiErr {
    ApiErr::new(StatusCode::SERVICE_UNAVAILABLE, "internal", e.to_string())
}

fn refused(message: String) -> ApiErr {
    ApiErr::new(StatusCode::FORBIDDEN, "fido2_registration_refused", message)
}

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
    State(st): State<Shared>,
    _: AdminCaller,
    Path(name): Path<String>,
    Json(req): Json<Fido2RegistrationCreate>,
) -> Result<(StatusCode, Json<Fido2RegistrationCreated>), ApiErr> {
    let user = st
        .store
        .user_get(&name)
        .await?
        .ok_or_else(|| ApiErr::not_found(format!("user {name:?} not found")))?;
    let ttl = super::one_time_code_ttl(req.expires_in)?;
    let label = req.label.clone().unwrap_or_else(|| "security key".into());
    if label.len() > 64 || label.chars().any(char::is_control) {
        return Err(ApiErr::bad_request(
            "label must be at most 64 printable characters",
        ));
    }
    let code = generate_api_key("lkf").map_err(internal)?;
    let expires_at = st
        .fido2_registration_create(&user.name, &code, &label, ttl as i64)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Fido2RegistrationCreated {
            user: user.name,
            code,
            expires_at,
            rp_id: st.cfg.fido2_rp_id.clone(),
        }),
    ))
}

/// `POST /v1/fido2/register/start`
pub async fn register_start(
    State(st): State<Shared>,
    MachineCaller(m): MachineCaller,
    Json(req): Json<Fido2RegisterStart>,
) -> Result<Json<Fido2RegisterOptions>, ApiErr> {
    super::machine::rate_limit(&st, &m.id)?;
    check_len(&[("code", &req.code)])?;
    match st.fido2_register_start(&m.id, &req).await? {
        Ok(o) => Ok(Json(o)),
        Err(msg) => Err(refused(msg)),
    }
}

/// `POST /v1/fido2/register/finish`
pub async fn register_finish(
    State(st): State<Shared>,
    MachineCaller(m): MachineCaller,
    Json(req): Json<Fido2RegisterFinish>,
) -> Result<(StatusCode, Json<Fido2Registered>), ApiErr> {
    super::machine::rate_limit(&st, &m.id)?;
    check_len(&[
        ("code", &req.code),
        ("attestation_object", &req.attestation_object),
        ("client_data_json", &req.client_data_json),
    ])?;
    match st.fido2_register_finish(&m.id, &req).await? {
        Ok((row, attestation)) => Ok((
            StatusCode::CREATED,
            Json(Fido2Registered {
                token: token_view(&row),
                credential_id: row.credential_id.clone(),
                aaguid: row.aaguid.clone(),
                user_verified: row.uv_registered,
                attestation: attestation.to_string(),
            }),
        )),
        Err(msg) => Err(refused(msg)),
    }
}

/// `POST /v1/login/{tx}/fido2`
pub async fn login_fido2(
    State(st): State<Shared>,
    MachineCaller(m): MachineCaller,
    Path(tx): Path<String>,
    Json(req): Json<LoginFido2>,
) -> Result<Json<latchkey_proto::offline::WithOffline<LoginStepResult>>, ApiErr> {
    super::machine::rate_limit(&st, &m.id)?;
    if tx.len() > 64 {
        return Err(ApiErr::bad_request("transaction id is too long"));
    }
    check_len(&[
        ("credential_id", &req.credential_id),
        ("authenticator_data", &req.authenticator_data),
        ("signature", &req.signature),
        ("client_data_json", &req.client_data_json),
    ])?;
    let res = st.login_fido2(&m.id, &tx, &req).await?;
    st.metrics.login(match res {
        LoginStepResult::Success { .. } => Outcome::Fido2Success,
        LoginStepResult::Deny { .. } => Outcome::Fido2Deny,
        _ => Outcome::Fido2Retry,
    });
    Ok(Json(
        super::machine::step_with_offline(&st, &m.id, &tx, res).await?,
    ))
}
