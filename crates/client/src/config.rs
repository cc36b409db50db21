//! What a [`Client`](crate::Client) needs to know: where the server is, how to trust it, how to
//! prove who we are, and how long to wait.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

use crate::error::{Error, Result};

/// Default bound on TCP connect + proxy tunnel + TLS handshake. Short on purpose: a machine
/// that cannot reach its server must switch to the offline flow quickly, not make the person
/// at the login screen wait.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Default bound on a whole request (connect, send, answer head and body).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How the server's TLS certificate is trusted. There is deliberately no "system roots" option:
/// a latchkey server is found through an explicit CA file or pin, never through the public PKI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// PEM bundle of trusted certificates. Chains are verified by webpki (name, dates, usage).
    /// A certificate in the bundle that is byte-for-byte the server's certificate is also
    /// accepted, so the server's own self-signed `tls.crt` works as a CA file.
    WebPkiCaFile(PathBuf),
    /// `sha256:HEX` of the server certificate's DER. Any certificate with that hash is
    /// accepted (no name or date checks); the handshake signature is still verified.
    Pin(String),
}

/// How the client proves who it is.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credential {
    #[default]
    None,
    /// Sent as `Authorization: Bearer …` (admin token or machine API key).
    Bearer(String),
    /// TLS client authentication with a PEM certificate chain and its PEM private key.
    ClientCert { cert_pem: PathBuf, key_pem: PathBuf },
}

// Hand-written so a bearer token never reaches a log line through `{:?}`.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::None => f.write_str("None"),
            Credential::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credential::ClientCert { cert_pem, key_pem } => f
                .debug_struct("ClientCert")
                .field("cert_pem", cert_pem)
                .field("key_pem", key_pem)
                .finish(),
        }
    }
}

/// Configuration of one [`Client`](crate::Client).
///
/// Plain public fields; [`ClientConfig::new`] fills the defaults and the `with_*` methods
/// chain for the common cases.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://host:port[/prefix]` or `http://…`. Request paths are appended to it.
    pub base_url: Url,
    /// Required for `https://` servers; ignored for `http://`.
    pub trust: Option<Trust>,
    pub credential: Credential,
    /// Bound on TCP connect + proxy tunnel + TLS handshake.
    pub connect_timeout: Duration,
    /// Bound on a whole request, connection set-up included.
    pub request_timeout: Duration,
    /// `http://[user:pass@]host:port` proxy. `https://` targets go through an HTTP CONNECT
    /// tunnel; `http://` targets are forwarded in absolute form.
    pub proxy: Option<Url>,
}

impl ClientConfig {
    pub fn new(base_url: Url) -> Self {
        ClientConfig {
            base_url,
            trust: None,
            credential: Credential::None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            proxy: None,
        }
    }

    /// Same as [`ClientConfig::new`] from a string, with a clear error for a bad URL.
    pub fn parse(base_url: &str) -> Result<Self> {
        let url = Url::parse(base_url)
            .map_err(|e| Error::Config(format!("invalid server URL {base_url:?}: {e}")))?;
        Ok(Self::new(url))
    }

    pub fn with_trust(mut self, trust: Trust) -> Self {
        self.trust = Some(trust);
        self
    }

    pub fn with_credential(mut self, credential: Credential) -> Self {
        self.credential = credential;
        self
    }

    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn with_proxy(mut self, proxy: Url) -> Self {
        self.proxy = Some(proxy);
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_bearer_credential_hides_the_token() {
        let c = Credential::Bearer("s3cr3t-token".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let cfg = ClientConfig::parse("https://a.example:1")
            .unwrap()
            .with_credential(c);
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
    }
}
