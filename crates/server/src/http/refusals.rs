//! Every refusal the router sends is our JSON error shape (docs/api.md), whoever made it.
//!
//! Handlers and our extractors answer with `ApiErr` already; axum's own rejections (a path
//! segment that is not UTF-8, a body limit hit by another extractor…) are `text/plain`. This
//! layer turns any error answer that is not JSON into `{"error","message"}` with the same
//! status, keeping axum's text as the message, and closes the connection after a 408 or a
//! 413, whose body may still be on its way.

use super::conn_limits::LogThrottle;
use super::error::ApiErr;
use super::extract::clip;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use latchkey_proto::ErrorCode;
use std::time::Duration;

/// axum's rejection texts are a line or two; anything longer is not one of them.
const MAX_TEXT: usize = 4096;

static CONVERTED_LOG: LogThrottle = LogThrottle::new(Duration::from_secs(10));

pub async fn json_errors(req: Request, next: Next) -> Response {
    // The web console's refusals are pages (web::headers draws them).
    if crate::web::is_ui(req.uri().path()) {
        return next.run(req).await;
    }
    // Cheap clones (shared bytes), kept only to say which request a converted refusal was for.
    let method = req.method().clone();
    let uri = req.uri().clone();
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let mut resp = if is_json(&resp) {
        resp
    } else {
        let (mut parts, body) = resp.into_parts();
        let text = match axum::body::to_bytes(body, MAX_TEXT).await {
            Ok(b) if !b.is_empty() => clip(String::from_utf8_lossy(&b).trim()),
            _ => status.canonical_reason().unwrap_or("refused").to_string(),
        };
        if let Some(suppressed) = CONVERTED_LOG.allow() {
            tracing::info!(
                %method,
                path = %clip(uri.path()),
                status = status.as_u16(),
                suppressed,
                "request refused: {text}"
            );
        }
        let json = ApiErr::new(status, code(status), text).into_response();
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::CONTENT_TYPE);
        let (json_parts, json_body) = json.into_parts();
        parts.headers.extend(json_parts.headers);
        Response::from_parts(parts, json_body)
    };
    if matches!(
        status,
        StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
    ) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The stable code of docs/api.md for a status.
fn code(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::LENGTH_REQUIRED => ErrorCode::LengthRequired,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::URI_TOO_LONG => ErrorCode::UriTooLong,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ErrorCode::HeadersTooLarge,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::InternalError,
        _ => ErrorCode::InvalidRequest,
    }
}
