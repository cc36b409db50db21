//! Admin routes for users and their tokens (admin API key only). Policies, machines, join
//! tokens and the audit log are in `admin_fleet.rs`.

use super::error::ApiErr;
use super::extract::{AdminCaller, Json};
use crate::engine::{new_id, validate_user_name};
use crate::state::{Actor, Shared, now};
use crate::store::{TokenRow, UserRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::otpauth::OtpAuthUri;
use latchkey_proto::admin::*;
use latchkey_proto::{OtpAlgorithm, TokenKind};
use zeroize::Zeroizing;

type ApiResult<T> = Result<Json<T>, ApiErr>;

async fn user_view(st: &Shared, u: UserRow) -> Result<User, ApiErr> {
    let token_count =
        st.store.token_count_of(&u.name).await? + st.store.fido2_of(&u.name).await?.len() as i64;
    Ok(User {
        token_count: u32::try_from(token_count).unwrap_or(u32::MAX),
        locked_until: (u.locked_until > now()).then_some(u.locked_until),
        name: u.name,
        display_name: u.display_name,
        groups: u.groups,
        enabled: u.enabled,
        created_at: u.created_at,
    })
}

pub(super) fn no_user(name: &str) -> ApiErr {
    ApiErr::not_found(format!("user {name:?} not found"))
}

fn validate_groups(groups: &[String]) -> Result<(), ApiErr> {
    if groups.len() > 100
        || groups.iter().any(|g| {
            g.is_empty() || g.len() > 128 || g.contains(',') || g.chars().any(char::is_control)
        })
    {
        return Err(ApiErr::bad_request(
            "groups must be at most 100 names of 1 to 128 characters without commas",
        ));
    }
    Ok(())
}

pub(super) fn validate_text(field: &str, v: &str, max: usize) -> Result<(), ApiErr> {
    if v.len() > max || v.chars().any(char::is_control) {
        return Err(ApiErr::bad_request(format!(
            "{field} must be at most {max} printable characters"
        )));
    }
    Ok(())
}

pub async fn user_add(
    State(st): State<Shared>,
    _: AdminCaller,
    Json(req): Json<UserCreate>,
) -> Result<(StatusCode, Json<User>), ApiErr> {
    validate_user_name(&req.name)?;
    validate_groups(&req.groups)?;
    let display_name = req.display_name.unwrap_or_else(|| req.name.clone());
    validate_text("display_name", &display_name, 256)?;
    let row = UserRow {
        name: req.name,
        display_name,
        groups: req.groups,
        enabled: true,
        created_at: now(),
        failures: 0,
        locked_until: 0,
    };
    st.store.user_create(&row).await?;
    st.audit(
        &Actor::Admin,
        "user.add",
        Some(&row.name),
        None,
        "ok",
        format!("groups: {}", row.groups.join(",")),
    )
    .await;
    Ok((StatusCode::CREATED, Json(user_view(&st, row).await?)))
}

pub async fn user_list(State(st): State<Shared>, _: AdminCaller) -> ApiResult<Vec<User>> {
    let mut out = Vec::new();
    for u in st.store.user_list().await? {
        out.push(user_view(&st, u).await?);
    }
    Ok(Json(out))
}

pub async fn user_show(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(name): Path<String>,
) -> ApiResult<User> {
    let u = st
        .store
        .user_get(&name)
        .await?
        .ok_or_else(|| no_user(&name))?;
    Ok(Json(user_view(&st, u).await?))
}

pub async fn user_update(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(name): Path<String>,
    Json(req): Json<UserUpdate>,
) -> ApiResult<User> {
    if let Some(g) = &req.groups {
        validate_groups(g)?;
    }
    if let Some(d) = &req.display_name {
        validate_text("display_name", d, 256)?;
    }
    if !st
        .store
        .user_update(
            &name,
            req.display_name.as_deref(),
            req.groups.as_deref(),
            req.enabled,
        )
        .await?
    {
        return Err(no_user(&name));
    }
    if req.enabled == Some(true) {
        // Re-enabling also clears a lockout: the admin has looked at the account.
        st.store.user_reset_failures(&name).await?;
    }
    if req.enabled == Some(false) {
        st.offline_revoke(&name, "user disabled").await?;
    }
    let detail = serde_json::to_string(&req).unwrap_or_default();
    st.audit(
        &Actor::Admin,
        "user.update",
        Some(&name),
        None,
        "ok",
        detail,
    )
    .await;
    let u = st
        .store
        .user_get(&name)
        .await?
        .ok_or_else(|| no_user(&name))?;
    Ok(Json(user_view(&st, u).await?))
}

pub async fn user_remove(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiErr> {
    if !st.store.user_delete(&name).await? {
        return Err(no_user(&name));
    }
    st.offline_revoke(&name, "user removed").await?;
    st.audit(
        &Actor::Admin,
        "user.remove",
        Some(&name),
        None,
        "ok",
        "user and tokens removed",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) fn token_view(t: &TokenRow) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        user: t.user_name.clone(),
        kind: t.kind,
        algorithm: t.algorithm,
        digits: t.digits,
        period: (t.kind == TokenKind::Totp).then_some(t.period),
        label: t.label.clone(),
        created_at: t.created_at,
        last_used_at: t.last_used_at,
        smartcard: None,
    }
}

pub async fn token_add(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(name): Path<String>,
    Json(req): Json<OtpTokenCreate>,
) -> Result<(StatusCode, Json<TokenEnrolled>), ApiErr> {
    let user = st
        .store
        .user_get(&name)
        .await?
        .ok_or_else(|| no_user(&name))?;
    let (row, uri) = enroll_otp(&st, &user.name, &req).await?;
    st.audit(
        &Actor::Admin,
        "token.add",
        Some(&user.name),
        None,
        "ok",
        format!(
            "{} token {} ({}, {} digits)",
            row.kind, row.id, row.algorithm, row.digits
        ),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(TokenEnrolled {
            token: token_view(&row),
            otpauth_uri: uri,
        }),
    ))
}

