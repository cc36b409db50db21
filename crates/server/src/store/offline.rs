//! Offline bundles the server handed out (`offline_issued`) and the bundles agents must wipe
//! (`offline_forget`).
//!
//! A forget row stays until the machine gets a fresh bundle for that user (which replaces
//! whatever it held) or until it is older than any bundle can live: telling an agent twice
//! to wipe is harmless, telling it never is not. Agents see the list in every login-start and
//! account-check answer.

use super::{Result, Store};
use super::{query, query_scalar};

/// Longest a bundle can live (`offline.max_days` ≤ 365) plus a margin.
const FORGET_KEEP_SECS: i64 = 400 * 86_400;

impl Store {
    /// Records a bundle handed to a machine; it supersedes any pending forget for the pair.
    pub async fn offline_issued(
        &self,
        machine_id: &str,
        user: &str,
        bundle_id: &str,
        issued_at: i64,
        not_after: i64,
    ) -> Result<()> {
        let unforget = query("DELETE FROM offline_forget WHERE machine_id = $1 AND user_name = $2")
            .bind(machine_id)
            .bind(user);
        let issued = query(
            "INSERT INTO offline_issued (machine_id, user_name, bundle_id, issued_at, not_after) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (machine_id, user_name) DO UPDATE SET bundle_id = excluded.bundle_id, issued_at = excluded.issued_at, not_after = excluded.not_after",
        )
        .bind(machine_id)
        .bind(user)
        .bind(bundle_id)
        .bind(issued_at)
        .bind(not_after);
        let forgot = self
            .writer()
            .transaction(true, move |c| {
                let n = unforget.execute_on(c)?.rows_affected();
                issued.execute_on(c)?;
                Ok(n)
            })
            .await?;
        if forgot > 0 {
            self.forget_cache.clear();
        }
        Ok(())
    }

    /// Every (machine_id, user) whose offline bundle the server handed out and that is
    /// still valid at `now`, by machine then user.
    pub async fn offline_holders(&self, now: i64) -> Result<Vec<(String, String)>> {
        let rows = query(
            "SELECT machine_id, user_name FROM offline_issued WHERE not_after > $1 \
             ORDER BY machine_id, user_name",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("machine_id")?, r.try_get("user_name")?)))
            .collect()
    }

    /// Whether the server handed `machine_id` a bundle of `user` that it still records.
    pub async fn offline_held(&self, machine_id: &str, user: &str) -> Result<bool> {
        let n: i64 = query_scalar(
            "SELECT COUNT(*) FROM offline_issued WHERE machine_id = $1 AND user_name = $2",
        )
        .bind(machine_id)
        .bind(user)
        .quick()
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }

    /// Asks one machine to wipe a user's bundle at its next contact.
    pub async fn offline_forget(
        &self,
        machine_id: &str,
        user: &str,
        reason: &str,
        now: i64,
    ) -> Result<()> {
        let forget = query(
            "INSERT INTO offline_forget (machine_id, user_name, requested_at, reason) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (machine_id, user_name) DO UPDATE SET requested_at = excluded.requested_at, reason = excluded.reason",
        )
        .bind(machine_id)
        .bind(user)
        .bind(now)
        .bind(reason);
        let unissue = query("DELETE FROM offline_issued WHERE machine_id = $1 AND user_name = $2")
            .bind(machine_id)
            .bind(user);
        let r = self
            .writer()
            .transaction(false, move |c| {
                forget.execute_on(c)?;
                unissue.execute_on(c)?;
                Ok(())
            })
            .await;
        self.forget_cache.clear();
        r
    }

    /// Asks every machine holding a bundle of `user` to wipe it (user disabled or removed,
    /// token app revoked); returns how many machines.
    pub async fn offline_revoke_user(&self, user: &str, reason: &str, now: i64) -> Result<u64> {
        let forget = query(
            "INSERT INTO offline_forget (machine_id, user_name, requested_at, reason) \
             SELECT machine_id, user_name, $2, $3 FROM offline_issued WHERE user_name = $1 \
             ON CONFLICT (machine_id, user_name) DO UPDATE SET requested_at = excluded.requested_at, reason = excluded.reason",
        )
        .bind(user)
        .bind(now)
        .bind(reason);
        let unissue = query("DELETE FROM offline_issued WHERE user_name = $1").bind(user);
        let n = self
            .writer()
            .transaction(false, move |c| {
                let n = forget.execute_on(c)?.rows_affected();
                unissue.execute_on(c)?;
                Ok(n)
            })
            .await;
        self.forget_cache.clear();
        n
    }

    /// Users whose bundles `machine_id` must wipe (through a 2 s cache: it is read on every
    /// login answer).
    pub async fn offline_forget_list(&self, machine_id: &str, now: i64) -> Result<Vec<String>> {
        if let Some(hit) = self.forget_cache.get(machine_id) {
            return Ok(hit);
        }
        let list: Vec<String> = query_scalar(
            "SELECT user_name FROM offline_forget WHERE machine_id = $1 AND requested_at > $2 ORDER BY user_name",
        )
        .bind(machine_id)
        .bind(now - FORGET_KEEP_SECS)
        .quick()
        .fetch_all(self.pool())
        .await?;
        self.forget_cache.put(machine_id, list.clone());
        Ok(list)
    }
}
