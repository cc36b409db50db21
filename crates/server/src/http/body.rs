//! Reading request bodies within a size and a time, into one buffer.
//!
//! Two attacks shaped this (issue 19). A body that never comes held its connection for
//! ever: hyper's header timeout ends with the headers. And a body sent one byte at a time
//! cost ~3.6 KiB of memory per byte: each read became its own chunk, and each chunk kept
//! alive the whole read buffer it was cut from. Here every chunk is copied into one buffer
//! sized from `Content-Length` (capped at the route's limit) and dropped at once, so a body
//! costs what it declares or what arrived, whatever the number of reads.

use super::conn_limits::LogThrottle;
use super::error::ApiErr;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use http_body_util::BodyExt;
use latchkey_proto::ErrorCode;
use std::time::Duration;
use tokio::time::Instant;

/// The largest body a route accepts; set by a layer (the router's, or a route's own).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// When a request's headers were read and how long its body may take; set per request by
/// the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline {
    pub headers_at: Instant,
    pub timeout: Duration,
}

/// Used when a request did not come through the accept loop (the router alone).
const FALLBACK_LIMIT: usize = 64 * 1024;
const FALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// A body may always take `timeout`, plus one second per this many bytes received, so a
/// large event upload over a slow link still fits and a drip gains almost nothing.
const SLOW_LINK_BYTES_PER_SEC: u64 = 64 * 1024;

/// A chunked body (no `Content-Length`) starts with this much room and grows as it arrives.
const CHUNKED_START: usize = 1024;

static TIMEOUT_LOG: LogThrottle = LogThrottle::new(Duration::from_secs(10));
static TOO_LARGE_LOG: LogThrottle = LogThrottle::new(Duration::from_secs(10));

/// The whole body of `req`, or a refusal: 413 over the limit (at once when the declared
/// length is over it), 408 when it does not arrive in time, 400 when it cannot be read.
pub async fn collect(req: Request) -> Result<Vec<u8>, ApiErr> {
    let (parts, mut body) = req.into_parts();
    let limit = parts
        .extensions
        .get::<BodyLimit>()
        .map_or(FALLBACK_LIMIT, |l| l.0);
    let deadline = parts
        .extensions
        .get::<BodyDeadline>()
        .copied()
        .unwrap_or(BodyDeadline {
            headers_at: Instant::now(),
            timeout: FALLBACK_TIMEOUT,
        });
    // hyper has already refused a Content-Length that is not a number.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > limit as u64
    {
        return Err(too_large(crate::web::log_path(parts.uri.path()), limit));
    }
    let capacity = match declared {
        Some(n) => usize::try_from(n).unwrap_or(limit).min(limit),
        None => CHUNKED_START.min(limit),
    };
    let mut buf = Vec::with_capacity(capacity);
    loop {
        let allowance =
            u64::try_from(buf.len()).unwrap_or(u64::MAX) * 1000 / SLOW_LINK_BYTES_PER_SEC;
        let until = deadline.headers_at + deadline.timeout + Duration::from_millis(allowance);
        let frame = match tokio::time::timeout_at(until, body.frame()).await {
            Err(_) => {
                return Err(timed_out(
                    crate::web::log_path(parts.uri.path()),
                    deadline.timeout,
                    buf.len(),
                ));
            }
            Ok(None) => return Ok(buf),
            Ok(Some(Err(e))) => {
                return Err(ApiErr::bad_request(format!(
                    "the request body could not be read: {e}"
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers carry nothing an endpoint reads.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > limit {
            return Err(too_large(crate::web::log_path(parts.uri.path()), limit));
        }
        buf.extend_from_slice(&data);
    }
}

fn too_large(path: &str, limit: usize) -> ApiErr {
    if let Some(suppressed) = TOO_LARGE_LOG.allow() {
        tracing::info!(
            path,
            limit,
            suppressed,
            "request refused: body over the limit"
        );
    }
    ApiErr::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than the {limit} bytes this endpoint accepts"),
    )
}

fn timed_out(path: &str, timeout: Duration, received: usize) -> ApiErr {
    if let Some(suppressed) = TIMEOUT_LOG.allow() {
        tracing::info!(
            path,
            received,
            suppressed,
            "request refused: the request body did not arrive in time"
        );
    }
    ApiErr::new(
        StatusCode::REQUEST_TIMEOUT,
        ErrorCode::RequestTimeout,
        format!(
            "the request body did not arrive within {} s of its headers",
            timeout.as_secs_f32()
        ),
    )
}
