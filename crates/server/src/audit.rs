//! The audit log writer: decisions are queued and written in batches by one task, so a
//! login does not wait on its own fsync. `flush` waits until everything queued is stored;
//! shutdown flushes too.

use crate::store::{AuditRecord, Store};
use tokio::sync::{mpsc, oneshot};

enum Msg {
    Record(AuditRecord),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Auditor {
    tx: mpsc::Sender<Msg>,
}

impl Auditor {
    pub fn start(store: Store) -> (Auditor, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Msg>(16_384);
        let handle = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(512);
            let mut waiters = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                while let Some(msg) = next.take() {
                    match msg {
                        Msg::Record(r) => batch.push(r),
                        Msg::Flush(w) => waiters.push(w),
                    }
                    if batch.len() >= 512 {
                        break;
                    }
                    next = rx.try_recv().ok();
                }
                if !batch.is_empty() {
                    if let Err(e) = store.audit_insert(&batch).await {
                        tracing::error!(error = %e, lost = batch.len(), "audit write failed");
                    }
                    batch.clear();
                }
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        });
        (Auditor { tx }, handle)
    }

    pub async fn record(&self, r: AuditRecord) {
        tracing::info!(
            target: "latchkey::audit",
            actor = %r.actor, action = %r.action, user = r.user.as_deref().unwrap_or("-"),
            client_id = r.client_id.as_deref().unwrap_or("-"), result = %r.result, detail = %r.detail,
            "audit"
        );
        if self.tx.send(Msg::Record(r)).await.is_err() {
            tracing::error!("audit writer is gone; record lost");
        }
    }

    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}
