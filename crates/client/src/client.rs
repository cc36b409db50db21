//! The pooled HTTP/1.1 client and the JSON request helpers.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ClientConfig, Credential};
use crate::connect::{ConnectError, Connector, origin_of, tls_cause};
use crate::error::{Error, Result, describe_io};
use crate::proxy::Proxy;
use crate::tls;

/// Largest answer body accepted (audit listings are the biggest answers).
const MAX_BODY: usize = 32 * 1024 * 1024;
/// Idle keep-alive connections are closed after this; the server closes earlier anyway.
const POOL_IDLE: Duration = Duration::from_secs(60);
const USER_AGENT: &str = concat!("latchkey-client/", env!("CARGO_PKG_VERSION"));

/// An HTTPS client for one latchkey server. Cheap to clone; clones share the connection pool.
///
/// The pool, TLS settings and credential are independent of the base URL (the connector
/// works from each request's URI), so a later server list can share one `Client` and pick
/// the server per request with [`Client::request_to`], feeding [`Error::is_unreachable`]
/// into its selection policy and circuit breaker.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: HyperClient<Connector, Full<Bytes>>,
    /// Base URL without its trailing `/`.
    base: String,
    authorization: Option<HeaderValue>,
    /// For plain `http://` targets through a proxy (CONNECT tunnels carry it themselves).
    proxy_authorization: Option<HeaderValue>,
    request_timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Checks the configuration and loads the CA file / pin / client certificate. No network
    /// traffic happens until the first request.
    pub fn new(cfg: ClientConfig) -> Result<Client> {
        check_server_url(&cfg.base_url)?;
        let tls = match &cfg.trust {
            Some(trust) => Some(tls::client_config(trust, &cfg.credential)?),
            None if cfg.base_url.scheme() == "https" => {
                return Err(Error::Config(format!(
                    "no way to trust {}: give a CA file or a pin",
                    cfg.base_url
                )));
            }
            None => None,
        };
        if matches!(cfg.credential, Credential::ClientCert { .. }) && tls.is_none() {
            return Err(Error::Config(
                "a client certificate needs an https:// server".into(),
            ));
        }
        let authorization = match &cfg.credential {
            Credential::Bearer(token) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    Error::Config(
                        "the bearer token contains characters not allowed in a header".into(),
                    )
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            Credential::None | Credential::ClientCert { .. } => None,
        };
        let proxy = cfg.proxy.as_ref().map(Proxy::from_url).transpose()?;
        let proxy_authorization = match proxy.as_ref().and_then(|p| p.authorization.as_deref()) {
            Some(a) => {
                let mut v = HeaderValue::from_str(a)
                    .map_err(|_| Error::Config("invalid proxy credentials".into()))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let connector = Connector::new(tls, proxy, cfg.connect_timeout);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base: cfg.base_url.as_str().trim_end_matches('/').to_string(),
                authorization,
                proxy_authorization,
                request_timeout: cfg.request_timeout,
            }),
        })
    }

    /// The base URL requests are made against, without trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// `GET path` and decode the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let (_, body) = self.send(Method::GET, path, None).await?;
        self.decode(&body)
    }

    /// `POST path` with a JSON body and decode the JSON answer.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let (_, answer) = self
            .send(Method::POST, path, Some(self.encode(body)?))
            .await?;
        self.decode(&answer)
    }

    /// `PATCH path` with a JSON body and decode the JSON answer.
    pub async fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let (_, answer) = self
            .send(Method::PATCH, path, Some(self.encode(body)?))
            .await?;
        self.decode(&answer)
    }

    /// `DELETE path`; any 2xx (normally 204 No Content) is success.
    pub async fn delete(&self, path: &str) -> Result<()> {
        self.send(Method::DELETE, path, None).await.map(|_| ())
    }

    /// Any method with an optional JSON body; returns the 2xx status and the raw answer.
    /// Non-2xx answers are [`Error::Api`] as for the typed helpers.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, Bytes)> {
        let body = body.map(|b| self.encode(&b)).transpose()?;
        self.send(method, path, body).await
    }

    /// Like [`Client::request`] against another base URL, sharing this client's pool, TLS
    /// trust and credential. Meant for a server list whose members share one trust setting.
    pub async fn request_to(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, Bytes)> {
        let body = body.map(|b| self.encode(&b)).transpose()?;
        self.send_to(base.trim_end_matches('/'), method, path, body)
            .await
    }

    fn encode<B: Serialize + ?Sized>(&self, body: &B) -> Result<Vec<u8>> {
        encode_json(body)
    }

    fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T> {
        decode_json(&self.inner.base, body)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes)> {
        self.send_to(&self.inner.base, method, path, body).await
    }

    pub(crate) async fn send_to(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes)> {
        self.send_dated(base, method, path, body)
            .await
            .map(|(status, body, _)| (status, body))
    }

    /// The one request path: `base` is a server URL without trailing `/`, `body` encoded JSON.
    /// Also returns the answer's `Date` header in Unix seconds (the server's time, carried by
    /// the authenticated connection).
    pub(crate) async fn send_dated(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes, Option<i64>)> {
        if !path.starts_with('/') {
            return Err(Error::Config(format!(
                "request path {path:?} must start with /"
            )));
        }
        let uri: Uri = format!("{base}{path}")
            .parse()
            .map_err(|e| Error::Config(format!("invalid request URL {base}{path}: {e}")))?;
        let origin = origin_of(&uri);
        let mut req = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, USER_AGENT);
        if let Some(auth) = &self.inner.authorization {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        if let Some(auth) = &self.inner.proxy_authorization
            && base.starts_with("http:")
        {
            req = req.header(header::PROXY_AUTHORIZATION, auth.clone());
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(b))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req
            .body(body)
            .map_err(|e| Error::Config(format!("cannot build request: {e}")))?;

        let after = self.inner.request_timeout;
        let exchange = async {
            let resp = self
                .inner
                .http
                .request(req)
                .await
                .map_err(|e| map_send_error(&origin, &e))?;
            let status = resp.status();
            let date = resp
                .headers()
                .get(header::DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_secs()).ok());
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| map_body_error(&origin, e.as_ref()))?
                .to_bytes();
            Ok::<_, Error>((status, body, date))
        };
        let (status, body, date) = match tokio::time::timeout(after, exchange).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::Timeout {
                    server: origin,
                    after,
                });
            }
        };
        tracing::trace!(%method, path, status = status.as_u16(), "latchkey request");
        if status.is_success() {
            Ok((status, body, date))
        } else {
            Err(api_error(status, &body))
        }
    }
}

