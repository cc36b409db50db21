//! The figures of the console's overview page, each one aggregate query.

use super::{Result, Store, query, query_scalar};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverviewRow {
    pub users: i64,
    pub users_disabled: i64,
    /// OATH tokens and smartcards by kind (`totp`, `hotp`, `smartcard`).
    pub tokens_by_kind: Vec<(String, i64)>,
    pub apps: i64,
    pub fido2: i64,
    pub machines: i64,
    pub machines_seen_day: i64,
    pub failures_hour: i64,
    pub offline_machines: i64,
}

impl Store {
    pub async fn overview(&self, now: i64) -> Result<OverviewRow> {
        let count = |sql: &str| query_scalar::<i64>(sql.to_string());
        let users = count("SELECT COUNT(*) FROM users")
            .fetch_one(self.pool())
            .await?;
        let users_disabled = count("SELECT COUNT(*) FROM users WHERE enabled = 0")
            .fetch_one(self.pool())
            .await?;
        let kinds = query("SELECT kind, COUNT(*) AS n FROM tokens GROUP BY kind ORDER BY kind")
            .fetch_all(self.pool())
            .await?;
        let tokens_by_kind = kinds
            .iter()
            .map(|r| Ok((r.try_get("kind")?, r.try_get("n")?)))
            .collect::<Result<Vec<_>>>()?;
        let apps = count("SELECT COUNT(*) FROM apps")
            .fetch_one(self.pool())
            .await?;
        let fido2 = count("SELECT COUNT(*) FROM fido2_credentials")
            .fetch_one(self.pool())
            .await?;
        let machines = count("SELECT COUNT(*) FROM machines")
            .fetch_one(self.pool())
            .await?;
        let machines_seen_day = count("SELECT COUNT(*) FROM machines WHERE last_seen_at >= $1")
            .bind(now - 86_400)
            .fetch_one(self.pool())
            .await?;
        let failures_hour =
            count("SELECT COUNT(*) FROM events WHERE kind = 'auth_failure' AND time_ms >= $1")
                .bind((now - 3600) * 1000)
                .fetch_one(self.pool())
                .await?;
        let offline_machines =
            count("SELECT COUNT(DISTINCT machine_id) FROM offline_issued WHERE not_after > $1")
                .bind(now)
                .fetch_one(self.pool())
                .await?;
        Ok(OverviewRow {
            users,
            users_disabled,
            tokens_by_kind,
            apps,
            fido2,
            machines,
            machines_seen_day,
            failures_hour,
            offline_machines,
        })
    }
}
