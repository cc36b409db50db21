//! HTTPS client for the latchkey server API.
//!
//! One [`Client`] holds a keep-alive connection pool (hyper-util) over TCP, an optional HTTP
//! proxy (CONNECT tunnel for `https://`) and rustls with the ring provider. The server is
//! trusted through a CA file or a `sha256:` pin ([`Trust`]); the client proves itself with a
//! bearer token or a TLS client certificate ([`Credential`]).
//!
//! Failures are typed: [`Error::is_unreachable`] says whether the server should be treated as
//! down (connect, timeout, TLS, 5xx) — the one place the agent's online/offline decision and a
//! future server list's fail-over read from.

mod client;
mod config;
mod connect;
mod error;
mod proxy;
mod tls;

pub use client::{Client, encode_path_segment};
pub use config::{
    ClientConfig, Credential, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, Trust,
};
pub use error::{Error, Result};
pub use tls::cert_sha256_pin;

/// Re-exported so callers need no direct `hyper`/`url` dependency for the common types.
pub use hyper::body::Bytes;
pub use hyper::{Method, StatusCode};
pub use url::Url;
