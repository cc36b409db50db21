use super::{Result, Store, TokenRow, UserRow, tokens, users};
use super::{Row, query, query_scalar};

/// A login transaction: one person at one machine proving a second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRow {
    pub id: String,
    pub user_name: String,
    pub client_id: String,
    pub machine_id: String,
    pub expires_at: i64,
    pub attempts: i64,
    pub done: bool,
    pub rhost: Option<String>,
}

pub struct NewTx<'a> {
    pub id: &'a str,
    pub user_name: &'a str,
    pub client_id: &'a str,
    pub machine_id: &'a str,
    pub rhost: Option<&'a str>,
    pub tty: Option<&'a str>,
    pub now: i64,
    pub expires_at: i64,
}

impl Store {
    pub async fn tx_create(&self, t: &NewTx<'_>) -> Result<()> {
        query(
            "INSERT INTO login_tx (id, user_name, client_id, machine_id, rhost, tty, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(t.id)
        .bind(t.user_name)
        .bind(t.client_id)
        .bind(t.machine_id)
        .bind(t.rhost)
        .bind(t.tty)
        .bind(t.now)
        .bind(t.expires_at)
        .quick()
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The transaction and its user (None when the user is gone), in one statement: every
    /// answer to a login reads both.
    pub async fn tx_get_with_user(&self, id: &str) -> Result<Option<(TxRow, Option<UserRow>)>> {
        Ok(self
            .tx_get_with_user_tokens(id, false)
            .await?
            .map(|(t, u, _)| (t, u)))
    }

    /// The transaction, its user and, `with_tokens`, the user's tokens: one read of the
    /// database (one consistent snapshot) for everything a code's answer needs.
    pub async fn tx_get_with_user_tokens(
        &self,
        id: &str,
        with_tokens: bool,
    ) -> Result<Option<(TxRow, Option<UserRow>, Vec<TokenRow>)>> {
        let tx = query(format!(
            "SELECT t.id AS tx_id, t.user_name, t.client_id, t.machine_id, t.expires_at, t.attempts, t.done, t.rhost, \
             {} FROM login_tx t LEFT JOIN users u ON u.name = t.user_name WHERE t.id = $1",
            users::COLS_U
        ))
        .bind(id);
        let found = self
            .pool()
            .run(true, move |c| {
                let Some(r) = tx.fetch_optional_on(c)? else {
                    return Ok(None);
                };
                let user_name: String = r.try_get("user_name")?;
                let rows = match r.try_get::<Option<String>, _>("name")? {
                    Some(_) if with_tokens => {
                        tokens::tokens_of_query(&user_name).fetch_all_on(c)?
                    }
                    _ => Vec::new(),
                };
                Ok(Some((r, rows)))
            })
            .await?;
        let Some((r, rows)) = found else {
            return Ok(None);
        };
        let user = match r.try_get::<Option<String>, _>("name")? {
            Some(_) => Some(users::from_row(&r)?),
            None => None,
        };
        let tokens = rows
            .iter()
            .map(tokens::from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((tx_from_row(&r)?, user, tokens)))
    }

    pub async fn tx_get(&self, id: &str) -> Result<Option<TxRow>> {
        let row = query(
            "SELECT id AS tx_id, user_name, client_id, machine_id, expires_at, attempts, done, rhost FROM login_tx WHERE id = $1",
        )
        .bind(id)
        .quick()
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(tx_from_row).transpose()
    }

    /// The transaction's user, and whether that user has anything an offline bundle could
    /// carry (a token app, a smartcard or a security key), in one statement: asked after every
    /// MFA success, and most users of a fleet have OATH tokens only.
    pub async fn tx_user_offline_candidate(&self, id: &str) -> Result<Option<(String, bool)>> {
        let row = query(
            "SELECT t.user_name, \
             (EXISTS (SELECT 1 FROM apps a WHERE a.user_name = t.user_name) \
              OR EXISTS (SELECT 1 FROM tokens k WHERE k.user_name = t.user_name AND k.kind = 'smartcard') \
              OR EXISTS (SELECT 1 FROM fido2_credentials f WHERE f.user_name = t.user_name)) AS has_offline \
             FROM login_tx t WHERE t.id = $1",
        )
        .bind(id)
        .quick()
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok((
                r.try_get("user_name")?,
                r.try_get::<i64, _>("has_offline")? != 0,
            ))
        })
        .transpose()
    }

    /// Counts one wrong answer; returns the new attempt count (None if the tx is finished).
    pub async fn tx_add_attempt(&self, id: &str) -> Result<Option<i64>> {
        query_scalar(
            "UPDATE login_tx SET attempts = attempts + 1 WHERE id = $1 AND done = 0 RETURNING attempts",
        )
        .bind(id)
        .quick()
        .fetch_optional(self.writer())
        .await
    }

    /// Finishes a transaction; true for exactly one caller.
    pub async fn tx_finish(&self, id: &str) -> Result<bool> {
        let res = query("UPDATE login_tx SET done = 1 WHERE id = $1 AND done = 0")
            .bind(id)
            .quick()
            .execute(self.writer())
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Deletes transactions, and the per-login FIDO2 challenges that belong to them, that
    /// expired more than `grace` seconds ago.
    pub async fn tx_purge(&self, now: i64, grace: i64) -> Result<u64> {
        let mut purged = 0;
        for sql in [
            "DELETE FROM login_tx WHERE expires_at < $1",
            "DELETE FROM fido2_login_challenges WHERE expires_at < $1",
        ] {
            let res = query(sql).bind(now - grace).execute(self.writer()).await?;
            purged += res.rows_affected();
        }
        Ok(purged)
    }
}

/// A `login_tx` row whose id column is named `tx_id` (it is joined with `users`).
fn tx_from_row(r: &Row) -> Result<TxRow> {
    Ok(TxRow {
        id: r.try_get("tx_id")?,
        user_name: r.try_get("user_name")?,
        client_id: r.try_get("client_id")?,
        machine_id: r.try_get("machine_id")?,
        expires_at: r.try_get("expires_at")?,
        attempts: r.try_get("attempts")?,
        done: r.try_get::<i64, _>("done")? != 0,
        rhost: r.try_get("rhost")?,
    })
}
