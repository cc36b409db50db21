//! Admin routes for policies, machines, join tokens and the audit log (admin API key only).

use super::admin::validate_text;
use super::error::ApiErr;
use super::extract::{AdminCaller, Json, Query};
use crate::engine::validate_client_id;
use crate::policy;
use crate::state::{Actor, Shared, now};
use crate::store::Settings;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_crypto::keys::{generate_api_key, hash_api_key};
use latchkey_proto::admin::*;

type ApiResult<T> = Result<Json<T>, ApiErr>;

async fn effective_policy(st: &Shared, client_id: &str, own: &Settings) -> Result<Policy, ApiErr> {
    let star = if client_id == policy::FALLBACK {
        None
    } else {
        st.store.policy_get(policy::FALLBACK).await?
    };
    policy::effective(client_id, star.as_ref(), Some(own))
        .map_err(|e| ApiErr::new(StatusCode::SERVICE_UNAVAILABLE, "policy_error", e))
}

pub async fn policy_list(State(st): State<Shared>, _: AdminCaller) -> ApiResult<Vec<Policy>> {
    let mut out = Vec::new();
    for (id, own) in st.store.policy_list().await? {
        out.push(effective_policy(&st, &id, &own).await?);
    }
    Ok(Json(out))
}

pub async fn policy_show(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<Policy> {
    let own = st
        .store
        .policy_get(&id)
        .await?
        .ok_or_else(|| ApiErr::not_found(format!("no policy for client_id {id:?}")))?;
    Ok(Json(effective_policy(&st, &id, &own).await?))
}

pub async fn policy_set(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(id): Path<String>,
    Json(req): Json<PolicyUpdate>,
) -> ApiResult<Policy> {
    validate_client_id(&id)?;
    if req.settings.is_empty() {
        return Err(ApiErr::bad_request("give at least one key=value setting"));
    }
    let mut own = st.store.policy_get(&id).await?.unwrap_or_default();
    for (k, v) in &req.settings {
        validate_text(k, v, 4096)?;
        if v.is_empty() {
            // `key=` returns the key to its inherited value.
            if !policy::KEYS.iter().any(|(known, _)| known == k) {
                return Err(ApiErr::bad_request(format!("{k}: unknown setting")));
            }
            own.remove(k);
        } else {
            policy::apply(&mut policy::defaults(&id), k, v).map_err(ApiErr::bad_request)?;
            own.insert(k.clone(), v.clone());
        }
    }
    st.store.policy_put(&id, &own, now()).await?;
    st.policy_cache.clear();
    let detail = req
        .settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    st.audit(&Actor::Admin, "policy.set", None, Some(&id), "ok", detail)
        .await;
    Ok(Json(effective_policy(&st, &id, &own).await?))
}

pub async fn policy_remove(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiErr> {
    if id == policy::FALLBACK {
        return Err(ApiErr::bad_request(
            "the `*` policy holds the defaults and cannot be removed",
        ));
    }
    if !st.store.policy_delete(&id).await? {
        return Err(ApiErr::not_found(format!("no policy for client_id {id:?}")));
    }
    st.policy_cache.clear();
    st.audit(&Actor::Admin, "policy.remove", None, Some(&id), "ok", "")
        .await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn machine_list(State(st): State<Shared>, _: AdminCaller) -> ApiResult<Vec<Machine>> {
    let out = st
        .store
        .machine_list()
        .await?
        .into_iter()
        .map(|m| Machine {
            credential: if m.cert_sha256.is_some() {
                "client_cert".into()
            } else {
                "api_key".into()
            },
            id: m.id,
            hostname: m.hostname,
            created_at: m.created_at,
            last_seen_at: m.last_seen_at,
        })
        .collect();
    Ok(Json(out))
}

pub async fn machine_remove(
    State(st): State<Shared>,
    _: AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiErr> {
    if !st.store.machine_delete(&id).await? {
        return Err(ApiErr::not_found(format!("machine {id:?} not found")));
    }
    st.machine_cache.clear();
    st.audit(
        &Actor::Admin,
        "machine.remove",
        None,
        None,
        "ok",
        format!("machine {id}"),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn join_token_create(
    State(st): State<Shared>,
    _: AdminCaller,
    Json(req): Json<JoinTokenCreate>,
) -> Result<(StatusCode, Json<JoinTokenCreated>), ApiErr> {
    if !(1..=30 * 86_400).contains(&req.expires_in) {
        return Err(ApiErr::bad_request(
            "expires_in must be between 1 second and 30 days",
        ));
    }
    let note = req.note.unwrap_or_default();
    validate_text("note", &note, 256)?;
    let token = generate_api_key("lkj")
        .map_err(|e| ApiErr::new(StatusCode::SERVICE_UNAVAILABLE, "internal", e.to_string()))?;
    let now = now();
    let expires_at = now + req.expires_in as i64;
    st.store
        .join_token_create(&hash_api_key(&token), &note, now, expires_at)
        .await?;
    st.audit(
        &Actor::Admin,
        "machine.join_token",
        None,
        None,
        "ok",
        format!("expires at {}; {note}", rfc3339(expires_at)),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(JoinTokenCreated {
            join_token: token,
            expires_at,
        }),
    ))
}

pub async fn audit(
    State(st): State<Shared>,
    _: AdminCaller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Vec<AuditEntry>> {
    let limit = listing_limit(q.limit)?;
    st.auditor.flush().await;
    Ok(Json(
        st.store
            .audit_query(q.user.as_deref(), q.since, limit)
            .await?,
    ))
}

/// Entries a listing returns when the request names no `limit`.
const DEFAULT_LIST: u32 = 1000;
/// Most entries one listing returns; a larger `limit` is refused, not cut silently (a
/// script that asked for more must learn that it got less).
pub(super) const MAX_LIST: u32 = 10_000;

/// The `limit` of a listing (audit, events): 1 to [`MAX_LIST`], else a 400.
pub(super) fn listing_limit(limit: Option<u32>) -> Result<i64, ApiErr> {
    match limit.unwrap_or(DEFAULT_LIST) {
        n @ 1..=MAX_LIST => Ok(i64::from(n)),
        n => Err(ApiErr::bad_request(format!(
            "limit must be between 1 and {MAX_LIST} (got {n}); use since/after to page"
        ))),
    }
}

fn rfc3339(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}
