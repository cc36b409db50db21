//! Machines: joining with a one-time join token, the admin's list and removal, join tokens,
//! and the admin's request that a machine forget a user's offline bundle.

use super::admin_users::validate_text;
use super::{Actor, Engine, EngineError, Result, Unauthorized, new_id, now, validate_user_name};
use crate::store::NewMachine;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::keys::hash_api_key;
use latchkey_proto::admin::{JoinTokenCreate, JoinTokenCreated, Machine};
use latchkey_proto::machine::{JoinRequest, JoinResponse};
use latchkey_proto::offline::{ForgetOffline, ForgetOfflineQueued};

fn normalize_fingerprint(fp: &str) -> Result<String> {
    let hex = fp
        .strip_prefix("sha256:")
        .unwrap_or(fp)
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EngineError::Invalid(
            "client_cert_sha256 must be 64 hex digits (SHA-256 of the DER certificate)".into(),
        ));
    }
    Ok(hex)
}

fn rfc3339(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Engine {
    /// `POST /v1/machines/join` from `ip` (for the audit log).
    pub async fn machine_join(&self, ip: &str, req: &JoinRequest) -> Result<JoinResponse> {
        let hostname = req.hostname.trim();
        if hostname.is_empty()
            || hostname.len() > 253
            || hostname
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(EngineError::Invalid(
                "hostname must be 1 to 253 printable characters without spaces".into(),
            ));
        }
        if req.join_token.len() > 200 {
            return Err(EngineError::Invalid("join_token is too long".into()));
        }
        let cert = req
            .client_cert_sha256
            .as_deref()
            .map(normalize_fingerprint)
            .transpose()?;
        let now = now();
        let machine_id: latchkey_proto::MachineId = super::stored(new_id(10)?)?;
        if !self
            .store
            .join_token_consume(&hash_api_key(&req.join_token), now, &machine_id)
            .await?
        {
            self.audit(
                &Actor::Anonymous,
                "machine.join",
                None,
                None,
                "deny",
                format!("bad join token from {ip} for {hostname}"),
            )
            .await;
            return Err(EngineError::Unauthorized(Unauthorized::JoinToken));
        }
        let api_key = Engine::new_secret("lkm")?;
        self.store
            .machine_create(&NewMachine {
                id: &machine_id,
                hostname,
                api_key_hash: &hash_api_key(&api_key),
                cert_sha256: cert.as_deref(),
                now,
            })
            .await?;
        self.audit(
            &Actor::Machine(machine_id.to_string()),
            "machine.join",
            None,
            None,
            "ok",
            format!("{hostname} joined from {ip}"),
        )
        .await;
        Ok(JoinResponse {
            machine_id,
            api_key,
            signing_public_key: B64.encode(self.signing.public_bytes()),
            tls_fingerprint: self.tls_fingerprint.clone(),
        })
    }

    pub async fn machine_list(&self) -> Result<Vec<Machine>> {
        Ok(self
            .store
            .machine_list()
            .await?
            .into_iter()
            .map(|m| Machine {
                credential: if m.cert_sha256.is_some() {
                    "client_cert".into()
                } else {
                    "api_key".into()
                },
                id: m.id,
                hostname: m.hostname,
                created_at: m.created_at,
                last_seen_at: m.last_seen_at,
            })
            .collect())
    }

    /// The users whose valid offline bundle each machine holds (machines holding none are
    /// absent).
    pub async fn offline_holders(&self) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
        let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
        for (machine, user) in self.store.offline_holders(now()).await? {
            out.entry(machine).or_default().push(user);
        }
        Ok(out)
    }

    pub async fn machine_remove(&self, actor: &Actor, id: &str) -> Result<()> {
        if !self.store.machine_delete(id).await? {
            return Err(EngineError::NotFound(format!("machine {id:?} not found")));
        }
        self.machine_cache.clear();
        self.audit(
            actor,
            "machine.remove",
            None,
            None,
            "ok",
            format!("machine {id}"),
        )
        .await;
        Ok(())
    }

    pub async fn join_token_create(
        &self,
        actor: &Actor,
        req: &JoinTokenCreate,
    ) -> Result<JoinTokenCreated> {
        if !(1..=30 * 86_400).contains(&req.expires_in) {
            return Err(EngineError::Invalid(
                "expires_in must be between 1 second and 30 days".into(),
            ));
        }
        let note = req.note.clone().unwrap_or_default();
        validate_text("note", &note, 256)?;
        let token = Engine::new_secret("lkj")?;
        let now = now();
        let expires_at = now + req.expires_in as i64;
        self.store
            .join_token_create(&hash_api_key(&token), &note, now, expires_at)
            .await?;
        self.audit(
            actor,
            "machine.join_token",
            None,
            None,
            "ok",
            format!("expires at {}; {note}", rfc3339(expires_at)),
        )
        .await;
        Ok(JoinTokenCreated {
            join_token: token,
            expires_at,
        })
    }

    /// Queues the wipe of `user`'s offline bundle on a machine (by id, or by hostname when it
    /// names exactly one machine). The agent wipes it at its next contact with any server.
    pub async fn forget_offline(
        &self,
        actor: &Actor,
        machine: &str,
        req: ForgetOffline,
    ) -> Result<ForgetOfflineQueued> {
        validate_user_name(&req.user)?;
        let machines = self.store.machine_list().await?;
        let by_id: Vec<_> = machines.iter().filter(|m| m.id == machine).collect();
        let found = if by_id.len() == 1 {
            by_id
        } else {
            machines.iter().filter(|m| m.hostname == machine).collect()
        };
        let m = match found.as_slice() {
            [m] => *m,
            [] => {
                return Err(EngineError::NotFound(format!(
                    "machine {machine:?} not found"
                )));
            }
            _ => {
                return Err(EngineError::Invalid(format!(
                    "hostname {machine:?} names several machines: use the machine id"
                )));
            }
        };
        let now = now();
        self.store
            .offline_forget(
                &m.id,
                &req.user,
                "forget-offline requested by an admin",
                now,
            )
            .await?;
        self.audit(
            actor,
            "offline.forget",
            Some(&req.user),
            None,
            "ok",
            format!(
                "machine {} ({}) will wipe the offline bundle at its next contact",
                m.id, m.hostname
            ),
        )
        .await;
        Ok(ForgetOfflineQueued {
            machine_id: m.id.clone(),
            user: req.user,
            requested_at: now,
        })
    }
}