/// Checks that `url` can be a server base URL: `https`/`http`, a host, no query or fragment.
pub(crate) fn check_server_url(url: &url::Url) -> Result<()> {
    match url.scheme() {
        "https" | "http" => {}
        other => {
            return Err(Error::Config(format!(
                "server URL {url}: scheme must be https or http, not {other}"
            )));
        }
    }
    if url.host().is_none() {
        return Err(Error::Config(format!("server URL {url} has no host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!(
            "server URL {url} must not have a query or fragment"
        )));
    }
    Ok(())
}

pub(crate) fn encode_json<B: Serialize + ?Sized>(body: &B) -> Result<Vec<u8>> {
    serde_json::to_vec(body)
        .map_err(|e| Error::Config(format!("cannot encode the request body: {e}")))
}

/// Decodes a 2xx answer from `server`. An empty answer (204) decodes as JSON null, so `()` and
/// `Option<_>` work.
pub(crate) fn decode_json<T: DeserializeOwned>(server: &str, body: &[u8]) -> Result<T> {
    let body: &[u8] = if body.is_empty() { b"null" } else { body };
    serde_json::from_slice(body).map_err(|e| Error::Protocol {
        server: server.to_string(),
        reason: format!("invalid JSON answer: {e}"),
    })
}

/// Builds [`Error::Api`] from a non-2xx answer, with a readable fallback when the body is not
/// the server's `{"error","message"}` (e.g. a proxy's HTML error page).
fn api_error(status: StatusCode, body: &[u8]) -> Error {
    match serde_json::from_slice::<latchkey_proto::ApiError>(body) {
        Ok(e) => Error::Api {
            status,
            error: e.error,
            message: e.message,
        },
        Err(_) => {
            let reason = status.canonical_reason().unwrap_or("error");
            let text: String = String::from_utf8_lossy(body)
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            let message = if text.trim().is_empty() {
                format!("HTTP {} {reason}", status.as_u16())
            } else {
                format!("HTTP {} {reason}: {}", status.as_u16(), text.trim())
            };
            Error::Api {
                status,
                error: format!("http_{}", status.as_u16()),
                message,
            }
        }
    }
}

fn sources<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |e: &&'a (dyn StdError + 'static)| (*e).source())
}