/// Creates an OATH token for `user` (generated or imported seed, sealed at rest) and returns
/// it with its otpauth URI — the only time the seed leaves the server.
pub(super) async fn enroll_otp(
    st: &Shared,
    user: &str,
    req: &OtpTokenCreate,
) -> Result<(TokenRow, String), ApiErr> {
    let algorithm = req.algorithm.unwrap_or_default();
    let digits = req.digits.unwrap_or(6);
    if !latchkey_crypto::otp::DIGITS_RANGE.contains(&digits) {
        return Err(ApiErr::bad_request("digits must be 6, 7 or 8"));
    }
    let period = match req.kind {
        TokenKind::Totp => req.period.unwrap_or(30),
        TokenKind::Hotp => 30,
        TokenKind::App => {
            return Err(ApiErr::bad_request(
                "token apps register themselves: create a link with `latchkey token add-app USER`",
            ));
        }
        TokenKind::Fido2 => {
            return Err(ApiErr::bad_request(
                "security keys register on the machine they are plugged into: `latchkey token add-fido2 USER`",
            ));
        }
        TokenKind::Smartcard => {
            return Err(ApiErr::bad_request(
                "register a smartcard with `latchkey token add-smartcard USER --cert FILE.pem`",
            ));
        }
    };
    if !(10..=300).contains(&period) {
        return Err(ApiErr::bad_request(
            "period must be between 10 and 300 seconds",
        ));
    }
    let label = req.label.clone().unwrap_or_default();
    validate_text("label", &label, 64)?;
    // RFC 6238 §B key sizes: the hash's output length.
    let key_len = match algorithm {
        OtpAlgorithm::Sha1 => 20,
        OtpAlgorithm::Sha256 => 32,
        OtpAlgorithm::Sha512 => 64,
    };
    let internal = |e: latchkey_crypto::Error| {
        ApiErr::new(StatusCode::SERVICE_UNAVAILABLE, "internal", e.to_string())
    };
    let secret = match req.secret.as_deref() {
        Some(b32) => {
            let bytes = latchkey_crypto::base32_decode(b32).map_err(|e| {
                ApiErr::new(
                    StatusCode::BAD_REQUEST,
                    "bad_secret",
                    format!("secret: {e}"),
                )
            })?;
            if !(10..=128).contains(&bytes.len()) {
                return Err(ApiErr::new(
                    StatusCode::BAD_REQUEST,
                    "bad_secret",
                    "secret must decode to 10 to 128 bytes (80 bits at least)",
                ));
            }
            Zeroizing::new(bytes)
        }
        None => Zeroizing::new(latchkey_crypto::random_bytes(key_len).map_err(internal)?),
    };
    let id = new_id(8)?;
    let sealed = st.master.seal(&secret, id.as_bytes()).map_err(internal)?;
    let row = TokenRow {
        id,
        user_name: user.to_string(),
        kind: req.kind,
        algorithm,
        digits,
        period,
        secret_sealed: B64.encode(sealed),
        used: -1,
        label,
        created_at: now(),
        last_used_at: None,
    };
    st.store.token_create(&row).await?;
    let uri = OtpAuthUri {
        kind: req.kind,
        issuer: st.cfg.issuer.clone(),
        account: user.to_string(),
        secret,
        algorithm,
        digits,
        period,
        counter: 0,
    }
    .to_uri();
    Ok((row, uri))
}

