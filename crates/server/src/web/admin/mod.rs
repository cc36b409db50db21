//! The admin console (`/ui/admin/…`) and its sign-in page. Each area is a file; every
//! handler takes an [`AdminSession`](crate::web::session::AdminSession) (or an
//! [`AdminForm`](crate::web::session::AdminForm) for a POST, CSRF checked) and calls the
//! engine with the admin as the actor.

pub mod activity;
pub mod logs;
pub mod machines;
pub mod overview;
pub mod page;
pub mod policies;
pub mod signin;
pub mod tokens;
pub mod user;
pub mod users;

use crate::http::Ctx;
use axum::Router;
use axum::routing::{get, post};
use latchkey_proto::routes;

pub fn router() -> Router<Ctx> {
    Router::new()
        .route(routes::UI_SIGNIN, get(signin::form).post(signin::submit))
        .route(routes::UI_ADMIN, get(overview::show))
        .route(routes::UI_ADMIN_USERS, get(users::list).post(users::add))
        .route(routes::UI_ADMIN_USER, get(user::show))
        .route(routes::UI_ADMIN_USER_ACTION, post(user::action))
        .route(routes::UI_ADMIN_TOKEN_ACTION, post(tokens::action))
        .route(
            routes::UI_ADMIN_POLICIES,
            get(policies::list).post(policies::create),
        )
        .route(routes::UI_ADMIN_MACHINES, get(machines::list))
        .route(routes::UI_ADMIN_AUDIT, get(logs::audit))
        .route(routes::UI_ADMIN_EVENTS, get(activity::events))
        .route(routes::UI_ADMIN_SESSIONS, get(activity::sessions))
        .route(routes::UI_ADMIN_MACHINE_ACTION, post(machines::action))
        .route(routes::UI_ADMIN_JOIN_TOKENS, post(machines::join_token))
        .route(
            routes::UI_ADMIN_POLICY,
            get(policies::show).post(policies::change),
        )
}
