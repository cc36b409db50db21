//! The self-service portal (`/ui/me/…`, docs/web.md "Self-service portal"): a user's own
//! second factors and logins. Handlers take a [`UserSession`] (a [`UserForm`] for a POST,
//! CSRF checked), turn it into the engine's [`Me`] and call one engine method: the owner
//! checks and what an invite session may not do are the engine's.

pub mod enrol;
pub mod home;
pub mod invite;
pub mod keys;
pub mod signin;

use crate::engine::{Me, Strength};
use crate::http::Ctx;
use crate::web::layout::{Flash, Nav, NavLink};
use crate::web::session::UserSession;
use axum::Router;
use axum::routing::{get, post};
use latchkey_proto::routes;

pub fn router() -> Router<Ctx> {
    Router::new()
        .route(routes::UI_INVITE, get(invite::show).post(invite::open))
        .route(routes::UI_ME, get(home::show))
        .route(routes::UI_ME_SIGNIN, get(signin::form))
        .route(routes::UI_ME_SIGNIN_KEY, post(keys::signin_start))
        .route(routes::UI_ME_SIGNIN_KEY_FINISH, post(keys::signin_finish))
        .route(routes::UI_ME_SIGNIN_CODE, post(signin::code))
        .route(routes::UI_ME_SIGNIN_WAIT, get(signin::wait))
        .route(
            routes::UI_ME_TOTP,
            get(enrol::totp_form).post(enrol::totp_confirm),
        )
        .route(routes::UI_ME_APP, get(enrol::app))
        .route(
            routes::UI_ME_KEY,
            get(keys::register_form).post(keys::register_finish),
        )
        .route(
            routes::UI_ME_TEST,
            get(enrol::test_form).post(enrol::test_submit),
        )
        .route(routes::UI_ME_TOKEN_ACTION, post(home::token_action))
        .route(routes::UI_ME_LOGIN_REPORT, post(home::report))
}

const LINKS: &[NavLink] = &[
    NavLink {
        id: "nav-me",
        href: routes::UI_ME,
        label: "My tokens",
    },
    NavLink {
        id: "nav-me-totp",
        href: routes::UI_ME_TOTP,
        label: "Add an authenticator",
    },
];

/// The peer address of a request (audit lines, rate limits, portal transactions).
pub struct PeerIp(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(PeerIp(crate::web::session::peer_ip(&parts.extensions)))
    }
}

/// The engine's view of the session's user.
pub fn me(u: &UserSession) -> Me {
    Me {
        name: u.name.clone(),
        strength: u.strength,
    }
}

/// The portal's nav for a signed-in user.
pub fn nav<'a>(u: &'a UserSession, current: &'a str, flash: Option<Flash>) -> Nav<'a> {
    Nav {
        links: LINKS,
        current,
        who: Some(&u.name),
        session: Some(&u.session),
        flash,
    }
}

/// What an invite session may do, said once on the pages that add things.
pub fn invite_note(u: &UserSession) -> Option<&'static str> {
    (u.strength == Strength::Invite).then_some(
        "You opened an invite link: you can add and test second factors here. Removing one, or reporting a login, needs your own sign-in.",
    )
}
