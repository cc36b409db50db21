//! Sessions reported by the PAM session hooks. Kept in memory for `status`; the events work
//! makes them durable and uploads them.

use latchkey_proto::agent::{OpenSession, SessionEvent};
use std::sync::Mutex;

#[derive(Default)]
pub struct Sessions {
    open: Mutex<Vec<OpenSession>>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Sessions {
    pub fn record(&self, event: SessionEvent, user: &str, service: &str, session_id: Option<&str>) {
        let Ok(mut open) = self.open.lock() else {
            return;
        };
        match event {
            SessionEvent::Open => {
                if open.len() >= 10_000 {
                    open.remove(0);
                }
                open.push(OpenSession {
                    user: user.to_string(),
                    service: service.to_string(),
                    session_id: session_id.map(str::to_string),
                    opened_at: now(),
                });
            }
            SessionEvent::Close => {
                // Close the newest matching session (same id if known, else same user+service).
                if let Some(i) = open.iter().rposition(|s| {
                    s.user == user
                        && s.service == service
                        && (session_id.is_none() || s.session_id.as_deref() == session_id)
                }) {
                    open.remove(i);
                }
            }
        }
    }

    pub fn open(&self) -> Vec<OpenSession> {
        self.open.lock().map(|o| o.clone()).unwrap_or_default()
    }
}
