//! HTTP layer: routes, the accept loop (TLS or plain), graceful shutdown.

mod admin;
mod admin_fleet;
mod app;
pub mod body;
pub mod conn_limits;
pub mod error;
mod events;
pub mod extract;
mod fido2;
mod machine;
mod offline;
mod openapi;
mod refusals;
mod serve;
mod smartcard;

pub use serve::{ServeOptions, serve};

use crate::state::Shared;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use body::BodyLimit;
use error::ApiErr;
use std::sync::atomic::Ordering;

/// The lifetime of a one-time code an admin hands out (token-app link, FIDO2 registration):
/// 15 minutes unless asked, at most 7 days.
pub(crate) fn one_time_code_ttl(expires_in: Option<u64>) -> Result<u64, ApiErr> {
    let ttl = expires_in.unwrap_or(900);
    if !(1..=7 * 86_400).contains(&ttl) {
        return Err(ApiErr::bad_request(
            "expires_in must be between 1 second and 7 days",
        ));
    }
    Ok(ttl)
}

pub fn router(state: Shared) -> Router {
    let max_body = state.cfg.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(latchkey_proto::routes::OPENAPI, get(openapi::document))
        .route("/v1/machines/join", post(machine::join))
        .route("/v1/login/start", post(machine::login_start))
        .route("/v1/login/{tx}/otp", post(machine::login_otp))
        .route("/v1/account/check", post(machine::account_check))
        .route("/v1/login/{tx}/fido2", post(fido2::login_fido2))
        .route("/v1/fido2/register/start", post(fido2::register_start))
        .route("/v1/fido2/register/finish", post(fido2::register_finish))
        .route(
            "/v1/admin/users/{name}/fido2",
            post(fido2::registration_create),
        )
        .route("/v1/login/{tx}/smartcard", post(smartcard::login))
        .route("/v1/smartcards/enroll", post(smartcard::enroll))
        .route("/v1/admin/users/{name}/smartcards", post(smartcard::add))
        .route(
            "/v1/admin/users/{name}/smartcards/enroll",
            post(smartcard::code_create),
        )
        .route("/v1/login/{tx}/push", post(app::push_start))
        .route("/v1/login/{tx}/push/wait", post(app::push_wait))
        .route("/v1/admin/users/{name}/apps", post(app::link_create))
        .route("/v1/apps/register", post(app::register))
        .route("/v1/apps/pending", get(app::pending))
        .route("/v1/apps/respond", post(app::respond))
        .route("/v1/apps/badge", post(app::badge))
        .route(
            "/v1/admin/users",
            get(admin::user_list).post(admin::user_add),
        )
        .route(
            "/v1/admin/users/{name}",
            get(admin::user_show)
                .patch(admin::user_update)
                .delete(admin::user_remove),
        )
        .route(
            "/v1/admin/users/{name}/tokens",
            get(admin::token_list).post(admin::token_add),
        )
        .route("/v1/admin/users/{name}/verify", post(admin::token_verify))
        .route("/v1/admin/tokens/{id}", delete(admin::token_remove))
        .route("/v1/admin/tokens/{id}/resync", post(admin::token_resync))
        .route("/v1/admin/policies", get(admin_fleet::policy_list))
        .route(
            "/v1/admin/policies/{id}",
            get(admin_fleet::policy_show)
                .patch(admin_fleet::policy_set)
                .delete(admin_fleet::policy_remove),
        )
        .route("/v1/admin/machines", get(admin_fleet::machine_list))
        .route(
            "/v1/admin/machines/{id}",
            delete(admin_fleet::machine_remove),
        )
        .route(
            "/v1/admin/machines/{id}/forget-offline",
            post(offline::forget),
        )
        .route(
            "/v1/admin/join-tokens",
            post(admin_fleet::join_token_create),
        )
        .route("/v1/admin/audit", get(admin_fleet::audit))
        .route(
            "/v1/events",
            // Batches are larger than other requests: up to MAX_BATCH events.
            post(events::upload).layer(body_limit(max_body.max(4 << 20))),
        )
        .route("/v1/sessions/state", post(events::session_state))
        .route("/v1/admin/events", get(events::list))
        .route("/v1/admin/sessions", get(events::sessions))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(refusals::json_errors))
        .layer(body_limit(max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_status,
        ))
        .with_state(state)
}

/// The limit our body reader enforces (`BodyLimit`) and, for any axum extractor that reads
/// a body itself, the same number as axum's own.
fn body_limit(
    max: usize,
) -> tower::layer::util::Stack<axum::Extension<BodyLimit>, DefaultBodyLimit> {
    tower::layer::util::Stack::new(axum::Extension(BodyLimit(max)), DefaultBodyLimit::max(max))
}

async fn count_status(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    st.metrics.http_status(resp.status().as_u16());
    resp
}

async fn not_found(req: Request) -> ApiErr {
    ApiErr::not_found(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> ApiErr {
    ApiErr::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(st): State<Shared>) -> Response {
    if st.shutting_down.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "shutting down"})),
        )
            .into_response();
    }
    match st.store.ping().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "database unavailable"})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(st): State<Shared>) -> Response {
    let users = st.store.user_count().await.unwrap_or(-1);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(users, st.store.write_stats()),
    )
        .into_response()
}
