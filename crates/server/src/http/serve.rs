//! The accept loop: connection caps, TLS, HTTP/1.1 with its timeouts, graceful shutdown.
//!
//! The time a peer may hold a connection without sending what it owes is bounded at each
//! stage: the TLS handshake (10 s), the request headers (30 s, also between keep-alive
//! requests), and the request body (`body_timeout`, see `body`). How many it may hold is
//! bounded by `conn_limits`.

use super::body::BodyDeadline;
use super::conn_limits::{ConnLimits, LogThrottle};
use super::extract::ConnInfo;
use axum::Router;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// hyper's read buffer, and so the largest request head: 431 beyond it. hyper's default
/// (~400 KiB) let a slow header drip hold that much per connection for 30 s; our requests'
/// heads are well under 1 KiB.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What the accept loop needs besides the router.
pub struct ServeOptions {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub limits: Arc<ConnLimits>,
    pub body_timeout: Duration,
}

static PARSE_ERROR_LOG: LogThrottle = LogThrottle::new(Duration::from_secs(10));
static ACCEPT_ERROR_LOG: LogThrottle = LogThrottle::new(Duration::from_secs(10));

/// Accepts connections until `shutdown` flips, then lets open requests finish (up to 10 s).
pub async fn serve(
    listener: TcpListener,
    opts: ServeOptions,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors despite the caps (another part of the process took
                // them): back off instead of spinning on a queue we cannot take from.
                if let Some(suppressed) = ACCEPT_ERROR_LOG.allow() {
                    tracing::warn!(error = %e, suppressed, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match opts.limits.admit(peer.ip()) {
            Ok(p) => p,
            Err(why) => {
                opts.limits.log_refusal(peer, why);
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let tls = opts.tls.clone();
        let body_timeout = opts.body_timeout;
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let mut info = ConnInfo {
                peer: Some(peer),
                client_cert_sha256: None,
            };
            let builder = {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_buf_size(MAX_HEAD_BYTES)
                    .keep_alive(true);
                b
            };
            let served = match tls {
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    info.client_cert_sha256 = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| latchkey_crypto::sha256_hex(c));
                    let svc = service(app, info, body_timeout);
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), svc))
                        .await
                }
                None => {
                    let svc = service(app, info, body_timeout);
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(tcp), svc))
                        .await
                }
            };
            if let Err(e) = served {
                log_connection_error(peer, &e);
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s; closing"),
    }
}

/// hyper answers a request it cannot parse itself (400, or 431 for a head over
/// [`MAX_HEAD_BYTES`]) and then ends the connection with the error; say why here.
fn log_connection_error(peer: SocketAddr, e: &hyper::Error) {
    if e.is_parse() {
        if let Some(suppressed) = PARSE_ERROR_LOG.allow() {
            tracing::info!(%peer, suppressed, "request refused: {e}");
        }
    } else {
        // Timeouts of idle keep-alive connections and peers going away: routine.
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}

fn service(
    app: Router,
    info: ConnInfo,
    body_timeout: Duration,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        // hyper calls the service as soon as the head is parsed: the body's clock starts.
        req.extensions_mut().insert(BodyDeadline {
            headers_at: tokio::time::Instant::now(),
            timeout: body_timeout,
        });
        req.extensions_mut().insert(info.clone());
        let mut app = app.clone();
        async move { tower::Service::call(&mut app, req.map(axum::body::Body::new)).await }
    })
}
