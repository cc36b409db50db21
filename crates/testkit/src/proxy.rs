//! A small HTTP CONNECT proxy on loopback that counts the tunnels it opened.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct ConnectProxy {
    pub url: String,
    tunnels: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectProxy {
    pub async fn start() -> anyhow::Result<ConnectProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let tunnels = Arc::new(AtomicUsize::new(0));
        let counter = tunnels.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = tunnel(client, counter).await;
                });
            }
        });
        Ok(ConnectProxy { url, tunnels, task })
    }

    pub fn tunnels(&self) -> usize {
        self.tunnels.load(Ordering::SeqCst)
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tunnel(mut client: TcpStream, counter: Arc<AtomicUsize>) -> anyhow::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        anyhow::ensure!(head.len() < 8192, "request head too long");
        client.read_exact(&mut byte).await?;
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.split_whitespace();
    anyhow::ensure!(parts.next() == Some("CONNECT"), "not a CONNECT request");
    let target = parts.next().unwrap_or_default().to_string();
    anyhow::ensure!(
        target.starts_with("127.0.0.1:") || target.starts_with("localhost:"),
        "loopback only"
    );
    let mut upstream = TcpStream::connect(&target).await?;
    counter.fetch_add(1, Ordering::SeqCst);
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// A TCP listener that accepts connections and never says anything: a server that hangs
/// (its TLS handshake never completes), the costly kind of unreachable.
pub struct Blackhole {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Blackhole {
    pub async fn start() -> anyhow::Result<Blackhole> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        Ok(Blackhole { url, task })
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a [`HoldProxy`] does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldMode {
    /// Forward both ways.
    Pass,
    /// Accept and close at once: the server looks down.
    Refuse,
    /// Forward requests to the server but hold its answers until the mode changes: the
    /// server has done the work, the client has not heard back. Only on connections whose
    /// client sent more than [`HOLD_AFTER`] bytes (a TLS handshake passes; an upload of
    /// events is held).
    Hold,
}

/// Client bytes after which [`HoldMode::Hold`] holds a connection's answers.
pub const HOLD_AFTER: usize = 4096;

/// A TCP forwarder to one loopback address (TLS passes through untouched) whose mode a test
/// switches at will.
pub struct HoldProxy {
    pub url: String,
    mode: tokio::sync::watch::Sender<HoldMode>,
    held_bytes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HoldProxy {
    /// Forwards to `target` (`host:port`); `scheme` is that of the server (`https`).
    pub async fn start(target: std::net::SocketAddr, scheme: &str) -> anyhow::Result<HoldProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("{scheme}://{}", listener.local_addr()?);
        let (mode, rx) = tokio::sync::watch::channel(HoldMode::Pass);
        let held_bytes = Arc::new(AtomicUsize::new(0));
        let held = held_bytes.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *rx.borrow() == HoldMode::Refuse {
                    drop(client);
                    continue;
                }
                let rx = rx.clone();
                let held = held.clone();
                tokio::spawn(async move {
                    let _ = forward(client, target, rx, held).await;
                });
            }
        });
        Ok(HoldProxy {
            url,
            mode,
            held_bytes,
            task,
        })
    }

    pub fn set(&self, mode: HoldMode) {
        let _ = self.mode.send(mode);
    }

    /// Bytes of server answers held back so far.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes.load(Ordering::SeqCst)
    }
}

impl Drop for HoldProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    client: TcpStream,
    target: std::net::SocketAddr,
    mut mode: tokio::sync::watch::Receiver<HoldMode>,
    held: Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    let server = TcpStream::connect(target).await?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let sent = Arc::new(AtomicUsize::new(0));
    let sent_up = sent.clone();
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            sent_up.fetch_add(n, Ordering::SeqCst);
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut counted = false;
            loop {
                let m = *mode.borrow_and_update();
                match m {
                    HoldMode::Hold if sent.load(Ordering::SeqCst) > HOLD_AFTER => {
                        if !counted {
                            held.fetch_add(n, Ordering::SeqCst);
                            counted = true;
                        }
                        if mode.changed().await.is_err() {
                            return;
                        }
                    }
                    HoldMode::Refuse => return,
                    HoldMode::Pass | HoldMode::Hold => break,
                }
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
    Ok(())
}
