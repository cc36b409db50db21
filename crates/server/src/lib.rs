//! latchkeyd: the latchkey MFA server as a library, so tests start it in-process.
//!
//! `start` opens the store, creates key material on first start, binds the listener and
//! returns a handle; `RunningServer::shutdown` stops it gracefully.

mod audit;
pub mod bootstrap;
mod cache;
pub mod config;
pub mod engine;
mod http;
pub mod logwriter;
mod metrics;
pub mod policy;
mod ratelimit;
pub mod store;
mod tls;
mod web;

pub use config::{Args, ServerConfig, TlsSetting};

use base64::Engine as _;
use engine::{Engine, EngineParts};
use http::HttpContext;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use thiserror::Error;
use tokio::sync::watch;

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::BootstrapError),
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("smartcard_ca: {0}")]
    SmartcardCa(String),
    #[error("cannot listen on {addr}: {err}")]
    Listen {
        addr: SocketAddr,
        err: std::io::Error,
    },
}

/// Facts about a started server, for printing and for tests.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub addr: SocketAddr,
    /// `https` or `http`.
    pub scheme: &'static str,
    /// `sha256:HEX` of the TLS certificate (empty over plain HTTP).
    pub tls_fingerprint: String,
    /// Server Ed25519 public key, base64.
    pub signing_public_key: String,
    /// The bootstrap admin token if this start created it (print it once).
    pub new_admin_token: Option<String>,
}

impl ServerInfo {
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }
}

pub struct RunningServer {
    pub info: ServerInfo,
    cx: Arc<HttpContext>,
    shutdown: watch::Sender<bool>,
    serve: tokio::task::JoinHandle<()>,
    audit_task: tokio::task::JoinHandle<()>,
    purge_task: tokio::task::JoinHandle<()>,
}

/// What every start needs before TLS and the listener: the store (with key material made on
/// first start and the built-in policies) and the smartcard CA.
struct Opened {
    store: store::Store,
    keys: bootstrap::KeyMaterial,
    smartcard_ca: Option<latchkey_crypto::x509::Certificate>,
}

async fn open(cfg: &ServerConfig) -> Result<Opened, StartError> {
    bootstrap::ensure_data_dir(&cfg.data_dir)?;
    let store = store::Store::open(&cfg.database_spec()).await?;
    let now = engine::now();
    let keys = bootstrap::keys(&cfg.data_dir, &store, now).await?;
    let smartcard_ca =
        engine::smartcard::load_ca(cfg.smartcard_ca.as_deref()).map_err(StartError::SmartcardCa)?;
    for id in policy::BUILT_IN {
        store
            .policy_insert_if_missing(id, &Default::default(), now)
            .await?;
    }
    Ok(Opened {
        store,
        keys,
        smartcard_ca,
    })
}

/// What every request is handed (the engine, and the transport's own limits), and the
/// audit writer's task.
fn http_context(
    cfg: ServerConfig,
    opened: Opened,
    tls_fingerprint: String,
) -> (Arc<HttpContext>, tokio::task::JoinHandle<()>) {
    let (auditor, audit_task) = audit::Auditor::start(opened.store.clone());
    let limiter = ratelimit::RateLimiter::new(cfg.machine_rate, cfg.machine_burst);
    let engine = Engine::new(EngineParts {
        cfg,
        store: opened.store,
        master: opened.keys.master,
        signing: opened.keys.signing,
        tls_fingerprint,
        auditor,
        smartcard_ca: opened.smartcard_ca,
    });
    (Arc::new(HttpContext::new(engine, limiter)), audit_task)
}

