//! Admin management of client policies: the effective policy of each client_id (its own
//! settings over `*`), setting and removing.

use super::admin_users::validate_text;
use super::{Actor, Engine, EngineError, Result, now, validate_client_id};
use crate::policy;
use crate::store::Settings;
use latchkey_proto::admin::{AuditEntry, Policy, PolicyUpdate};

/// One client policy for the console: the effective settings and the policy's own ones
/// (what is not among them is inherited from `*` or the defaults).
#[derive(Debug, Clone)]
pub struct PolicyDetail {
    pub effective: Policy,
    pub own: Settings,
}

impl Engine {
    async fn effective_policy(&self, client_id: &str, own: &Settings) -> Result<Policy> {
        let star = if client_id == policy::FALLBACK {
            None
        } else {
            self.store.policy_get(policy::FALLBACK).await?
        };
        policy::effective(client_id, star.as_ref(), Some(own)).map_err(EngineError::PolicyView)
    }

    pub async fn policy_list(&self) -> Result<Vec<Policy>> {
        let mut out = Vec::new();
        for (id, own) in self.store.policy_list().await? {
            out.push(self.effective_policy(&id, &own).await?);
        }
        Ok(out)
    }

    pub async fn policy_show(&self, id: &str) -> Result<Policy> {
        let own = self
            .store
            .policy_get(id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no policy for client_id {id:?}")))?;
        self.effective_policy(id, &own).await
    }

    pub async fn policy_detail(&self, id: &str) -> Result<PolicyDetail> {
        let own = self
            .store
            .policy_get(id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no policy for client_id {id:?}")))?;
        Ok(PolicyDetail {
            effective: self.effective_policy(id, &own).await?,
            own,
        })
    }

    pub async fn policy_set(&self, actor: &Actor, id: &str, req: &PolicyUpdate) -> Result<Policy> {
        validate_client_id(id)?;
        if req.settings.is_empty() {
            return Err(EngineError::Invalid(
                "give at least one key=value setting".into(),
            ));
        }
        let mut own = self.store.policy_get(id).await?.unwrap_or_default();
        for (k, v) in &req.settings {
            validate_text(k, v, 4096)?;
            if v.is_empty() {
                // `key=` returns the key to its inherited value.
                if !policy::KEYS.iter().any(|(known, _)| known == k) {
                    return Err(EngineError::Invalid(format!("{k}: unknown setting")));
                }
                own.remove(k);
            } else {
                policy::apply(&mut policy::defaults(id), k, v).map_err(EngineError::Invalid)?;
                own.insert(k.clone(), v.clone());
            }
        }
        self.store.policy_put(id, &own, now()).await?;
        self.policy_cache.clear();
        let detail = req
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        self.audit(actor, "policy.set", None, Some(id), "ok", detail)
            .await;
        self.effective_policy(id, &own).await
    }

    pub async fn policy_remove(&self, actor: &Actor, id: &str) -> Result<()> {
        if id == policy::FALLBACK {
            return Err(EngineError::Invalid(
                "the `*` policy holds the defaults and cannot be removed".into(),
            ));
        }
        if !self.store.policy_delete(id).await? {
            return Err(EngineError::NotFound(format!(
                "no policy for client_id {id:?}"
            )));
        }
        self.policy_cache.clear();
        self.audit(actor, "policy.remove", None, Some(id), "ok", "")
            .await;
        Ok(())
    }

    /// The console's audit listing: newest first, every filter optional, keyset paging on
    /// the id (`f.before`); the writer's queue is flushed first.
    pub async fn audit_search(&self, mut f: crate::store::AuditFilter) -> Result<Vec<AuditEntry>> {
        f.limit = f.limit.clamp(1, 10_000);
        self.auditor.flush().await;
        Ok(self.store.audit_search(&f).await?)
    }

    /// The audit log, newest records included (the writer's queue is flushed first).
    pub async fn audit_log(
        &self,
        user: Option<&str>,
        since: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Vec<AuditEntry>> {
        let limit = super::events::listing_limit(limit)?;
        self.auditor.flush().await;
        Ok(self.store.audit_query(user, since, limit).await?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_setting_is_shown_and_every_shown_one_is_a_setting() {
        let shown: Vec<&str> = crate::policy::defaults("login")
            .settings()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let keys: Vec<&str> = crate::policy::KEYS.iter().map(|(k, _)| *k).collect();
        for k in &keys {
            assert!(shown.contains(k), "{k} is not shown");
        }
        for k in &shown {
            assert!(keys.contains(k), "{k} is shown but not a setting");
        }
    }

    #[test]
    fn shown_values_are_taken_back() {
        let mut p = crate::policy::defaults("login");
        p.enroll.until = Some(1_806_451_200);
        p.session.max_secs = 1800;
        let shown = p.settings();
        let mut q = crate::policy::defaults("other");
        for (k, v) in &shown {
            if !v.is_empty() {
                crate::policy::apply(&mut q, k, v).unwrap();
            }
        }
        assert_eq!(q.settings(), shown);
    }
}
