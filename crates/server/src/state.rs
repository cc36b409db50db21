//! Shared server state handed to every request.

use crate::audit::Auditor;
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::store::{AuditRecord, Store};
use latchkey_crypto::keys::SigningKeyPair;
use latchkey_crypto::seal::MasterKey;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub struct State {
    pub cfg: ServerConfig,
    pub store: Store,
    pub master: MasterKey,
    pub signing: SigningKeyPair,
    /// `sha256:HEX` of the TLS certificate, or empty over plain HTTP.
    pub tls_fingerprint: String,
    pub metrics: Metrics,
    pub limiter: RateLimiter,
    pub auditor: Auditor,
    pub shutting_down: AtomicBool,
    pub hub: crate::push::Hub,
    /// client_id → stored settings (None: no such policy), 2 s.
    pub policy_cache: crate::cache::TtlCache<Option<crate::store::Settings>>,
    /// API key hash or `cert:FINGERPRINT` → machine, 5 s.
    pub machine_cache: crate::cache::TtlCache<crate::store::MachineRow>,
    /// When each machine's `last_seen_at` was last written (at most once a minute).
    pub touched: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// `smartcard_ca`: the CA every smartcard certificate must be issued by, when set.
    pub smartcard_ca: Option<latchkey_crypto::x509::Certificate>,
    /// Wakes admins following the event stream.
    pub events_hub: crate::events::EventHub,
}

pub type Shared = Arc<State>;

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Who made a request, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Admin,
    Machine(String),
    App(String),
    Anonymous,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Admin => "admin".into(),
            Actor::Machine(id) => format!("machine:{id}"),
            Actor::App(id) => format!("app:{id}"),
            Actor::Anonymous => "anonymous".into(),
        }
    }
}

impl State {
    /// A client policy's stored settings, through the short cache.
    pub async fn policy_settings(
        &self,
        client_id: &str,
    ) -> crate::store::Result<Option<crate::store::Settings>> {
        if let Some(hit) = self.policy_cache.get(client_id) {
            return Ok(hit);
        }
        let v = self.store.policy_get(client_id).await?;
        self.policy_cache.put(client_id, v.clone());
        Ok(v)
    }

    pub async fn touch_machine(&self, id: &str) {
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

    pub async fn audit(
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
}
