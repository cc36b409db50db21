use super::Row;
use super::{Result, Store, map_conflict};
use super::{query, query_scalar};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRow {
    pub id: String,
    pub hostname: String,
    pub cert_sha256: Option<String>,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
}

pub struct NewMachine<'a> {
    pub id: &'a str,
    pub hostname: &'a str,
    pub api_key_hash: &'a str,
    pub cert_sha256: Option<&'a str>,
    pub now: i64,
}

fn from_row(r: &Row) -> Result<MachineRow> {
    Ok(MachineRow {
        id: r.try_get("id")?,
        hostname: r.try_get("hostname")?,
        cert_sha256: r.try_get("cert_sha256")?,
        created_at: r.try_get("created_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
    })
}

const COLS: &str = "id, hostname, cert_sha256, created_at, last_seen_at";

impl Store {
    pub async fn join_token_create(
        &self,
        token_hash: &str,
        note: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        query("INSERT INTO join_tokens (token_hash, note, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(note)
            .bind(now)
            .bind(expires_at)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Spends a join token: true for exactly one caller, and only before it expires.
    pub async fn join_token_consume(
        &self,
        token_hash: &str,
        now: i64,
        machine_id: &str,
    ) -> Result<bool> {
        let res = query(
            "UPDATE join_tokens SET used_at = $1, machine_id = $2 WHERE token_hash = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(machine_id)
        .bind(token_hash)
        .execute(self.writer())
        .await?;
        Ok(res.rows_affected() == 1)
    }

    pub async fn machine_create(&self, m: &NewMachine<'_>) -> Result<()> {
        query(
            "INSERT INTO machines (id, hostname, api_key_hash, cert_sha256, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(m.id)
        .bind(m.hostname)
        .bind(m.api_key_hash)
        .bind(m.cert_sha256)
        .bind(m.now)
        .execute(self.writer())
        .await
        .map_err(|e| map_conflict(e, "a machine with this client certificate"))?;
        Ok(())
    }

    pub async fn machine_by_key_hash(&self, hash: &str) -> Result<Option<MachineRow>> {
        let row = query(format!(
            "SELECT {COLS} FROM machines WHERE api_key_hash = $1"
        ))
        .bind(hash)
        .quick()
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn machine_by_cert(&self, cert_sha256: &str) -> Result<Option<MachineRow>> {
        let row = query(format!(
            "SELECT {COLS} FROM machines WHERE cert_sha256 = $1"
        ))
        .bind(cert_sha256)
        .quick()
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn machine_list(&self) -> Result<Vec<MachineRow>> {
        let rows = query(format!("SELECT {COLS} FROM machines ORDER BY hostname, id"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn machine_delete(&self, id: &str) -> Result<bool> {
        let res = query("DELETE FROM machines WHERE id = $1")
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Updates `last_seen_at` at most once a minute per machine (a write per request would
    /// cost more than the request).
    pub async fn machine_touch(&self, id: &str, now: i64) -> Result<()> {
        query(
            "UPDATE machines SET last_seen_at = $1 WHERE id = $2 AND (last_seen_at IS NULL OR last_seen_at < $3)",
        )
        .bind(now)
        .bind(id)
        .bind(now - 60)
        .quick()
        .execute(self.writer())
        .await?;
        Ok(())
    }

    pub async fn admin_key_insert(&self, hash: &str, name: &str, now: i64) -> Result<()> {
        query("INSERT INTO admin_keys (key_hash, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (key_hash) DO NOTHING")
            .bind(hash)
            .bind(name)
            .bind(now)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    pub async fn admin_key_exists(&self, hash: &str) -> Result<bool> {
        let n: i64 = query_scalar("SELECT COUNT(*) FROM admin_keys WHERE key_hash = $1")
            .bind(hash)
            .quick()
            .fetch_one(self.pool())
            .await?;
        Ok(n > 0)
    }
}

impl Store {
    pub async fn admin_any(&self) -> Result<bool> {
        let n: i64 = query_scalar("SELECT COUNT(*) FROM admin_keys")
            .fetch_one(self.pool())
            .await?;
        Ok(n > 0)
    }
}
