//! HTTP proxy support: the CONNECT tunnel (RFC 9110 §9.3.6) for `https://` targets.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

use crate::error::{Error, Result, describe_io};

/// Largest proxy answer head we read before giving up.
const MAX_HEAD: usize = 8 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct Proxy {
    pub host: String,
    pub port: u16,
    /// `Basic …` value for `Proxy-Authorization` when the proxy URL has credentials.
    pub authorization: Option<String>,
    /// The proxy URL without credentials, for messages.
    pub display: String,
}

impl Proxy {
    pub(crate) fn from_url(url: &Url) -> Result<Self> {
        if url.scheme() != "http" {
            return Err(Error::Config(format!(
                "proxy {url}: only http:// proxies are supported"
            )));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(Error::Config(format!("proxy {url}: no host"))),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let authorization = if url.username().is_empty() {
            None
        } else {
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            let user = decode(url.username());
            let pass = decode(url.password().unwrap_or(""));
            Some(format!(
                "Basic {}",
                data_encoding::BASE64.encode(format!("{user}:{pass}").as_bytes())
            ))
        };
        let mut display = url.clone();
        // Both setters only fail for URLs that cannot have credentials, which is not the case
        // for an http:// URL with a host; nothing to report then.
        let _ = display.set_username("");
        let _ = display.set_password(None);
        Ok(Proxy {
            host,
            port,
            authorization,
            display: display.as_str().trim_end_matches('/').to_string(),
        })
    }
}

/// Asks the proxy for a tunnel to `host:port` and returns the stream once it answered 200.
/// Nothing is read past the answer head: the server speaks only after our TLS ClientHello.
pub(crate) async fn connect_tunnel(
    mut tcp: TcpStream,
    proxy: &Proxy,
    host: &str,
    port: u16,
) -> std::result::Result<TcpStream, String> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = &proxy.authorization {
        head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    let p = &proxy.display;
    tcp.write_all(head.as_bytes())
        .await
        .map_err(|e| format!("proxy {p}: {}", describe_io(&e)))?;

    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let end = loop {
        let n = tcp
            .read(&mut chunk)
            .await
            .map_err(|e| format!("proxy {p}: {}", describe_io(&e)))?;
        if n == 0 {
            return Err(format!("proxy {p} closed the connection during CONNECT"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(format!("proxy {p} sent an oversized answer to CONNECT"));
        }
    };
    if end != buf.len() {
        return Err(format!("proxy {p} sent data after its CONNECT answer"));
    }
    let status_line = buf
        .split(|b| *b == b'\r')
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("proxy {p} did not answer CONNECT with HTTP"));
    }
    if code != "200" {
        return Err(format!(
            "proxy {p} refused the tunnel to {authority}: {}",
            status_line.trim()
        ));
    }
    Ok(tcp)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn proxy_url_credentials_become_basic_auth_and_are_not_displayed() {
        let p = Proxy::from_url(&Url::parse("http://al%20ice:p%40ss@proxy.example:3128").unwrap())
            .unwrap();
        assert_eq!(p.host, "proxy.example");
        assert_eq!(p.port, 3128);
        assert_eq!(
            p.authorization.as_deref(),
            Some(format!("Basic {}", data_encoding::BASE64.encode(b"al ice:p@ss")).as_str())
        );
        assert_eq!(p.display, "http://proxy.example:3128");
    }

    #[test]
    fn only_http_proxies_are_accepted() {
        assert!(Proxy::from_url(&Url::parse("socks5://p:1080").unwrap()).is_err());
        let p = Proxy::from_url(&Url::parse("http://[::1]").unwrap()).unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 80));
    }
}
