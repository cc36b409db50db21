//! A list of latchkey servers behind one [`Client`]: a selection policy, fail-over, and a
//! circuit breaker per server (see [`crate::BreakerConfig`]).
//!
//! All servers share one connection pool, TLS trust, credential, proxy and timeouts
//! ([`Client::request_to`]); the agent is configured with one trust setting for its servers.
//!
//! # Choices
//! - **What fails over.** Only [`Error::is_unreachable`]: no connection, timeout, TLS failure,
//!   5xx. A definite answer — 2xx, or a 4xx such as "code rejected" — is returned at once and
//!   never repeated on another server: that would turn one wrong code into two attempts, and a
//!   4xx proves the server is up. A request timeout fails over too, so a request whose answer
//!   was lost can reach a second server; the server API must tolerate that for its POSTs.
//! - **All circuits open: fail at once.** When every server is in its back-off, the call returns
//!   [`Error::AllUnreachable`] without touching the network, rather than trying the server whose
//!   back-off ends soonest. A roaming laptop with no route to any server would otherwise pay a
//!   connect timeout on every login; this way the agent goes straight to its offline decision.
//!   Recovery is still noticed without a background prober: a server whose back-off has run out
//!   is *half-open* and the next call sends it one trial request.
//! - **One trial at a time.** While a half-open server's trial is in flight, concurrent calls
//!   skip it (and may fail at once if nothing else is left): a still-dead server delays one
//!   login, not all of them. A trial that is cancelled or ends without a verdict is released.
//! - **`balanced`** rotates the start over the servers whose circuit is not open, so with one of
//!   three down the other two get half each, not one of them two thirds.
//! - **`consistent`** picks the first server with FNV-1a (64-bit) of the user name's bytes
//!   modulo the number of servers; the rest follow in list order, wrapping. Not std's
//!   `DefaultHasher`, whose keys are random per process: every agent, across restarts, must
//!   send a user to the same server. Calls without a user name start at the first server.

use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use latchkey_proto::agent::ServerStatus;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use url::Url;

use crate::breaker::{Admit, Breaker, BreakerConfig, Clock, SystemClock};
use crate::client::{Client, check_server_url, decode_json, encode_json};
use crate::config::ClientConfig;
use crate::error::{Error, Result};

/// Which server a call goes to first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// Always the first server that is up, in list order.
    #[default]
    Ordered,
    /// Round-robin over the servers that are up.
    Balanced,
    /// A hash of the user name picks the first server; the rest follow in list order.
    Consistent,
}

impl Selection {
    pub fn as_str(self) -> &'static str {
        match self {
            Selection::Ordered => "ordered",
            Selection::Balanced => "balanced",
            Selection::Consistent => "consistent",
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Selection {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ordered" => Ok(Selection::Ordered),
            "balanced" => Ok(Selection::Balanced),
            "consistent" => Ok(Selection::Consistent),
            _ => Err(Error::Config(format!(
                "unknown server selection {s:?}: expected ordered, balanced or consistent"
            ))),
        }
    }
}

/// Parses `--server URL[,URL…]`: comma-separated, blanks ignored.
pub fn parse_server_urls(list: &str) -> Result<Vec<Url>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_url)
        .collect()
}

fn parse_url(s: &str) -> Result<Url> {
    Url::parse(s).map_err(|e| Error::Config(format!("invalid server URL {s:?}: {e}")))
}

/// Configuration of a [`ServerList`].
#[derive(Debug, Clone)]
pub struct ServerListConfig {
    /// At least one; no duplicates.
    pub servers: Vec<Url>,
    pub selection: Selection,
    pub breaker: BreakerConfig,
    /// Trust, credential, timeouts and proxy shared by every server. Its `base_url` is
    /// replaced by the first server.
    pub client: ClientConfig,
}

impl ServerListConfig {
    /// `ordered` selection and the default back-off (30 s doubling to 5 min).
    pub fn new(servers: Vec<Url>, client: ClientConfig) -> Self {
        ServerListConfig {
            servers,
            selection: Selection::default(),
            breaker: BreakerConfig::default(),
            client,
        }
    }

    pub fn with_selection(mut self, selection: Selection) -> Self {
        self.selection = selection;
        self
    }

    pub fn with_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }
}

/// A raw answer and the server that gave it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The server's base URL as configured, without trailing `/`.
    pub server: String,
    pub status: StatusCode,
    pub body: Bytes,
    /// The server's time from its `Date` header (Unix seconds), when it sent one.
    pub date: Option<i64>,
}

/// A decoded answer with the server's time (see [`ServerList::call_dated`]).
#[derive(Debug, Clone)]
pub struct Dated<T> {
    pub value: T,
    /// Unix seconds from the answer's `Date` header.
    pub server_time: Option<i64>,
}