fn map_send_error(origin: &str, e: &hyper_util::client::legacy::Error) -> Error {
    for cause in sources(e) {
        if let Some(c) = cause.downcast_ref::<ConnectError>() {
            return match c {
                ConnectError::Unreachable { server, reason } => Error::Connect {
                    server: server.clone(),
                    reason: reason.clone(),
                },
                ConnectError::Local { server, reason } => Error::Local {
                    server: server.clone(),
                    reason: reason.clone(),
                },
                ConnectError::Timeout { server, after } => Error::Timeout {
                    server: server.clone(),
                    after: *after,
                },
                ConnectError::Tls { server, reason } => Error::Tls {
                    server: server.clone(),
                    reason: reason.clone(),
                },
                ConnectError::BadUri(uri) => Error::Config(format!("bad request URI {uri}")),
            };
        }
    }
    map_transport(origin, e)
}

fn map_body_error(origin: &str, e: &(dyn StdError + Send + Sync + 'static)) -> Error {
    if e.is::<http_body_util::LengthLimitError>() {
        return Error::Protocol {
            server: origin.to_string(),
            reason: format!("answer larger than {MAX_BODY} bytes"),
        };
    }
    map_transport(origin, e)
}

/// Errors after the connection was made: TLS alerts (e.g. the server refused our client
/// certificate, which TLS 1.3 reports only after the handshake), a lost connection, or HTTP
/// the client cannot parse.
fn map_transport(origin: &str, e: &(dyn StdError + 'static)) -> Error {
    for cause in sources(e) {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if crate::error::is_local_resource(io) {
                return Error::Local {
                    server: origin.to_string(),
                    reason: describe_io(io),
                };
            }
            if let Some(reason) = tls_cause(io) {
                return Error::Tls {
                    server: origin.to_string(),
                    reason,
                };
            }
            return Error::Connect {
                server: origin.to_string(),
                reason: format!("connection lost: {}", describe_io(io)),
            };
        }
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Error::Tls {
                server: origin.to_string(),
                reason: tls::describe_tls_error(tls),
            };
        }
        if let Some(h) = cause.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
                return Error::Connect {
                    server: origin.to_string(),
                    reason: "connection closed before the answer was complete".into(),
                };
            }
            if h.is_parse() || h.is_parse_status() {
                return Error::Protocol {
                    server: origin.to_string(),
                    reason: format!("invalid HTTP answer: {h}"),
                };
            }
        }
    }
    Error::Protocol {
        server: origin.to_string(),
        reason: e.to_string(),
    }
}

/// Percent-encodes one path segment (user names, token ids, client ids) so that `/`, `?`, `%`
/// and spaces in a name cannot change the route. Unreserved characters (RFC 3986 §2.3) stay.
/// The rule lives with the route table (`latchkey_proto::routes`), whose builders use it.
pub fn encode_path_segment(segment: &str) -> String {
    latchkey_proto::routes::encode_path_segment(segment)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_path_segment("bob"), "bob");
        assert_eq!(encode_path_segment("a b/c?d%é"), "a%20b%2Fc%3Fd%25%C3%A9");
        assert_eq!(encode_path_segment("ok-._~"), "ok-._~");
        // A segment of dots would be resolved away (`/users/..` is `/`), so it is encoded.
        assert_eq!(encode_path_segment(".."), "%2E%2E");
    }

    #[test]
    fn api_error_body_is_decoded_or_summarised() {
        let e = api_error(
            StatusCode::NOT_FOUND,
            br#"{"error":"not_found","message":"user \"bob\" not found"}"#,
        );
        assert_eq!(
            e.to_string(),
            r#"server said: user "bob" not found (not_found)"#
        );
        let e = api_error(StatusCode::BAD_GATEWAY, b"<html>\nbad gateway</html>");
        assert!(e.is_unreachable());
        assert_eq!(e.api_code(), Some("http_502"));
        assert!(e.to_string().contains("HTTP 502 Bad Gateway"), "{e}");
    }

    #[test]
    fn https_without_trust_is_a_config_error() {
        let e = Client::new(ClientConfig::parse("https://127.0.0.1:1").unwrap()).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e}");
        assert!(Client::new(ClientConfig::parse("http://127.0.0.1:1").unwrap()).is_ok());
        assert!(Client::new(ClientConfig::parse("ftp://127.0.0.1:1").unwrap()).is_err());
    }
}
