//! `GET /openapi.json`: the OpenAPI 3.1 description of this API, unauthenticated (it says
//! nothing a client of the public docs/api.md does not know).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;

/// Built on the first request and kept: the document depends only on the build.
static DOCUMENT: OnceLock<axum::body::Bytes> = OnceLock::new();

pub async fn document() -> Response {
    let body = DOCUMENT
        .get_or_init(|| axum::body::Bytes::from(latchkey_proto::openapi::document().to_string()));
    ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response()
}