/// The agent's servers. Cheap to clone (clones share the pool and the circuit states);
/// thread-safe; starts no background task.
#[derive(Clone)]
pub struct ServerList {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    servers: Vec<Server>,
    selection: Selection,
    breaker: BreakerConfig,
    clock: Arc<dyn Clock>,
    /// Round-robin position for `balanced`.
    next: AtomicUsize,
}

struct Server {
    /// Base URL without trailing `/`.
    url: String,
    breaker: Mutex<Breaker>,
}

impl Server {
    fn breaker(&self) -> MutexGuard<'_, Breaker> {
        // The critical sections only assign fields; a poisoned lock still holds a usable state.
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for ServerList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerList")
            .field("servers", &self.urls())
            .field("selection", &self.inner.selection)
            .field("breaker", &self.inner.breaker)
            .finish_non_exhaustive()
    }
}

impl ServerList {
    /// `servers` are base URLs (at least one, no duplicates); `client` holds the trust,
    /// credential, timeouts and proxy they share. Checks the configuration and loads the trust
    /// material once; no network traffic.
    pub fn new<S: AsRef<str>>(
        servers: &[S],
        selection: Selection,
        breaker: BreakerConfig,
        client: ClientConfig,
    ) -> Result<ServerList> {
        let servers = servers
            .iter()
            .map(|s| parse_url(s.as_ref().trim()))
            .collect::<Result<Vec<_>>>()?;
        Self::from_config(ServerListConfig {
            servers,
            selection,
            breaker,
            client,
        })
    }

    /// Like [`ServerList::new`] from a [`ServerListConfig`].
    pub fn from_config(cfg: ServerListConfig) -> Result<ServerList> {
        Self::with_clock(cfg, Arc::new(SystemClock))
    }

    /// Like [`ServerList::from_config`] with another clock (tests use
    /// [`crate::ManualClock`]).
    pub fn with_clock(cfg: ServerListConfig, clock: Arc<dyn Clock>) -> Result<ServerList> {
        let ServerListConfig {
            servers,
            selection,
            breaker,
            mut client,
        } = cfg;
        let Some(first) = servers.first() else {
            return Err(Error::Config("no server given".into()));
        };
        if breaker.base.is_zero() || breaker.max < breaker.base {
            return Err(Error::Config(format!(
                "circuit breaker back-off must be positive and its maximum ({:?}) at least its \
                 base ({:?})",
                breaker.max, breaker.base
            )));
        }
        let mut list: Vec<Server> = Vec::with_capacity(servers.len());
        for url in &servers {
            check_server_url(url)?;
            if url.scheme() == "https" && client.trust.is_none() {
                return Err(Error::Config(format!(
                    "no way to trust {url}: give a CA file or a pin"
                )));
            }
            let base = url.as_str().trim_end_matches('/').to_string();
            if list.iter().any(|s| s.url == base) {
                return Err(Error::Config(format!("server {base} is listed twice")));
            }
            list.push(Server {
                url: base,
                breaker: Mutex::new(Breaker::default()),
            });
        }
        client.base_url = first.clone();
        Ok(ServerList {
            inner: Arc::new(Inner {
                client: Client::new(client)?,
                servers: list,
                selection,
                breaker,
                clock,
                next: AtomicUsize::new(0),
            }),
        })
    }

    pub fn selection(&self) -> Selection {
        self.inner.selection
    }

    /// The servers' base URLs in configured order, without trailing `/`.
    pub fn urls(&self) -> Vec<&str> {
        self.inner.servers.iter().map(|s| s.url.as_str()).collect()
    }

