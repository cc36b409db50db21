//! Machine-facing routes: join and the login API.

use super::error::ApiErr;
use super::extract::{ConnInfo, Json, MachineCaller};
use crate::engine::new_id;
use crate::metrics::Outcome;
use crate::offline::AttachOn;
use crate::state::{Actor, Shared, now};
use crate::store::NewMachine;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::keys::{generate_api_key, hash_api_key};
use latchkey_proto::login::{
    AccountCheck, AccountStatus, LoginOtp, LoginStart, LoginStartResult, LoginStepResult,
};
use latchkey_proto::machine::{JoinRequest, JoinResponse};
use latchkey_proto::offline::WithOffline;
use std::time::Instant;

fn normalize_fingerprint(fp: &str) -> Result<String, ApiErr> {
    let hex = fp
        .strip_prefix("sha256:")
        .unwrap_or(fp)
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiErr::bad_request(
            "client_cert_sha256 must be 64 hex digits (SHA-256 of the DER certificate)",
        ));
    }
    Ok(hex)
}

pub async fn join(
    State(st): State<Shared>,
    Extension(conn): Extension<ConnInfo>,
    Json(req): Json<JoinRequest>,
) -> Result<Json<JoinResponse>, ApiErr> {
    let ip = conn.peer.map(|p| p.ip().to_string()).unwrap_or_default();
    if !st.limiter.allow(&format!("join:{ip}")) {
        st.metrics.rate_limited();
        return Err(ApiErr::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many join attempts; wait a moment",
        ));
    }
    let hostname = req.hostname.trim();
    if hostname.is_empty()
        || hostname.len() > 253
        || hostname
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ApiErr::bad_request(
            "hostname must be 1 to 253 printable characters without spaces",
        ));
    }
    if req.join_token.len() > 200 {
        return Err(ApiErr::bad_request("join_token is too long"));
    }
    let cert = req
        .client_cert_sha256
        .as_deref()
        .map(normalize_fingerprint)
        .transpose()?;
    let now = now();
    let machine_id = new_id(10)?;
    if !st
        .store
        .join_token_consume(&hash_api_key(&req.join_token), now, &machine_id)
        .await?
    {
        st.audit(
            &Actor::Anonymous,
            "machine.join",
            None,
            None,
            "deny",
            format!("bad join token from {ip} for {hostname}"),
        )
        .await;
        return Err(ApiErr::new(
            StatusCode::UNAUTHORIZED,
            "invalid_join_token",
            "the join token is unknown, already used or expired",
        ));
    }
    let api_key = generate_api_key("lkm")
        .map_err(|e| ApiErr::new(StatusCode::SERVICE_UNAVAILABLE, "internal", e.to_string()))?;
    st.store
        .machine_create(&NewMachine {
            id: &machine_id,
            hostname,
            api_key_hash: &hash_api_key(&api_key),
            cert_sha256: cert.as_deref(),
            now,
        })
        .await?;
    st.audit(
        &Actor::Machine(machine_id.clone()),
        "machine.join",
        None,
        None,
        "ok",
        format!("{hostname} joined from {ip}"),
    )
    .await;
    Ok(Json(JoinResponse {
        machine_id,
        api_key,
        signing_public_key: B64.encode(st.signing.public_bytes()),
        tls_fingerprint: st.tls_fingerprint.clone(),
    }))
}

pub(super) fn rate_limit(st: &Shared, machine_id: &str) -> Result<(), ApiErr> {
    if st.limiter.allow(machine_id) {
        return Ok(());
    }
    st.metrics.rate_limited();
    tracing::warn!(machine = machine_id, "login API rate limit hit");
    Err(ApiErr::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "this machine sends too many login requests; slow down",
    ))
}

