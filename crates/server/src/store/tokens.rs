use super::Row;
use super::{Result, Store, StoreError, map_conflict};
use super::{query, query_scalar};
use latchkey_proto::{OtpAlgorithm, TokenKind};

/// A token as stored. `secret_sealed` is the master-key-sealed seed (base64), never plain.
#[derive(Clone)]
pub struct TokenRow {
    pub id: String,
    pub user_name: String,
    pub kind: TokenKind,
    pub algorithm: OtpAlgorithm,
    pub digits: u32,
    pub period: u32,
    pub secret_sealed: String,
    /// TOTP: last accepted time step; HOTP: last accepted counter. -1 when never used.
    pub used: i64,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl std::fmt::Debug for TokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRow")
            .field("id", &self.id)
            .field("user", &self.user_name)
            .finish_non_exhaustive()
    }
}

const COLS: &str = "id, user_name, kind, algorithm, digits, period, secret_sealed, used, label, created_at, last_used_at";

/// A user's tokens, oldest first.
pub(super) fn tokens_of_query(user: &str) -> super::db::Query {
    query(format!(
        "SELECT {COLS} FROM tokens WHERE user_name = $1 ORDER BY created_at, id"
    ))
    .bind(user)
}

pub(super) fn from_row(r: &Row) -> Result<TokenRow> {
    let corrupt = |f: &str, e: String| StoreError::Corrupt(format!("tokens.{f}: {e}"));
    let kind: String = r.try_get("kind")?;
    let alg: String = r.try_get("algorithm")?;
    Ok(TokenRow {
        id: r.try_get("id")?,
        user_name: r.try_get("user_name")?,
        kind: kind.parse().map_err(|e| corrupt("kind", e))?,
        algorithm: alg.parse().map_err(|e| corrupt("algorithm", e))?,
        digits: u32::try_from(r.try_get::<i64, _>("digits")?)
            .map_err(|e| corrupt("digits", e.to_string()))?,
        period: u32::try_from(r.try_get::<i64, _>("period")?)
            .map_err(|e| corrupt("period", e.to_string()))?,
        secret_sealed: r.try_get("secret_sealed")?,
        used: r.try_get("used")?,
        label: r.try_get("label")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

/// The statement that stores a new token.
pub(super) fn insert_query(t: &TokenRow) -> super::db::Query {
    query(format!(
        "INSERT INTO tokens ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&t.id)
    .bind(&t.user_name)
    .bind(t.kind.as_str())
    .bind(t.algorithm.as_str())
    .bind(i64::from(t.digits))
    .bind(i64::from(t.period))
    .bind(&t.secret_sealed)
    .bind(t.used)
    .bind(&t.label)
    .bind(t.created_at)
    .bind(t.last_used_at)
}

impl Store {
    pub async fn token_create(&self, t: &TokenRow) -> Result<()> {
        insert_query(t)
            .execute(self.writer())
            .await
            .map_err(|e| map_conflict(e, "token"))?;
        Ok(())
    }

    pub async fn tokens_of(&self, user: &str) -> Result<Vec<TokenRow>> {
        let rows = tokens_of_query(user).quick().fetch_all(self.pool()).await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn token_count_of(&self, user: &str) -> Result<i64> {
        query_scalar("SELECT COUNT(*) FROM tokens WHERE user_name = $1")
            .bind(user)
            .quick()
            .fetch_one(self.pool())
            .await
    }

    pub async fn token_delete(&self, id: &str) -> Result<Option<String>> {
        let user: Option<String> =
            query_scalar("DELETE FROM tokens WHERE id = $1 RETURNING user_name")
                .bind(id)
                .fetch_optional(self.writer())
                .await?;
        Ok(user)
    }

    /// Marks `step` (TOTP step or HOTP counter) as used, only if it is newer than the last
    /// used one. Exactly one of several concurrent callers with the same code gets `true`.
    pub async fn token_consume(&self, id: &str, step: i64, now: i64) -> Result<bool> {
        let res =
            query("UPDATE tokens SET used = $1, last_used_at = $2 WHERE id = $3 AND used < $1")
                .bind(step)
                .bind(now)
                .bind(id)
                .quick()
                .execute(self.writer())
                .await?;
        Ok(res.rows_affected() == 1)
    }
}

impl Store {
    pub async fn token_get(&self, id: &str) -> Result<Option<TokenRow>> {
        let row = query(format!("SELECT {COLS} FROM tokens WHERE id = $1"))
            .bind(id)
            .quick()
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }
}
