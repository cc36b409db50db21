//! Token app routes: registration links (admin), registration, the push long poll, signed
//! answers, badge; and the machine side of push (send, wait).

use super::admin::enroll_otp;
use super::error::ApiErr;
use super::extract::{AdminCaller, Json, MachineCaller, Query};
use crate::engine::new_id;
use crate::state::{Actor, Shared, now};
use crate::store::{AppRow, NewApp};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::keys::{generate_api_key, hash_api_key};
use latchkey_proto::TokenKind;
use latchkey_proto::admin::OtpTokenCreate;
use latchkey_proto::app::*;
use latchkey_proto::login::LoginStepResult;
use serde::Deserialize;
use std::time::Duration;

/// A registered token app (bearer `lkp_…`). A revoked app's key no longer matches anything.
pub struct AppCaller(pub AppRow);

impl FromRequestParts<Shared> for AppCaller {
    type Rejection = ApiErr;
    async fn from_request_parts(parts: &mut Parts, st: &Shared) -> Result<Self, ApiErr> {
        let unauthorized = |m: &str| ApiErr::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let key = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                unauthorized("missing app credential: send Authorization: Bearer <app key>")
            })?;
        let app = st
            .store
            .app_by_key_hash(&hash_api_key(key))
            .await?
            .ok_or_else(|| unauthorized("this token app is not registered (was it revoked?)"))?;
        Ok(AppCaller(app))
    }
}

fn internal(e: impl std::fmt::Display) -> ApiErr {
    ApiErr::new(StatusCode::SERVICE_UNAVAILABLE, "internal", e.to_string())
}

pub async fn link_create(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(name): Path<String>,
    Json(req): Json<AppLinkCreate>,
) -> Result<(StatusCode, Json<AppLinkCreated>), ApiErr> {
    let user = st
        .store
        .user_get(&name)
        .await?
        .ok_or_else(|| ApiErr::not_found(format!("user {name:?} not found")))?;
    let ttl = super::one_time_code_ttl(req.expires_in)?;
    let code = generate_api_key("lkr").map_err(internal)?;
    let now = now();
    st.store
        .app_link_create(&hash_api_key(&code), &user.name, now, now + ttl as i64)
        .await?;
    st.audit(
        &Actor::Admin,
        "app.link",
        Some(&user.name),
        None,
        "ok",
        format!("registration link valid {ttl} s"),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(AppLinkCreated {
            code,
            expires_at: now + ttl as i64,
            tls_fingerprint: st.tls_fingerprint.clone(),
        }),
    ))
}

fn public_key(field: &str, b64: &str) -> Result<String, ApiErr> {
    match B64.decode(b64) {
        Ok(k) if k.len() == 32 => Ok(B64.encode(k)),
        _ => Err(ApiErr::bad_request(format!(
            "{field} must be a 32-byte key in base64"
        ))),
    }
}

