//! HTTPS client for the latchkey server API.
//!
//! One [`Client`] holds a keep-alive connection pool (hyper-util) over TCP, an optional HTTP
//! proxy (CONNECT tunnel for `https://`) and rustls with the ring provider. The server is
//! trusted through a CA file or a `sha256:` pin ([`Trust`]); the client proves itself with a
//! bearer token or a TLS client certificate ([`Credential`]).
//!
//! Failures are typed: [`Error::is_unreachable`] says whether the server should be treated as
//! down (connect, timeout, TLS, 5xx) — the one place the agent's online/offline decision and
//! the [`ServerList`]'s fail-over read from.
//!
//! A [`ServerList`] puts several servers behind one client: `ordered`, `balanced` or
//! `consistent` selection ([`Selection`]), fail-over, and a circuit breaker per server
//! ([`BreakerConfig`]) so a machine that lost its servers does not wait on every login.

mod breaker;
mod client;
mod config;
mod connect;
mod error;
mod proxy;
mod servers;
mod tls;

pub use breaker::{
    BreakerConfig, CircuitState, Clock, DEFAULT_BREAKER_BASE, DEFAULT_BREAKER_MAX, ManualClock,
    SystemClock,
};
pub use client::{Client, encode_path_segment};
pub use config::{
    ClientConfig, Credential, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, Trust,
};
pub use error::{Error, Result};
pub use servers::{Answer, Dated, Selection, ServerList, ServerListConfig, parse_server_urls};
pub use tls::{cert_sha256_pin, client_config as tls_client_config, normalize_pin};

/// Re-exported so callers need no direct `hyper`/`url` dependency for the common types.
pub use hyper::body::Bytes;
pub use hyper::{Method, StatusCode};
pub use url::Url;