pub async fn login_start(
    State(st): State<Shared>,
    MachineCaller(m): MachineCaller,
    Json(req): Json<LoginStart>,
) -> Result<Json<WithOffline<LoginStartResult>>, ApiErr> {
    rate_limit(&st, &m.id)?;
    let t0 = Instant::now();
    let res = st.login_start(&m.id, &req).await?;
    st.metrics.login(match res {
        LoginStartResult::Allow { .. } => Outcome::StartAllow,
        LoginStartResult::Challenge { .. } => Outcome::StartChallenge,
        LoginStartResult::Deny { .. } => Outcome::StartDeny,
    });
    st.metrics.start_latency(t0.elapsed());
    let on = match res {
        LoginStartResult::Deny { .. } => AttachOn::Refusal,
        _ => AttachOn::Other,
    };
    let offline = st.offline_attachment(&m.id, &req.user, on).await;
    Ok(Json(WithOffline {
        inner: res,
        offline,
    }))
}

pub async fn login_otp(
    State(st): State<Shared>,
    MachineCaller(m): MachineCaller,
    Path(tx): Path<String>,
    Json(req): Json<LoginOtp>,
) -> Result<Json<WithOffline<LoginStepResult>>, ApiErr> {
    rate_limit(&st, &m.id)?;
    if tx.len() > 64 || req.code.len() > 64 {
        return Err(ApiErr::bad_request("transaction id or code is too long"));
    }
    let t0 = Instant::now();
    let answer = st.login_otp(&m.id, &tx, &req.code).await?;
    st.metrics.login(match answer.result {
        LoginStepResult::Success { .. } => Outcome::OtpSuccess,
        LoginStepResult::Retry { .. } => Outcome::OtpRetry,
        LoginStepResult::Deny { .. } => Outcome::OtpDeny,
        // Not an answer to a code; counted by the push routes' audit records instead.
        LoginStepResult::Pending { .. } => Outcome::OtpRetry,
    });
    st.metrics.otp_latency(t0.elapsed());
    Ok(Json(
        with_offline(&st, &m.id, answer.result, answer.bundle_user).await,
    ))
}

pub async fn account_check(
    State(st): State<Shared>,
    MachineCaller(m): MachineCaller,
    Json(req): Json<AccountCheck>,
) -> Result<Json<WithOffline<AccountStatus>>, ApiErr> {
    rate_limit(&st, &m.id)?;
    let (allowed, message) = st.account_check(&m.id, &req.user, &req.client_id).await?;
    let on = if allowed {
        AttachOn::Other
    } else {
        AttachOn::Refusal
    };
    let offline = st.offline_attachment(&m.id, &req.user, on).await;
    Ok(Json(WithOffline {
        inner: AccountStatus { allowed, message },
        offline,
    }))
}

/// A second-factor answer with its offline attachment: a bundle after a success (for the
/// transaction's user), nothing otherwise (the login start already carried the forget list).
/// Reads the transaction's user for the bundle decision; [`with_offline`] when it is known.
pub(super) async fn step_with_offline(
    st: &Shared,
    machine_id: &str,
    tx: &str,
    res: LoginStepResult,
) -> Result<WithOffline<LoginStepResult>, ApiErr> {
    let bundle_user = if matches!(res, LoginStepResult::Success { .. }) {
        st.store.tx_user_offline_candidate(tx).await?
    } else {
        None
    };
    Ok(with_offline(st, machine_id, res, bundle_user).await)
}

/// [`step_with_offline`] with the transaction's user and whether it has anything a bundle
/// could carry already known.
async fn with_offline(
    st: &Shared,
    machine_id: &str,
    res: LoginStepResult,
    bundle_user: Option<(String, bool)>,
) -> WithOffline<LoginStepResult> {
    let mut offline = Default::default();
    if matches!(res, LoginStepResult::Success { .. })
        && let Some((user, has_offline)) = bundle_user
    {
        // A user with nothing to use offline gets no bundle: only the forget list.
        let on = if has_offline {
            AttachOn::MfaSuccess
        } else {
            AttachOn::Other
        };
        offline = st.offline_attachment(machine_id, &user, on).await;
    }
    WithOffline {
        inner: res,
        offline,
    }
}