    /// The shared client (pool, trust, credential). Requests made with it directly bypass the
    /// selection and the circuit breaker.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// `method path` with an optional JSON body on the first server that answers, the JSON
    /// answer decoded. `user` is the user the call is about: it picks the first server under
    /// `consistent` and is ignored otherwise.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        user: Option<&str>,
    ) -> Result<T> {
        let body = body.as_ref().map(encode_json).transpose()?;
        let answer = self.send(method, path, body, user).await?;
        decode_json(&answer.server, &answer.body)
    }

    /// Like [`ServerList::call`], with the answering server's time: over a pinned or
    /// CA-checked connection it is the server's word, which the agent's clock guard trusts.
    pub async fn call_dated<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        user: Option<&str>,
    ) -> Result<Dated<T>> {
        let body = body.as_ref().map(encode_json).transpose()?;
        let answer = self.send(method, path, body, user).await?;
        Ok(Dated {
            value: decode_json(&answer.server, &answer.body)?,
            server_time: answer.date,
        })
    }

    /// `GET path`, JSON answer decoded.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, user: Option<&str>) -> Result<T> {
        let answer = self.send(Method::GET, path, None, user).await?;
        decode_json(&answer.server, &answer.body)
    }

    /// `POST path` with a JSON body, JSON answer decoded.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        user: Option<&str>,
    ) -> Result<T> {
        let answer = self
            .send(Method::POST, path, Some(encode_json(body)?), user)
            .await?;
        decode_json(&answer.server, &answer.body)
    }

    /// Like [`ServerList::call`] without decoding; says which server answered.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        user: Option<&str>,
    ) -> Result<Answer> {
        let body = body.as_ref().map(encode_json).transpose()?;
        self.send(method, path, body, user).await
    }

    /// Each server's circuit, for the agent's `status` command.
    pub fn status(&self) -> Vec<ServerStatus> {
        let now = self.inner.clock.now();
        self.inner
            .servers
            .iter()
            .map(|s| s.breaker().status(&s.url, now))
            .collect()
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        user: Option<&str>,
    ) -> Result<Answer> {
        let inner = &*self.inner;
        let mut tried = Vec::new();
        for i in self.try_order(user) {
            let server = &inner.servers[i];
            let mut attempt = match server.breaker().admit(inner.clock.now()) {
                Admit::Go => Attempt {
                    server,
                    trial: false,
                },
                Admit::Trial => Attempt {
                    server,
                    trial: true,
                },
                Admit::Skip(reason) => {
                    tried.push((server.url.clone(), reason));
                    continue;
                }
            };
            let result = inner
                .client
                .send_dated(&server.url, method.clone(), path, body.clone())
                .await;
            match result {
                Ok((status, body, date)) => {
                    attempt.answered(inner);
                    return Ok(Answer {
                        server: server.url.clone(),
                        status,
                        body,
                        date,
                    });
                }
                Err(e) if e.is_unreachable() => {
                    let reason = e.short_reason();
                    attempt.failed(inner, reason.clone());
                    tried.push((server.url.clone(), reason));
                }
                Err(e @ Error::Local { .. }) => {
                    // This machine is out of descriptors or memory: no verdict on the server
                    // (its breaker stays as it is; a trial is released when `attempt` drops),
                    // and the next server would fail the same way. The caller refuses.
                    tracing::error!(server = %server.url, error = %e, "no connection for lack of local resources");
                    return Err(e);
                }
                Err(e @ Error::Api { .. }) => {
                    // A definite 4xx: the server is up and said no.
                    attempt.answered(inner);
                    return Err(e);
                }
                // A bad path or an answer we cannot read: no verdict on the server, and no
                // reason to think another server would do better. The trial (if any) is
                // released when `attempt` drops.
                Err(e) => return Err(e),
            }
        }
        Err(Error::AllUnreachable { tried })
    }

    /// Servers in the order this call considers them (open circuits are skipped later).
    fn try_order(&self, user: Option<&str>) -> Vec<usize> {
        let n = self.inner.servers.len();
        match self.inner.selection {
            Selection::Ordered => (0..n).collect(),
            Selection::Consistent => {
                let start = user.map_or(0, |u| {
                    usize::try_from(fnv1a64(u.as_bytes()) % n as u64).unwrap_or(0)
                });
                (0..n).map(|k| (start + k) % n).collect()
            }
            Selection::Balanced => {
                let now = self.inner.clock.now();
                let (mut up, down): (Vec<usize>, Vec<usize>) =
                    (0..n).partition(|&i| self.inner.servers[i].breaker().available(now));
                if !up.is_empty() {
                    let k = self.inner.next.fetch_add(1, Ordering::Relaxed) % up.len();
                    up.rotate_left(k);
                }
                up.extend(down);
                up
            }
        }
    }
}

/// One request to one server; settles that server's breaker.
struct Attempt<'a> {
    server: &'a Server,
    /// This request holds the half-open server's trial until settled.
    trial: bool,
}

impl Attempt<'_> {
    fn answered(&mut self, inner: &Inner) {
        let back = self.server.breaker().answered(inner.clock.unix_now());
        self.trial = false;
        if back {
            tracing::info!(server = %self.server.url, "latchkey server answers again");
        }
    }

    fn failed(&mut self, inner: &Inner, reason: String) {
        let backoff = self.server.breaker().failed(
            inner.clock.now(),
            &inner.breaker,
            reason.clone(),
            self.trial,
        );
        self.trial = false;
        if let Some(backoff) = backoff {
            tracing::warn!(
                server = %self.server.url,
                error = %reason,
                skip_for = ?backoff,
                "latchkey server failed; skipping it"
            );
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.trial {
            self.server.breaker().release_trial();
        }
    }
}

/// FNV-1a, 64-bit: small, fixed and the same in every process.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests;
