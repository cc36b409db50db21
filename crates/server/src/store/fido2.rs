//! FIDO2 credentials, registration codes and per-login challenges.

use super::Row;
use super::{Result, Store, map_conflict};
use super::{query, query_scalar};

/// A registered security-key credential. `public_key` is the COSE key (base64url) exactly as
/// the authenticator sent it; `credential_id` is base64url.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fido2Row {
    pub id: String,
    pub user_name: String,
    pub credential_id: String,
    pub public_key: String,
    pub alg: i64,
    /// Last accepted signature counter.
    pub sign_count: i64,
    /// Whether user verification (PIN/biometrics) was done when the key was registered.
    pub uv_registered: bool,
    pub aaguid: String,
    pub rp_id: String,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

const COLS: &str = "id, user_name, credential_id, public_key, alg, sign_count, uv_registered, aaguid, rp_id, label, created_at, last_used_at";

fn from_row(r: &Row) -> Result<Fido2Row> {
    Ok(Fido2Row {
        id: r.try_get("id")?,
        user_name: r.try_get("user_name")?,
        credential_id: r.try_get("credential_id")?,
        public_key: r.try_get("public_key")?,
        alg: r.try_get("alg")?,
        sign_count: r.try_get("sign_count")?,
        uv_registered: r.try_get::<i64, _>("uv_registered")? != 0,
        aaguid: r.try_get("aaguid")?,
        rp_id: r.try_get("rp_id")?,
        label: r.try_get("label")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

/// A pending registration (the code itself is stored hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fido2RegRow {
    pub user_name: String,
    pub label: String,
    /// base64url; set by `register/start`.
    pub challenge: Option<String>,
    pub expires_at: i64,
}

impl Store {
    pub async fn fido2_create(&self, c: &Fido2Row) -> Result<()> {
        query(format!(
            "INSERT INTO fido2_credentials ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&c.id)
        .bind(&c.user_name)
        .bind(&c.credential_id)
        .bind(&c.public_key)
        .bind(c.alg)
        .bind(c.sign_count)
        .bind(i64::from(c.uv_registered))
        .bind(&c.aaguid)
        .bind(&c.rp_id)
        .bind(&c.label)
        .bind(c.created_at)
        .bind(c.last_used_at)
        .execute(self.writer())
        .await
        .map_err(|e| map_conflict(e, "FIDO2 credential"))?;
        Ok(())
    }

    /// A user's FIDO2 credentials, oldest first (also what an offline bundle carries).
    pub async fn fido2_of(&self, user: &str) -> Result<Vec<Fido2Row>> {
        let rows = query(format!(
            "SELECT {COLS} FROM fido2_credentials WHERE user_name = $1 ORDER BY created_at, id"
        ))
        .bind(user)
        .quick()
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn fido2_by_credential_id(&self, credential_id: &str) -> Result<Option<Fido2Row>> {
        let row = query(format!(
            "SELECT {COLS} FROM fido2_credentials WHERE credential_id = $1"
        ))
        .bind(credential_id)
        .quick()
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Stores a new signature counter only if it moves forward from the one that was checked
    /// (`seen`): exactly one of several concurrent logins with one assertion wins, and a
    /// counter stored meanwhile by another login makes this one lose.
    pub async fn fido2_advance(&self, id: &str, seen: i64, new: i64, now: i64) -> Result<bool> {
        let res = query(
            "UPDATE fido2_credentials SET sign_count = $1, last_used_at = $2 \
             WHERE id = $3 AND sign_count = $4",
        )
        .bind(new)
        .bind(now)
        .bind(id)
        .bind(seen)
        .quick()
        .execute(self.writer())
        .await?;
        Ok(res.rows_affected() == 1)
    }

    pub async fn fido2_delete(&self, id: &str) -> Result<Option<String>> {
        query_scalar("DELETE FROM fido2_credentials WHERE id = $1 RETURNING user_name")
            .bind(id)
            .fetch_optional(self.writer())
            .await
    }

    pub async fn fido2_reg_create(
        &self,
        code_hash: &str,
        user: &str,
        label: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        query(
            "INSERT INTO fido2_registrations (code_hash, user_name, label, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(code_hash)
        .bind(user)
        .bind(label)
        .bind(now)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Sets a fresh challenge on an unused, unexpired registration; None if there is none.
    pub async fn fido2_reg_challenge(
        &self,
        code_hash: &str,
        challenge: &str,
        now: i64,
    ) -> Result<Option<Fido2RegRow>> {
        let row = query(
            "UPDATE fido2_registrations SET challenge = $1 \
             WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $3 \
             RETURNING user_name, label, challenge, expires_at",
        )
        .bind(challenge)
        .bind(code_hash)
        .bind(now)
        .fetch_optional(self.writer())
        .await?;
        row.map(|r| reg_row(&r)).transpose()
    }

    pub async fn fido2_reg_get(&self, code_hash: &str, now: i64) -> Result<Option<Fido2RegRow>> {
        let row = query(
            "SELECT user_name, label, challenge, expires_at FROM fido2_registrations \
             WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(code_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| reg_row(&r)).transpose()
    }

    /// Spends a registration code for the challenge that was answered: true for one caller.
    pub async fn fido2_reg_consume(
        &self,
        code_hash: &str,
        challenge: &str,
        now: i64,
    ) -> Result<bool> {
        let res = query(
            "UPDATE fido2_registrations SET used_at = $1 \
             WHERE code_hash = $2 AND challenge = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(code_hash)
        .bind(challenge)
        .execute(self.writer())
        .await?;
        Ok(res.rows_affected() == 1)
    }

    pub async fn fido2_challenge_create(
        &self,
        tx_id: &str,
        challenge: &str,
        rp_id: &str,
        expires_at: i64,
    ) -> Result<()> {
        query(
            "INSERT INTO fido2_login_challenges (tx_id, challenge, rp_id, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(tx_id)
        .bind(challenge)
        .bind(rp_id)
        .bind(expires_at)
        .quick()
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The login challenge of a transaction: (challenge base64url, rp id).
    pub async fn fido2_challenge_get(&self, tx_id: &str) -> Result<Option<(String, String)>> {
        let row = query("SELECT challenge, rp_id FROM fido2_login_challenges WHERE tx_id = $1")
            .bind(tx_id)
            .quick()
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok((r.try_get("challenge")?, r.try_get("rp_id")?)))
            .transpose()
    }
}

fn reg_row(r: &Row) -> Result<Fido2RegRow> {
    Ok(Fido2RegRow {
        user_name: r.try_get("user_name")?,
        label: r.try_get("label")?,
        challenge: r.try_get("challenge")?,
        expires_at: r.try_get("expires_at")?,
    })
}
