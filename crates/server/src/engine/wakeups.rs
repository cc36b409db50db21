//! In-process wake-ups: a push request for an app that is waiting, a push answer for a login
//! that is waiting, new events for an admin following the stream. They only shorten a wait:
//! every waiter also re-reads the store (several instances may share one database).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, watch};

/// In-process wake-ups keyed by user (apps waiting) and by transaction (logins waiting).
#[derive(Default)]
pub struct Hub {
    users: Mutex<HashMap<String, Arc<Notify>>>,
    txs: Mutex<HashMap<String, Arc<Notify>>>,
}

fn slot(map: &Mutex<HashMap<String, Arc<Notify>>>, key: &str) -> Arc<Notify> {
    match map.lock() {
        Ok(mut m) => {
            if m.len() > 50_000 {
                m.retain(|_, n| Arc::strong_count(n) > 1);
            }
            m.entry(key.to_string()).or_default().clone()
        }
        Err(_) => Arc::new(Notify::new()),
    }
}

impl Hub {
    pub fn user(&self, user: &str) -> Arc<Notify> {
        slot(&self.users, user)
    }
    pub fn tx(&self, tx: &str) -> Arc<Notify> {
        slot(&self.txs, tx)
    }
}

/// Tells followers (`GET /v1/admin/events?after=…&wait=…`) that new events were stored.
pub struct EventHub {
    latest: watch::Sender<u64>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            latest: watch::channel(0).0,
        }
    }
}

impl EventHub {
    pub(super) fn bump(&self) {
        self.latest.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }
}
