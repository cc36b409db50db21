//! CORS for the token app's API, and for nothing else (docs/decisions.md, "Web token app").
//!
//! The web token app is installed from one latchkeyd but may hold accounts on several, so it
//! calls other servers' `/v1/apps/*` from its origin. Those calls carry a bearer app key or a
//! one-time registration code, never a cookie, so `Access-Control-Allow-Origin: *` (without
//! `Allow-Credentials`) lets another site do nothing it could not do by calling the API
//! itself. A preflight is answered here without reaching a handler, the engine or the store;
//! it has already passed the accept loop's connection caps and header timeout like any
//! request, and it reads no body.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use latchkey_proto::routes;

/// A layer on the whole router, so that every answer of the token app's routes carries
/// `Access-Control-Allow-Origin: *`, whoever made it (a handler's refusal, the router's 405):
/// a revoked app must be able to read its 401. The routes have no parameters, so the exact
/// path is the route.
pub async fn token_app_api(req: Request, next: Next) -> Response {
    if !routes::CORS_ROUTES.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let mut resp = if req.method() == Method::OPTIONS {
        preflight()
    } else {
        next.run(req).await
    };
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response()
}
