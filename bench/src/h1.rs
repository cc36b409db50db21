//! The load generator's lean HTTP/1.1 client: one keep-alive TLS connection per worker,
//! owned by the worker (no pool, no connection task), each request written in one go and
//! each answer read by its `Content-Length`.
//!
//! Why not the agents' client (`latchkey_client::Client`, still there with `--client
//! agent`): the bench shares the server's two vCPUs, and that client's pool, connection
//! tasks and cross-task wake-ups cost ~0.1 ms per verification. Every CPU millisecond the
//! load generator spends is one the server under test does not get. The server sees the
//! same bytes either way: HTTPS, HTTP/1.1 keep-alive, a bearer key, JSON.

use anyhow::{Context, Result, anyhow, bail};
use latchkey_client::{Credential, Trust, Url};
use rustls::pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Largest answer head or body accepted (the login API's answers are a few hundred bytes).
const MAX_ANSWER: usize = 1 << 20;

/// Where and how to connect: shared by every worker's connection.
pub struct H1Config {
    connector: TlsConnector,
    addr: SocketAddr,
    server_name: ServerName<'static>,
    host: String,
    authorization: String,
    timeout: Duration,
}

impl H1Config {
    /// `url` must be `https://IP:PORT` (the bench talks to a loopback or LAN address), the
    /// server certificate is checked against `pin`, requests carry `api_key` as a bearer key.
    pub fn new(url: &str, pin: &str, api_key: &str, timeout: Duration) -> Result<H1Config> {
        let u = Url::parse(url).with_context(|| format!("bad server URL {url:?}"))?;
        if u.scheme() != "https" {
            bail!("the lean client speaks HTTPS only (got {url}); use --client agent");
        }
        let host = u.host_str().context("server URL has no host")?;
        let ip: std::net::IpAddr = host
            .trim_matches(|c| c == '[' || c == ']')
            .parse()
            .with_context(|| format!("server URL host {host:?} is not an IP address"))?;
        let port = u.port_or_known_default().unwrap_or(443);
        let tls =
            latchkey_client::tls_client_config(&Trust::Pin(pin.to_string()), &Credential::None)?;
        Ok(H1Config {
            connector: TlsConnector::from(tls),
            addr: SocketAddr::new(ip, port),
            server_name: ServerName::IpAddress(ip.into()),
            host: match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            },
            authorization: format!("Bearer {api_key}"),
            timeout,
        })
    }
}

/// One worker's connection, opened on first use and again after any error.
pub struct H1Conn {
    cfg: Arc<H1Config>,
    stream: Option<TlsStream<TcpStream>>,
    request: Vec<u8>,
    answer: Vec<u8>,
}

/// The parts of an answer's head the client needs.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    /// Bytes of the head, blank line included.
    len: usize,
    content_length: usize,
    close: bool,
}

impl H1Conn {
    pub fn new(cfg: Arc<H1Config>) -> H1Conn {
        H1Conn {
            cfg,
            stream: None,
            request: Vec::with_capacity(512),
            answer: Vec::with_capacity(4096),
        }
    }

    /// `POST path` with `body` as JSON; the 2xx answer's JSON body as `T`. Any error closes
    /// the connection (the next request opens a new one).
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &mut self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let timeout = self.cfg.timeout;
        let result = match tokio::time::timeout(timeout, self.exchange(path, body)).await {
            Ok(r) => r,
            Err(_) => Err(anyhow!("no answer to POST {path} within {timeout:?}")),
        };
        let (head, keep) = match result {
            Ok(x) => x,
            Err(e) => {
                self.stream = None;
                return Err(e);
            }
        };
        let body = &self.answer[head.len..head.len + head.content_length];
        let out = if (200..300).contains(&head.status) {
            serde_json::from_slice(body)
                .with_context(|| format!("POST {path}: answer is not the expected JSON"))
        } else {
            Err(anyhow!(
                "POST {path}: HTTP {}: {}",
                head.status,
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))
        };
        self.answer.drain(..head.len + head.content_length);
        if !keep || !self.answer.is_empty() {
            // The server closes, or sent more than one answer: start clean.
            self.stream = None;
            self.answer.clear();
        }
        out
    }

    async fn exchange<B: Serialize>(&mut self, path: &str, body: &B) -> Result<(Head, bool)> {
        if self.stream.is_none() {
            let tcp = TcpStream::connect(self.cfg.addr)
                .await
                .with_context(|| format!("cannot connect to {}", self.cfg.addr))?;
            tcp.set_nodelay(true)?;
            let tls = self
                .cfg
                .connector
                .connect(self.cfg.server_name.clone(), tcp)
                .await
                .context("TLS handshake failed")?;
            self.stream = Some(tls);
            self.answer.clear();
        }
        let json = serde_json::to_vec(body)?;
        self.request.clear();
        self.request.extend_from_slice(
            format!(
                "POST {path} HTTP/1.1\r\nhost: {}\r\nauthorization: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                self.cfg.host,
                self.cfg.authorization,
                json.len()
            )
            .as_bytes(),
        );
        self.request.extend_from_slice(&json);
        let stream = self.stream.as_mut().context("no connection")?;
        stream.write_all(&self.request).await?;
        stream.flush().await?;
        let head = loop {
            if let Some(head) = parse_head(&self.answer)? {
                break head;
            }
            read_more(stream, &mut self.answer).await?;
        };
        if head.content_length > MAX_ANSWER {
            bail!("answer body of {} bytes is too large", head.content_length);
        }
        while self.answer.len() < head.len + head.content_length {
            read_more(stream, &mut self.answer).await?;
        }
        let keep = !head.close;
        Ok((head, keep))
    }
}

async fn read_more(stream: &mut TlsStream<TcpStream>, buf: &mut Vec<u8>) -> Result<()> {
    if buf.len() > 2 * MAX_ANSWER {
        bail!("answer too large");
    }
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        bail!("the server closed the connection");
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// The answer's head when `buf` holds all of it, `None` while more is needed. Only what
/// latchkeyd sends is accepted: a `Content-Length`, no chunked body.
fn parse_head(buf: &[u8]) -> Result<Option<Head>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_ANSWER {
            bail!("answer head too large");
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).context("answer head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1 answer: {status_line:?}");
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut content_length = None;
    let mut close = version == "HTTP/1.0";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            bail!("bad header line {line:?}");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse::<usize>().context("bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!(
                "chunked answers are not supported by the lean client (Transfer-Encoding: {value})"
            );
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(Some(Head {
        status,
        len: end + 4,
        content_length: content_length.context("answer has no Content-Length")?,
        close,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_only_when_complete() {
        let full =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_head(&full[..20]).unwrap(), None);
        let head = parse_head(full).unwrap().unwrap();
        assert_eq!(
            head,
            Head {
                status: 200,
                len: full.len() - 2,
                content_length: 2,
                close: false
            }
        );
        let closing =
            b"HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        let head = parse_head(closing).unwrap().unwrap();
        assert_eq!((head.status, head.close), (429, true));
    }

    #[test]
    fn answers_the_client_cannot_read_are_errors() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 abc OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
