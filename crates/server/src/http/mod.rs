//! HTTP layer: routes, the accept loop (TLS or plain), graceful shutdown.

mod admin_admins;
mod admin_machines;
mod admin_policies;
mod admin_users;
mod app_assets;
pub mod body;
pub mod conn_limits;
mod cors;
mod enroll;
pub mod error;
mod events;
pub mod extract;
mod fido2;
mod login;
mod openapi;
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
use latchkey_proto::ErrorCode;
use latchkey_proto::routes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What every request is handed: the engine that decides, and what only the transport
/// needs (the request rate limits, whether the server is stopping).
pub struct HttpContext {
    pub engine: Engine,
    /// Login API requests per machine, join attempts per address.
    pub limiter: RateLimiter,
    /// Web sign-in attempts (admin and user) per peer address.
    pub signin_limiter: RateLimiter,
    /// Set at shutdown: readiness answers 503 while open requests finish.
    pub shutting_down: AtomicBool,
}

impl HttpContext {
    pub fn new(engine: Engine, limiter: RateLimiter) -> HttpContext {
        HttpContext {
            engine,
            limiter,
            signin_limiter: RateLimiter::per_minute(SIGNIN_PER_MINUTE, SIGNIN_BURST),
            shutting_down: AtomicBool::new(false),
        }
    }
}

pub type Ctx = Arc<HttpContext>;

/// Web sign-in POSTs one address may make: a burst of 10, then one every 6 seconds. With
/// the lockout (5 failures per admin account) this bounds guessing from one address.
pub const SIGNIN_PER_MINUTE: u32 = 10;
pub const SIGNIN_BURST: u32 = 10;

pub fn router(cx: Ctx) -> Router {
    let max_body = cx.engine.cfg().max_body_bytes;
    Router::new()
        .route(routes::HEALTHZ, get(healthz))
        .route(routes::READYZ, get(readyz))
        .route(routes::METRICS, get(metrics))
        .route(routes::OPENAPI, get(openapi::document))
        .route(routes::MACHINE_JOIN, post(login::join))
        .route(routes::LOGIN_START, post(login::login_start))
        .route(routes::LOGIN_OTP, post(login::login_otp))
        .route(routes::ACCOUNT_CHECK, post(login::account_check))
        .route(routes::LOGIN_FIDO2, post(fido2::login_fido2))
        .route(routes::FIDO2_REGISTER_START, post(fido2::register_start))
        .route(routes::FIDO2_REGISTER_FINISH, post(fido2::register_finish))
        .route(routes::ADMIN_USER_FIDO2, post(fido2::registration_create))
        .route(routes::LOGIN_SMARTCARD, post(smartcard::login))
        .route(routes::SMARTCARD_ENROLL, post(smartcard::enroll))
        .route(routes::ADMIN_USER_SMARTCARDS, post(smartcard::add))
        .route(
            routes::ADMIN_USER_SMARTCARDS_ENROLL,
            post(smartcard::code_create),
        )
        .route(routes::LOGIN_PUSH, post(token_app::push_start))
        .route(routes::LOGIN_PUSH_WAIT, post(token_app::push_wait))
        .route(routes::LOGIN_ENROLL, post(enroll::begin))
        .route(routes::LOGIN_ENROLL_CONFIRM, post(enroll::confirm))
        .route(routes::LOGIN_ENROLL_WAIT, post(enroll::wait))
        .route(routes::LOGIN_ENROLL_SKIP, post(enroll::skip))
        .route(routes::ADMIN_USER_APPS, post(token_app::link_create))
        // The token app's API; CORS for it alone (routes::CORS_ROUTES, cors.rs).
        .route(routes::APP_REGISTER, post(token_app::register))
        .route(routes::APP_PENDING, get(token_app::pending))
        .route(routes::APP_RESPOND, post(token_app::respond))
        .route(routes::APP_BADGE, post(token_app::badge))
        .route(
            routes::ADMIN_USERS,
            get(admin_users::user_list).post(admin_users::user_add),
        )
        .route(
            routes::ADMIN_USER,
            get(admin_users::user_show)
                .patch(admin_users::user_update)
                .delete(admin_users::user_remove),
        )
        .route(
            routes::ADMIN_USER_TOKENS,
            get(admin_users::token_list).post(admin_users::token_add),
        )
        .route(routes::ADMIN_USER_VERIFY, post(admin_users::token_verify))
        .route(routes::ADMIN_USER_INVITE, post(admin_users::user_invite))
        .route(routes::ADMIN_TOKEN, delete(admin_users::token_remove))
        .route(routes::ADMIN_TOKEN_RESYNC, post(admin_users::token_resync))
        .route(routes::ADMIN_POLICIES, get(admin_policies::policy_list))
        .route(
            routes::ADMIN_POLICY,
            get(admin_policies::policy_show)
                .patch(admin_policies::policy_set)
                .delete(admin_policies::policy_remove),
        )
        .route(routes::ADMIN_MACHINES, get(admin_machines::machine_list))
        .route(
            routes::ADMIN_MACHINE,
            delete(admin_machines::machine_remove),
        )
        .route(
            routes::ADMIN_MACHINE_FORGET_OFFLINE,
            post(admin_machines::forget_offline),
        )
        .route(
            routes::ADMIN_JOIN_TOKENS,
            post(admin_machines::join_token_create),
        )
        .route(routes::ADMIN_AUDIT, get(admin_machines::audit))
        .route(
            routes::EVENTS,
            // Batches are larger than other requests: up to MAX_BATCH events.
            post(events::upload).layer(body_limit(max_body.max(4 << 20))),
        )
        .route(routes::SESSIONS_STATE, post(events::session_state))
        .route(routes::ADMIN_EVENTS, get(events::list))
        .route(routes::ADMIN_SESSIONS, get(events::sessions))
        .route(
            routes::ADMIN_ADMINS,
            get(admin_admins::admin_list).post(admin_admins::admin_add),
        )
        .route(routes::ADMIN_ADMIN, delete(admin_admins::admin_remove))
        .route(routes::ADMIN_ADMIN_UNLOCK, post(admin_admins::admin_unlock))
        // The web token app: not API routes (routes::WEB_APP_PATHS, app_assets.rs).
        .route(routes::WEB_APP, get(app_assets::redirect))
        .route(routes::WEB_APP_ROOT, get(app_assets::root))
        .route(routes::WEB_APP_FILE, get(app_assets::file))
        // The web console and portal: pages, not API routes (routes::WEB_UI_PATHS, web/).
        .merge(crate::web::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(refusals::json_errors))
        // Around json_errors: the headers go on every answer as it leaves, refusals included.
        .layer(axum::middleware::from_fn(cors::token_app_api))
        .layer(axum::middleware::from_fn(app_assets::headers))
        .layer(axum::middleware::from_fn_with_state(
            cx.clone(),
            crate::web::headers,
        ))
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
        ErrorCode::MethodNotAllowed,
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