pub async fn register(
    State(st): State<Shared>,
    Json(req): Json<AppRegister>,
) -> Result<(StatusCode, Json<AppRegistered>), ApiErr> {
    let device = req.device_name.trim();
    if device.is_empty() || device.len() > 64 || device.chars().any(char::is_control) {
        return Err(ApiErr::bad_request(
            "device_name must be 1 to 64 printable characters",
        ));
    }
    let x25519 = public_key("x25519_public", &req.x25519_public)?;
    let ed25519 = public_key("ed25519_public", &req.ed25519_public)?;
    if req.code.len() > 200 {
        return Err(ApiErr::bad_request("code is too long"));
    }
    let now = now();
    let Some(user) = st
        .store
        .app_link_consume(&hash_api_key(&req.code), now)
        .await?
    else {
        st.audit(
            &Actor::Anonymous,
            "app.register",
            None,
            None,
            "deny",
            "unknown, used or expired code",
        )
        .await;
        return Err(ApiErr::new(
            StatusCode::UNAUTHORIZED,
            "invalid_registration_code",
            "the registration link is unknown, already used or expired: ask for a new one",
        ));
    };
    let app_id = new_id(10)?;
    let app_key = generate_api_key("lkp").map_err(internal)?;
    st.store
        .app_create(&NewApp {
            id: &app_id,
            user_name: &user,
            device_name: device,
            x25519_public: &x25519,
            ed25519_public: &ed25519,
            key_hash: &hash_api_key(&app_key),
            now,
        })
        .await?;
    let spec = OtpTokenCreate {
        kind: TokenKind::Totp,
        algorithm: None,
        digits: None,
        period: None,
        label: Some(format!("app:{device}").chars().take(64).collect()),
        secret: None,
    };
    let (token, otpauth_uri) = enroll_otp(&st, &user, &spec).await?;
    st.store.token_set_app(&token.id, &app_id).await?;
    st.audit(
        &Actor::App(app_id.clone()),
        "app.register",
        Some(&user),
        None,
        "ok",
        format!("token app {device:?} registered"),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(AppRegistered {
            app_id,
            user,
            app_key,
            otpauth_uri,
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    #[serde(default)]
    wait: Option<u64>,
}

pub async fn pending(
    State(st): State<Shared>,
    AppCaller(app): AppCaller,
    Query(q): Query<WaitQuery>,
) -> Result<Json<Vec<PushRequest>>, ApiErr> {
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(crate::push::MAX_WAIT));
    Ok(Json(st.app_pending(&app, wait).await?))
}

pub async fn respond(
    State(st): State<Shared>,
    AppCaller(app): AppCaller,
    Json(req): Json<PushResponse>,
) -> Result<Json<PushVerdict>, ApiErr> {
    if req.tx.len() > 64 || req.nonce.len() > 64 || req.signature.len() > 200 {
        return Err(ApiErr::bad_request("tx, nonce or signature is too long"));
    }
    Ok(Json(st.app_respond(&app, &req).await?))
}

pub async fn badge(
    State(st): State<Shared>,
    AppCaller(app): AppCaller,
    Json(req): Json<Badge>,
) -> Result<Json<PushVerdict>, ApiErr> {
    let now = now();
    let public = B64.decode(&app.ed25519_public).unwrap_or_default();
    let sig = B64.decode(&req.signature).unwrap_or_default();
    if !latchkey_crypto::keys::ed25519_verify(
        &public,
        &badge_signing_bytes(&app.id, req.state, req.time),
        &sig,
    ) {
        return Ok(Json(PushVerdict {
            ok: false,
            message: "The badge signature is not valid".into(),
        }));
    }
    if (req.time - now).abs() > 300 {
        return Ok(Json(PushVerdict {
            ok: false,
            message: "The badge time is more than 5 minutes off the server's clock".into(),
        }));
    }
    let state = match req.state {
        BadgeState::In => "in",
        BadgeState::Out => "out",
    };
    st.store
        .badge_set(&app.user_name, state, req.time, &app.id)
        .await?;
    st.audit(
        &Actor::App(app.id.clone()),
        "badge",
        Some(&app.user_name),
        None,
        "ok",
        format!("badged {state}"),
    )
    .await;
    Ok(Json(PushVerdict {
        ok: true,
        message: format!("Badged {state}"),
    }))
}

pub async fn push_start(
    State(st): State<Shared>,
    MachineCaller(m): MachineCaller,
    Path(tx): Path<String>,
) -> Result<Json<PushStartResult>, ApiErr> {
    if tx.len() > 64 {
        return Err(ApiErr::bad_request("transaction id is too long"));
    }
    Ok(Json(match st.push_start(&m.id, &m.hostname, &tx).await? {
        Ok(p) => PushStartResult::Started(p),
        Err(reason) => PushStartResult::Step(LoginStepResult::Deny { reason }),
    }))
}

pub async fn push_wait(
    State(st): State<Shared>,
    MachineCaller(m): MachineCaller,
    Path(tx): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<latchkey_proto::offline::WithOffline<LoginStepResult>>, ApiErr> {
    if tx.len() > 64 {
        return Err(ApiErr::bad_request("transaction id is too long"));
    }
    let wait = Duration::from_secs(q.wait.unwrap_or(25));
    let res = st.push_wait(&m.id, &tx, wait).await?;
    Ok(Json(
        super::machine::step_with_offline(&st, &m.id, &tx, res).await?,
    ))
}
