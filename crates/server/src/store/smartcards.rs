//! Smartcard certificates (the public half of a `smartcard` token) and one-time enrollment
//! codes. A smartcard is a `tokens` row (so listing and removal work as for any token, and
//! removal cascades here) plus its certificate in `smartcards`.

use super::query;
use super::{Result, Store, StoreError, TokenRow, map_conflict};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartcardRow {
    pub token_id: String,
    pub user_name: String,
    /// Lowercase hex SHA-256 of the DER certificate.
    pub fingerprint: String,
    pub cert_der: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
}

const COLS: &str =
    "token_id, user_name, fingerprint, cert_der, subject, issuer, not_before, not_after";

fn from_row(r: &super::Row) -> Result<SmartcardRow> {
    let der: String = r.try_get("cert_der")?;
    let token_id: String = r.try_get("token_id")?;
    Ok(SmartcardRow {
        cert_der: B64.decode(der).map_err(|_| {
            StoreError::Corrupt(format!("smartcards.cert_der of {token_id} is not base64"))
        })?,
        token_id,
        user_name: r.try_get("user_name")?,
        fingerprint: r.try_get("fingerprint")?,
        subject: r.try_get("subject")?,
        issuer: r.try_get("issuer")?,
        not_before: r.try_get("not_before")?,
        not_after: r.try_get("not_after")?,
    })
}

impl Store {
    /// Creates the token and its certificate in one transaction. A certificate already
    /// registered (to anyone) is a conflict.
    pub async fn smartcard_create(&self, t: &TokenRow, sc: &SmartcardRow) -> Result<()> {
        let token = query(
            "INSERT INTO tokens (id, user_name, kind, algorithm, digits, period, secret_sealed, used, label, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
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
        ;
        let card = query(format!(
            "INSERT INTO smartcards ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&sc.token_id)
        .bind(&sc.user_name)
        .bind(&sc.fingerprint)
        .bind(B64.encode(&sc.cert_der))
        .bind(&sc.subject)
        .bind(&sc.issuer)
        .bind(sc.not_before)
        .bind(sc.not_after);
        self.writer()
            .transaction(false, move |c| {
                token.execute_on(c).map_err(|e| map_conflict(e, "token"))?;
                card.execute_on(c)
                    .map_err(|e| map_conflict(e, "this certificate"))?;
                Ok(())
            })
            .await
    }

    pub async fn smartcards_of(&self, user: &str) -> Result<Vec<SmartcardRow>> {
        let rows = query(format!(
            "SELECT {COLS} FROM smartcards WHERE user_name = $1 ORDER BY token_id"
        ))
        .bind(user)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn smartcard_touch(&self, token_id: &str, now: i64) -> Result<()> {
        query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(token_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    pub async fn smartcard_code_create(
        &self,
        code_hash: &str,
        user: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        query(
            "INSERT INTO smartcard_codes (code_hash, user_name, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(code_hash)
        .bind(user)
        .bind(now)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Uses an enrollment code of `user`: true for exactly one caller, before it expires.
    pub async fn smartcard_code_consume(
        &self,
        code_hash: &str,
        user: &str,
        now: i64,
    ) -> Result<bool> {
        let res = query(
            "UPDATE smartcard_codes SET used_at = $1 WHERE code_hash = $2 AND user_name = $3 \
             AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(code_hash)
        .bind(user)
        .execute(self.writer())
        .await?;
        Ok(res.rows_affected() == 1)
    }
}
