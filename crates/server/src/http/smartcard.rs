//! Smartcard routes: the login answer, machine enrollment with a one-time code, and the admin
//! registration of a certificate.

use super::admin::{no_user, token_view};
use super::error::ApiErr;
use super::extract::{AdminCaller, Json, MachineCaller};
use super::machine::rate_limit;
use crate::engine::smartcard::info;
use crate::metrics::Outcome;
use crate::state::{Actor, Shared};
use crate::store::{SmartcardRow, TokenRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_proto::TokenKind;
use latchkey_proto::admin::TokenInfo;
use latchkey_proto::login::LoginStepResult;
use latchkey_proto::smartcard::{
    LoginSmartcard, SmartcardAdd, SmartcardCodeCreate, SmartcardEnroll, SmartcardEnrollCode,
};

fn view(t: &TokenRow, sc: &SmartcardRow) -> TokenInfo {
    let mut v = token_view(t);
    v.period = None;
    v.smartcard = Some(info(sc));
    v
}

/// Adds the certificate details to the `smartcard` entries of a token listing.
pub(super) async fn attach_info(
    st: &Shared,
    user: &str,
    tokens: &mut [TokenInfo],
) -> Result<(), ApiErr> {
    if !tokens.iter().any(|t| t.kind == TokenKind::Smartcard) {
        return Ok(());
    }
    let cards = st.store.smartcards_of(user).await?;
    for t in tokens.iter_mut().filter(|t| t.kind == TokenKind::Smartcard) {
        t.period = None;
        t.smartcard = cards.iter().find(|c| c.token_id == t.id).map(info);
    }
    Ok(())
}

/// `POST /v1/login/{tx}/smartcard`
pub async fn login(
    State(st): State<Shared>,
    MachineCaller(m): MachineCaller,
    Path(tx): Path<String>,
    Json(req): Json<LoginSmartcard>,
) -> Result<Json<latchkey_proto::offline::WithOffline<LoginStepResult>>, ApiErr> {
    rate_limit(&st, &m.id)?;
    // An RSA-8192 signature is 1 KiB; base64 of 2 KiB leaves room.
    if tx.len() > 64 || req.fingerprint.len() > 80 || req.signature.len() > 2800 {
        return Err(ApiErr::bad_request(
            "transaction id, fingerprint or signature is too long",
        ));
    }
    let res = st.login_smartcard(&m.id, &tx, &req).await?;
    st.metrics.login(match res {
        LoginStepResult::Success { .. } => Outcome::SmartcardSuccess,
        LoginStepResult::Retry { .. } => Outcome::SmartcardRetry,
        _ => Outcome::SmartcardDeny,
    });
    Ok(Json(
        super::machine::step_with_offline(&st, &m.id, &tx, res).await?,
    ))
}

/// `POST /v1/smartcards/enroll`: a joined machine registers a card's certificate for a user
/// with the one-time code an admin created for that user.
pub async fn enroll(
    State(st): State<Shared>,
    MachineCaller(m): MachineCaller,
    Json(req): Json<SmartcardEnroll>,
) -> Result<(StatusCode, Json<TokenInfo>), ApiErr> {
    rate_limit(&st, &m.id)?;
    if req.code.len() > 200 || req.cert.len() > 32 * 1024 {
        return Err(ApiErr::bad_request("code or certificate is too long"));
    }
    match st.smartcard_enroll(&m.id, &req).await? {
        Some((t, sc)) => Ok((StatusCode::CREATED, Json(view(&t, &sc)))),
        None => Err(ApiErr::new(
            StatusCode::UNAUTHORIZED,
            "invalid_enroll_code",
            "the enrollment code is unknown, already used, expired or for another user",
        )),
    }
}

/// `POST /v1/admin/users/{name}/smartcards`
pub async fn add(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(name): Path<String>,
    Json(req): Json<SmartcardAdd>,
) -> Result<(StatusCode, Json<TokenInfo>), ApiErr> {
    let user = st
        .store
        .user_get(&name)
        .await?
        .ok_or_else(|| no_user(&name))?;
    let (t, sc) = st
        .smartcard_register(
            &Actor::Admin,
            &user.name,
            req.cert_pem.as_bytes(),
            req.label.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(&t, &sc))))
}

/// `POST /v1/admin/users/{name}/smartcards/enroll`
pub async fn code_create(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(name): Path<String>,
    Json(req): Json<SmartcardCodeCreate>,
) -> Result<(StatusCode, Json<SmartcardEnrollCode>), ApiErr> {
    let user = st
        .store
        .user_get(&name)
        .await?
        .ok_or_else(|| no_user(&name))?;
    let code = st
        .smartcard_code_create(&user.name, req.expires_in.unwrap_or(900))
        .await?;
    Ok((StatusCode::CREATED, Json(code)))
}
