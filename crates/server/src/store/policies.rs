use super::{Result, Store, StoreError};
use super::{query, query_scalar};
use std::collections::BTreeMap;

/// Explicitly set `key=value` settings of one client policy (unset keys inherit from `*`).
pub type Settings = BTreeMap<String, String>;

impl Store {
    pub async fn policy_get(&self, client_id: &str) -> Result<Option<Settings>> {
        let json: Option<String> =
            query_scalar("SELECT settings_json FROM policies WHERE client_id = $1")
                .bind(client_id)
                .quick()
                .fetch_optional(self.pool())
                .await?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(format!("policies: {e}")))
        })
        .transpose()
    }

    pub async fn policy_list(&self) -> Result<Vec<(String, Settings)>> {
        let rows = query("SELECT client_id, settings_json FROM policies ORDER BY client_id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("client_id")?;
                let json: String = r.try_get("settings_json")?;
                let s = serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("policies: {e}")))?;
                Ok((id, s))
            })
            .collect()
    }

    /// Inserts the policy if missing (used to seed built-ins).
    pub async fn policy_insert_if_missing(
        &self,
        client_id: &str,
        settings: &Settings,
        now: i64,
    ) -> Result<()> {
        let json =
            serde_json::to_string(settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        query(
            "INSERT INTO policies (client_id, settings_json, updated_at) VALUES ($1, $2, $3) ON CONFLICT (client_id) DO NOTHING",
        )
        .bind(client_id)
        .bind(json)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    pub async fn policy_put(&self, client_id: &str, settings: &Settings, now: i64) -> Result<()> {
        let json =
            serde_json::to_string(settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        query(
            "INSERT INTO policies (client_id, settings_json, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (client_id) DO UPDATE SET settings_json = excluded.settings_json, updated_at = excluded.updated_at",
        )
        .bind(client_id)
        .bind(json)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    pub async fn policy_delete(&self, client_id: &str) -> Result<bool> {
        let res = query("DELETE FROM policies WHERE client_id = $1")
            .bind(client_id)
            .execute(self.writer())
            .await?;
        Ok(res.rows_affected() == 1)
    }
}