pub async fn token_list(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(name): Path<String>,
) -> ApiResult<Vec<TokenInfo>> {
    st.store
        .user_get(&name)
        .await?
        .ok_or_else(|| no_user(&name))?;
    let mut out: Vec<TokenInfo> = st
        .store
        .tokens_of(&name)
        .await?
        .iter()
        .map(token_view)
        .collect();
    super::smartcard::attach_info(&st, &name, &mut out).await?;
    out.extend(
        st.store
            .apps_of(&name)
            .await?
            .into_iter()
            .map(|a| TokenInfo {
                id: a.id,
                user: a.user_name,
                kind: TokenKind::App,
                algorithm: OtpAlgorithm::Sha1,
                digits: 0,
                period: None,
                label: a.device_name,
                created_at: a.created_at,
                last_used_at: a.last_seen_at,
                smartcard: None,
            }),
    );
    out.extend(
        st.store
            .fido2_of(&name)
            .await?
            .iter()
            .map(super::fido2::token_view),
    );
    Ok(Json(out))
}

/// Removes an OATH token, or revokes a token app (and the TOTP seed it received).
pub async fn token_remove(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiErr> {
    let (user, what) = match st.store.token_delete(&id).await? {
        Some(user) => (user, "token"),
        None => match st.store.app_delete(&id).await? {
            Some(user) => (user, "token app"),
            None => (
                st.store
                    .fido2_delete(&id)
                    .await?
                    .ok_or_else(|| ApiErr::not_found(format!("token {id:?} not found")))?,
                "security key",
            ),
        },
    };
    // Bundles carry token apps, security keys and smartcard certificates: any removal
    // (an OATH token or smartcard too: which one it was is not known here) wipes them.
    let why = if what == "token app" {
        "token app revoked".to_string()
    } else {
        format!("{what} removed")
    };
    st.offline_revoke(&user, &why).await?;
    st.audit(
        &Actor::Admin,
        "token.remove",
        Some(&user),
        None,
        "ok",
        format!("{what} {id}"),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn token_verify(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(name): Path<String>,
    Json(req): Json<VerifyRequest>,
) -> ApiResult<VerifyResult> {
    if req.code.len() > 64 {
        return Err(ApiErr::bad_request("code is too long"));
    }
    let (ok, message) = st
        .admin_verify(&name, &req.code)
        .await?
        .ok_or_else(|| no_user(&name))?;
    Ok(Json(VerifyResult { ok, message }))
}

pub async fn token_resync(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(id): Path<String>,
    Json(req): Json<TokenResync>,
) -> ApiResult<VerifyResult> {
    let ok = st
        .hotp_resync(&id, &req.code1, &req.code2)
        .await?
        .ok_or_else(|| ApiErr::not_found(format!("token {id:?} not found")))?;
    let message = if ok {
        "token resynchronised"
    } else {
        "the two codes were not found in the resynchronisation window"
    };
    Ok(Json(VerifyResult {
        ok,
        message: message.into(),
    }))
}
