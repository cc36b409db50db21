//! The connector handed to hyper-util's pooled client: TCP (direct or through an HTTP proxy),
//! then TLS for `https://` targets, all under the connect timeout.

use hyper::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{describe_io, is_local_resource};
use crate::proxy::{self, Proxy};
use crate::tls::describe_tls_error;

/// Why a connection could not be made. Carried through hyper-util's error and turned into the
/// public [`crate::Error`] by the client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("cannot reach {server}: {reason}")]
    Unreachable { server: String, reason: String },
    /// This machine ran out of descriptors or memory before anything reached the network.
    #[error("this machine could not open a connection to {server}: {reason}")]
    Local { server: String, reason: String },
    #[error("{server}: connection not made within {after:?}")]
    Timeout { server: String, after: Duration },
    #[error("TLS with {server} failed: {reason}")]
    Tls { server: String, reason: String },
    #[error("bad request URI {0}")]
    BadUri(String),
}

#[derive(Clone)]
pub(crate) struct Connector {
    inner: Arc<ConnectorInner>,
}

struct ConnectorInner {
    /// `None` when no trust is configured: only `http://` targets can be reached.
    tls: Option<TlsConnector>,
    proxy: Option<Proxy>,
    connect_timeout: Duration,
}

impl Connector {
    pub(crate) fn new(
        tls: Option<Arc<rustls::ClientConfig>>,
        proxy: Option<Proxy>,
        connect_timeout: Duration,
    ) -> Self {
        Connector {
            inner: Arc::new(ConnectorInner {
                tls: tls.map(TlsConnector::from),
                proxy,
                connect_timeout,
            }),
        }
    }
}

/// `scheme://host:port` of a request target, for error messages.
pub(crate) fn origin_of(uri: &Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(s), Some(a)) => format!("{s}://{a}"),
        _ => uri.to_string(),
    }
}

struct Target {
    https: bool,
    /// Host without IPv6 brackets (for DNS and SNI).
    host: String,
    port: u16,
    origin: String,
}

impl Target {
    fn from_uri(uri: &Uri) -> Result<Self, ConnectError> {
        let bad = || ConnectError::BadUri(uri.to_string());
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad()),
        };
        let host = uri.host().ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Target {
            https,
            host,
            port,
            origin: origin_of(uri),
        })
    }
}

impl tower::Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let target = Target::from_uri(&uri)?;
            let after = inner.connect_timeout;
            match tokio::time::timeout(after, inner.connect(&target)).await {
                Ok(result) => result,
                Err(_) => Err(ConnectError::Timeout {
                    server: target.origin,
                    after,
                }),
            }
        })
    }
}

impl ConnectorInner {
    async fn connect(&self, target: &Target) -> Result<Conn, ConnectError> {
        let unreachable = |reason: String| ConnectError::Unreachable {
            server: target.origin.clone(),
            reason,
        };
        let failed = |f: TcpFail, prefix: String| match f {
            TcpFail::Local(reason) => ConnectError::Local {
                server: target.origin.clone(),
                reason: format!("{prefix}{reason}"),
            },
            TcpFail::Remote(reason) => ConnectError::Unreachable {
                server: target.origin.clone(),
                reason: format!("{prefix}{reason}"),
            },
        };
        let (tcp, forwarded) = match &self.proxy {
            None => (
                tcp_connect(&target.host, target.port)
                    .await
                    .map_err(|f| failed(f, String::new()))?,
                false,
            ),
            Some(p) => {
                let tcp = tcp_connect(&p.host, p.port)
                    .await
                    .map_err(|f| failed(f, format!("proxy {}: ", p.display)))?;
                if target.https {
                    (
                        proxy::connect_tunnel(tcp, p, &target.host, target.port)
                            .await
                            .map_err(unreachable)?,
                        false,
                    )
                } else {
                    // Plain HTTP goes to the proxy in absolute form (hyper-util rewrites the
                    // request URI when the connection says it is proxied).
                    (tcp, true)
                }
            }
        };
        if !target.https {
            return Ok(Conn {
                io: TokioIo::new(Stream::Plain(tcp)),
                proxied: forwarded,
            });
        }
        let tls = self.tls.as_ref().ok_or_else(|| ConnectError::Tls {
            server: target.origin.clone(),
            reason: "no CA file or pin configured to trust an https:// server".into(),
        })?;
        let name = rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|e| {
            ConnectError::Tls {
                server: target.origin.clone(),
                reason: format!("invalid server name {:?}: {e}", target.host),
            }
        })?;
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| match tls_cause(&e) {
                Some(reason) => ConnectError::Tls {
                    server: target.origin.clone(),
                    reason,
                },
                // A plain socket error during the handshake (reset, EOF): the peer is not a
                // working TLS server for us, which is a TLS failure from the caller's view.
                None => ConnectError::Tls {
                    server: target.origin.clone(),
                    reason: format!("handshake failed: {}", describe_io(&e)),
                },
            })?;
        Ok(Conn {
            io: TokioIo::new(Stream::Tls(Box::new(stream))),
            proxied: false,
        })
    }
}

/// The rustls error inside an I/O error from tokio-rustls, described for people.
pub(crate) fn tls_cause(e: &io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(describe_tls_error)
}

/// Why no TCP connection was made: the machine itself (descriptors, memory) or the network.
enum TcpFail {
    Local(String),
    Remote(String),
}

/// Resolves `host` and connects to the first address that accepts, with TCP_NODELAY (requests
/// are small and latency matters more than packet count). A local resource error stops at
/// once: the next address would fail the same way, and it must not read as "unreachable".
async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, TcpFail> {
    let addrs: Vec<_> = match tokio::net::lookup_host((host, port)).await {
        Ok(a) => a.collect(),
        Err(e) if is_local_resource(&e) => {
            return Err(TcpFail::Local(format!(
                "cannot resolve {host}: {}",
                describe_io(&e)
            )));
        }
        Err(e) => return Err(TcpFail::Remote(format!("cannot resolve {host}: {e}"))),
    };
    let mut last = format!("no address found for {host}");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                // Not fatal: the connection works without it, only slower.
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!("TCP_NODELAY on {addr}: {e}");
                }
                return Ok(tcp);
            }
            Err(e) if is_local_resource(&e) => return Err(TcpFail::Local(describe_io(&e))),
            Err(e) => last = describe_io(&e),
        }
    }
    Err(TcpFail::Remote(last))
}

pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

// Both variants are Unpin, so the enum can be projected with `get_mut` and no unsafe code.
impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One established connection, as hyper sees it.
pub(crate) struct Conn {
    io: TokioIo<Stream>,
    /// Plain HTTP through a forwarding proxy: requests must use absolute-form URIs.
    proxied: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new().proxy(self.proxied)
    }
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
