//! HTTP layer: routes, the accept loop (TLS or plain), graceful shutdown.

mod admin_machines;
mod admin_policies;
mod admin_users;
pub mod body;
pub mod conn_limits;
pub mod error;
mod events;
pub mod extract;
mod fido2;
mod login;
mod refusals;
mod serve;
mod smartcard;
mod token_app;

pub use serve::{ServeOptions, serve};

use crate::engine::Engine;
use crate::ratelimit::RateLimiter;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use body::BodyLimit;
use error::ApiErr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What every request is handed: the engine that decides, and what only the transport
/// needs (the request rate limits, whether the server is stopping).
pub struct HttpContext {
    pub engine: Engine,
    /// Login API requests per machine, join attempts per address.
    pub limiter: RateLimiter,
    /// Set at shutdown: readiness answers 503 while open requests finish.
    pub shutting_down: AtomicBool,
}

impl HttpContext {
    pub fn new(engine: Engine, limiter: RateLimiter) -> HttpContext {
        HttpContext {
            engine,
            limiter,
            shutting_down: AtomicBool::new(false),
        }
    }
}

pub type Ctx = Arc<HttpContext>;

pub fn router(cx: Ctx) -> Router {
    let max_body = cx.engine.cfg().max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/machines/join", post(login::join))
        .route("/v1/login/start", post(login::login_start))
        .route("/v1/login/{tx}/otp", post(login::login_otp))
        .route("/v1/account/check", post(login::account_check))
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
        .route("/v1/login/{tx}/push", post(token_app::push_start))
        .route("/v1/login/{tx}/push/wait", post(token_app::push_wait))
        .route("/v1/admin/users/{name}/apps", post(token_app::link_create))
        .route("/v1/apps/register", post(token_app::register))
        .route("/v1/apps/pending", get(token_app::pending))
        .route("/v1/apps/respond", post(token_app::respond))
        .route("/v1/apps/badge", post(token_app::badge))
        .route(
            "/v1/admin/users",
            get(admin_users::user_list).post(admin_users::user_add),
        )
        .route(
            "/v1/admin/users/{name}",
            get(admin_users::user_show)
                .patch(admin_users::user_update)
                .delete(admin_users::user_remove),
        )
        .route(
            "/v1/admin/users/{name}/tokens",
            get(admin_users::token_list).post(admin_users::token_add),
        )
        .route(
            "/v1/admin/users/{name}/verify",
            post(admin_users::token_verify),
        )
        .route("/v1/admin/tokens/{id}", delete(admin_users::token_remove))
        .route(
            "/v1/admin/tokens/{id}/resync",
            post(admin_users::token_resync),
        )
        .route("/v1/admin/policies", get(admin_policies::policy_list))
        .route(
            "/v1/admin/policies/{id}",
            get(admin_policies::policy_show)
                .patch(admin_policies::policy_set)
                .delete(admin_policies::policy_remove),
        )
        .route("/v1/admin/machines", get(admin_machines::machine_list))
        .route(
            "/v1/admin/machines/{id}",
            delete(admin_machines::machine_remove),
        )
        .route(
            "/v1/admin/machines/{id}/forget-offline",
            post(admin_machines::forget_offline),
        )
        .route(
            "/v1/admin/join-tokens",
            post(admin_machines::join_token_create),
        )
        .route("/v1/admin/audit", get(admin_machines::audit))
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
            cx.clone(),
            count_status,
        ))
        .with_state(cx)
}

/// The limit our body reader enforces (`BodyLimit`) and, for any axum extractor that reads
/// a body itself, the same number as axum's own.
fn body_limit(
    max: usize,
) -> tower::layer::util::Stack<axum::Extension<BodyLimit>, DefaultBodyLimit> {
    tower::layer::util::Stack::new(axum::Extension(BodyLimit(max)), DefaultBodyLimit::max(max))
}

async fn count_status(State(cx): State<Ctx>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    cx.engine.metrics().http_status(resp.status().as_u16());
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

async fn readyz(State(cx): State<Ctx>) -> Response {
    if cx.shutting_down.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "shutting down"})),
        )
            .into_response();
    }
    match cx.engine.ready().await {
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

async fn metrics(State(cx): State<Ctx>) -> Response {
    let (users, writes) = cx.engine.store_figures().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        cx.engine.metrics().render(users, writes),
    )
        .into_response()
}
