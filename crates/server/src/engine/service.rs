//! The engine type: what the server's decisions need (the store, the keys, the caches, the
//! audit writer, the wake-up hubs), owned in one place. HTTP holds an [`Engine`] and never
//! reaches behind it: the store is private to this module tree.

use super::{EngineError, Result};
use crate::audit::Auditor;
use crate::cache::TtlCache;
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::store::{AuditRecord, MachineRow, Settings, Store, WriteStats};
use latchkey_crypto::keys::SigningKeyPair;
use latchkey_crypto::seal::MasterKey;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub struct Engine {
    pub(super) cfg: ServerConfig,
    pub(super) store: Store,
    pub(super) master: MasterKey,
    pub(super) signing: SigningKeyPair,
    /// `sha256:HEX` of the TLS certificate, or empty over plain HTTP.
    pub(super) tls_fingerprint: String,
    pub(super) metrics: Metrics,
    pub(super) auditor: Auditor,
    pub(super) hub: super::wakeups::Hub,
    /// client_id → stored settings (None: no such policy), 2 s.
    pub(super) policy_cache: TtlCache<Option<Settings>>,
    /// API key hash or `cert:FINGERPRINT` → machine, 5 s.
    pub(super) machine_cache: TtlCache<MachineRow>,
    /// When each machine's `last_seen_at` was last written (at most once a minute).
    pub(super) touched: Mutex<HashMap<String, i64>>,
    /// `smartcard_ca`: the CA every smartcard certificate must be issued by, when set.
    pub(super) smartcard_ca: Option<latchkey_crypto::x509::Certificate>,
    /// Wakes admins following the event stream.
    pub(super) events_hub: super::wakeups::EventHub,
    /// Argon2 hashes of admin sign-ins running at once (`admins::argon2_at_once`: half the cores).
    pub(super) argon2_permits: tokio::sync::Semaphore,
}

/// What an engine is made of: the store with its key material, opened at start.
pub struct EngineParts {
    pub cfg: ServerConfig,
    pub store: Store,
    pub master: MasterKey,
    pub signing: SigningKeyPair,
    pub tls_fingerprint: String,
    pub auditor: Auditor,
    pub smartcard_ca: Option<latchkey_crypto::x509::Certificate>,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Who made a request, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The admin API key (the CLI).
    Admin,
    /// An admin signed in to the web console, by name.
    WebAdmin(String),
    /// A user in the self-service portal, by name.
    User(String),
    Machine(String),
    App(String),
    Anonymous,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Admin => "admin".into(),
            Actor::WebAdmin(name) => format!("admin:{name}"),
            Actor::User(name) => format!("user:{name}"),
            Actor::Machine(id) => format!("machine:{id}"),
            Actor::App(id) => format!("app:{id}"),
            Actor::Anonymous => "anonymous".into(),
        }
    }
}

impl Engine {
    pub fn new(p: EngineParts) -> Engine {
        Engine {
            cfg: p.cfg,
            store: p.store,
            master: p.master,
            signing: p.signing,
            tls_fingerprint: p.tls_fingerprint,
            metrics: Metrics::default(),
            auditor: p.auditor,
            hub: Default::default(),
            policy_cache: TtlCache::new(Duration::from_secs(2)),
            machine_cache: TtlCache::new(Duration::from_secs(5)),
            touched: Default::default(),
            smartcard_ca: p.smartcard_ca,
            events_hub: Default::default(),
            argon2_permits: tokio::sync::Semaphore::new(super::admins::argon2_at_once()),
        }
    }

    pub fn cfg(&self) -> &ServerConfig {
        &self.cfg
    }

    /// `sha256:HEX` of the TLS certificate a token app pins, or empty over plain HTTP.
    pub fn tls_fingerprint(&self) -> &str {
        &self.tls_fingerprint
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The database answers (readiness).
    pub async fn ready(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }

    /// The figures `/metrics` shows beside the counters: the number of users (-1 when the
    /// database does not answer) and the writer's statistics.
    pub async fn store_figures(&self) -> (i64, WriteStats) {
        let users = self.store.user_count().await.unwrap_or(-1);
        (users, self.store.write_stats())
    }

    /// Writes the audit records still queued (before reading the log, and at shutdown).
    pub async fn flush_audit(&self) {
        self.auditor.flush().await;
    }

    /// A handle on the store, for closing it after the engine is dropped at shutdown.
    pub fn store_handle(&self) -> Store {
        self.store.clone()
    }

    /// A client policy's stored settings, through the short cache.
    pub(super) async fn policy_settings(
        &self,
        client_id: &str,
    ) -> crate::store::Result<Option<Settings>> {
        if let Some(hit) = self.policy_cache.get(client_id) {
            return Ok(hit);
        }
        let v = self.store.policy_get(client_id).await?;
        self.policy_cache.put(client_id, v.clone());
        Ok(v)
    }

    pub(super) async fn touch_machine(&self, id: &str) {
        let now = now();
        let due = match self.touched.lock() {
            Ok(mut map) => {
                let last = map.get(id).copied().unwrap_or(0);
                if now - last >= 60 {
                    map.insert(id.to_string(), now);
                    true
                } else {
                    false
                }
            }
            Err(_) => false,
        };
        if due && let Err(e) = self.store.machine_touch(id, now).await {
            tracing::warn!(error = %e, "could not record machine last-seen time");
        }
    }

    pub(super) async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        user: Option<&str>,
        client_id: Option<&str>,
        result: &str,
        detail: impl Into<String>,
    ) {
        self.auditor
            .record(AuditRecord {
                time: now(),
                actor: actor.label(),
                action: action.to_string(),
                user: user.map(str::to_string),
                client_id: client_id.map(str::to_string),
                result: result.to_string(),
                detail: detail.into(),
            })
            .await;
    }

    /// A fresh secret for a caller (machine key, app key, one-time code): `PREFIX_…`.
    pub(super) fn new_secret(prefix: &str) -> Result<String> {
        latchkey_crypto::keys::generate_api_key(prefix)
            .map_err(|e| EngineError::Internal(e.to_string()))
    }
}