pub async fn start(cfg: ServerConfig) -> Result<RunningServer, StartError> {
    let mut opened = open(&cfg).await?;
    let (tls, fingerprint, scheme) = match &cfg.tls {
        config::TlsSetting::InsecureHttp => (None, String::new(), "http"),
        setting => {
            let (cert, key) = match setting {
                config::TlsSetting::Files { cert, key } => (cert.clone(), key.clone()),
                _ => bootstrap::self_signed_tls(&cfg.data_dir)?,
            };
            let m = tls::load(&cert, &key).map_err(StartError::Tls)?;
            (
                Some(tokio_rustls::TlsAcceptor::from(m.config)),
                m.fingerprint,
                "https",
            )
        }
    };
    // Before the listener opens, so the caps are known before the first connection.
    let (limits, fit) = http::conn_limits::ConnLimits::fit(
        cfg.max_connections,
        cfg.max_connections_per_address,
        http::conn_limits::raise_nofile(),
    );
    fit.log(cfg.max_connections);
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|err| StartError::Listen {
            addr: cfg.listen,
            err,
        })?;
    let addr = listener.local_addr().map_err(|err| StartError::Listen {
        addr: cfg.listen,
        err,
    })?;
    let info = ServerInfo {
        addr,
        scheme,
        tls_fingerprint: fingerprint.clone(),
        signing_public_key: base64::engine::general_purpose::STANDARD
            .encode(opened.keys.signing.public_bytes()),
        new_admin_token: opened.keys.new_admin_token.take(),
    };
    let store = opened.store.clone();
    let mut cfg = cfg;
    if let (Some(rp_id), None) = (&cfg.web_rp_id, &cfg.web_origin) {
        // `web_rp_id` alone: the portal's origin is that name on the port bound just now
        // (the configured one, or the one the system picked for port 0).
        cfg.web_origin = Some(config::default_origin(rp_id, addr.port()));
    }
    let (cx, audit_task) = http_context(cfg, opened, fingerprint);
    let (shutdown, rx) = watch::channel(false);
    let serve = tokio::spawn(http::serve(
        listener,
        http::ServeOptions {
            tls,
            limits: Arc::new(limits),
            body_timeout: cx.engine.cfg().body_timeout,
        },
        http::router(cx.clone()),
        rx.clone(),
    ));
    let retention = i64::from(cx.engine.cfg().event_retention_days) * 86_400;
    let web_idle =
        i64::try_from(cx.engine.cfg().web_session_idle.as_secs()).unwrap_or(i64::MAX / 2);
    let purge_task = tokio::spawn(purge_loop(store, retention, web_idle, rx));
    tracing::info!(addr = %info.addr, scheme, "latchkeyd listening");
    Ok(RunningServer {
        info,
        cx,
        shutdown,
        serve,
        audit_task,
        purge_task,
    })
}

/// How often the WAL is copied into the database file beside the writes: short copies often
/// rather than long ones rarely. Copying 250 ms of frames took 30-60 ms (a WAL fsync, then
/// thousands of page reads and writes) and the slowest logins came in bursts about that far
/// apart; at 50 ms, p99 under `otp-load` was 3-5 ms lower (docs/performance.md).
const COPY_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
/// Copies per second: the WAL starts over once a second.
const COPIES_PER_SECOND: u64 = 20;

/// Copies the WAL into the database file every [`COPY_EVERY`], lets it start over every
/// second, and deletes expired login transactions every minute.
async fn purge_loop(
    store: store::Store,
    retention: i64,
    web_idle: i64,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut step = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(COPY_EVERY) => {}
        }
        step += 1;
        if !step.is_multiple_of(COPIES_PER_SECOND) {
            if let Err(e) = store.checkpoint_copy().await {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
            continue;
        }
        let tick = step / COPIES_PER_SECOND;
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
        if tick.is_multiple_of(60)
            && let Err(e) = store.tx_purge(engine::now(), 3600).await
        {
            tracing::warn!(error = %e, "could not purge expired login transactions");
        }
        // Ended enrolments are kept a day (the audit log keeps their story).
        if tick % 60 == 2
            && let Err(e) = store.enrol_purge(engine::now() - 86_400).await
        {
            tracing::warn!(error = %e, "could not purge ended enrolments");
        }
        // Ended web sessions: an ended one is refused when read anyway; this keeps the table small.
        if tick % 60 == 3 {
            let now = engine::now();
            if let Err(e) = store.web_session_purge(now, now - web_idle).await {
                tracing::warn!(error = %e, "could not purge ended web sessions");
            }
        }
        if tick % 60 == 1 && retention > 0 {
            match store.events_purge(engine::now() - retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "events past their retention deleted"),
                Err(e) => tracing::warn!(error = %e, "could not purge old events"),
            }
        }
    }
}

/// In-process entry point for the fuzz targets (fuzz/, docs/security.md "Fuzzing"): not an
/// API, and nothing else uses it.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// The router `start` serves, over `cfg`'s data directory but with no TLS, listener or
    /// background purge, and the bootstrap admin token when this call created it. Requests
    /// go through `tower::ServiceExt::oneshot` inside a Tokio runtime (the audit writer is a
    /// task on it). Each request carries what the accept loop adds to every request: the
    /// connection's facts, here a loopback peer without a client certificate.
    pub async fn router(cfg: ServerConfig) -> Result<(axum::Router, Option<String>), StartError> {
        let mut opened = open(&cfg).await?;
        let admin_token = opened.keys.new_admin_token.take();
        let (cx, _audit_task) = http_context(cfg, opened, String::new());
        let conn = http::extract::ConnInfo {
            peer: Some(SocketAddr::from(([127, 0, 0, 1], 40_000))),
            client_cert_sha256: None,
        };
        Ok((http::router(cx).layer(axum::Extension(conn)), admin_token))
    }
}

impl RunningServer {
    /// Stops accepting, lets open requests finish, flushes the audit log, closes the store.
    pub async fn shutdown(self) {
        self.cx.shutting_down.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        let _ = self.serve.await;
        let _ = self.purge_task.await;
        self.cx.engine.flush_audit().await;
        let store = self.cx.engine.store_handle();
        drop(self.cx);
        self.audit_task.abort();
        store.close().await;
        tracing::info!("latchkeyd stopped");
    }
}
