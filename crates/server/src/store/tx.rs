use super::{Result, Store, TokenRow, UserRow, tokens, users};
use super::{Row, query};

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

/// What an answer to a login reads in one go ([`Store::tx_get_with_user_tokens`]).
#[derive(Debug, Clone)]
pub struct TxView {
    pub tx: TxRow,
    /// None when the user was removed during the login.
    pub user: Option<UserRow>,
    /// The user has a token app, a smartcard or a security key: something an offline bundle
    /// could carry (most users of a fleet have OATH tokens only, and get none).
    pub user_has_offline: bool,
    /// The user's tokens, when asked for.
    pub tokens: Vec<TokenRow>,
}

/// SQL: whether the user of `login_tx t` has anything an offline bundle could carry.
const HAS_OFFLINE: &str = "(EXISTS (SELECT 1 FROM apps a WHERE a.user_name = t.user_name) \
     OR EXISTS (SELECT 1 FROM tokens k WHERE k.user_name = t.user_name AND k.kind = 'smartcard') \
     OR EXISTS (SELECT 1 FROM fido2_credentials f WHERE f.user_name = t.user_name))";

/// A login transaction's id: the creation time in milliseconds (6 bytes, big-endian), then
/// `random`, in lowercase base32hex (RFC 4648 §7: `0-9a-v`). That alphabet keeps the bytes'
/// order, so ids sort by creation time:
/// - new rows go to the last pages of `login_tx` instead of a random page each;
/// - the purge deletes a range of the primary key ([`Store::tx_purge`]), with no index on
///   the expiry time to update at every login.
pub fn tx_id(ms: u64, random: &[u8]) -> String {
    let mut raw = ms.to_be_bytes()[2..].to_vec();
    raw.extend_from_slice(random);
    data_encoding::BASE32HEX_NOPAD
        .encode(&raw)
        .to_ascii_lowercase()
}

/// Transactions deleted per statement by [`Store::tx_purge`]: each batch is one write of the
/// group commit, so logins go on between them.
const PURGE_BATCH: i64 = 2000;

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
            .map(|v| (v.tx, v.user)))
    }

    /// The transaction, its user, whether that user has anything an offline bundle could
    /// carry and, `with_tokens`, the user's tokens: one read of the database (one consistent
    /// snapshot) for everything an answer needs, including the bundle decision after a
    /// success.
    pub async fn tx_get_with_user_tokens(
        &self,
        id: &str,
        with_tokens: bool,
    ) -> Result<Option<TxView>> {
        let tx = query(format!(
            "SELECT t.id AS tx_id, t.user_name, t.client_id, t.machine_id, t.expires_at, t.attempts, t.done, t.rhost, \
             {}, {HAS_OFFLINE} AS has_offline FROM login_tx t LEFT JOIN users u ON u.name = t.user_name WHERE t.id = $1",
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
        Ok(Some(TxView {
            tx: tx_from_row(&r)?,
            user_has_offline: user.is_some() && r.try_get::<i64, _>("has_offline")? != 0,
            user,
            tokens,
        }))
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
        let row = query(format!(
            "SELECT t.user_name, {HAS_OFFLINE} AS has_offline FROM login_tx t WHERE t.id = $1"
        ))
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
    /// expired more than `grace` seconds ago. A transaction is found by its id, which
    /// begins with its creation time: every one created before `now - grace - 1 h` has
    /// expired (no `tx_ttl` is longer than an hour). Deleted in batches, so a large purge
    /// does not hold up logins.
    pub async fn tx_purge(&self, now: i64, grace: i64) -> Result<u64> {
        let created_before = (now - grace - crate::policy::MAX_TX_TTL as i64).max(0) as u64 * 1000;
        let floor = tx_id(created_before, &[0; 16]);
        let mut purged = 0;
        loop {
            let res = query(
                "DELETE FROM login_tx WHERE id IN (SELECT id FROM login_tx WHERE id < $1 ORDER BY id LIMIT $2)",
            )
            .bind(&floor)
            .bind(PURGE_BATCH)
            .execute(self.writer())
            .await?;
            purged += res.rows_affected();
            if res.rows_affected() < PURGE_BATCH as u64 {
                break;
            }
        }
        let res = query("DELETE FROM fido2_login_challenges WHERE expires_at < $1")
            .bind(now - grace)
            .execute(self.writer())
            .await?;
        Ok(purged + res.rows_affected())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Ids sort as their creation times do, whatever their random part; the alphabet is
    /// base32hex's, lowercase.
    #[test]
    fn tx_ids_sort_by_creation_time() {
        let times = [
            0u64,
            1,
            31,
            32,
            999,
            1_000,
            1_764_000_000_000,
            1_764_000_000_001,
            (1 << 48) - 1,
        ];
        let mut ids = Vec::new();
        for (i, ms) in times.iter().enumerate() {
            // A later id with smaller random bytes must still sort after.
            let id = tx_id(*ms, &[0xff - (i as u8) * 20; 16]);
            assert_eq!(id.len(), 36);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
            );
            ids.push(id);
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
        // The purge's floor for a time is below every id of that time and above older ones.
        let floor = tx_id(1_000, &[0; 16]);
        assert!(tx_id(999, &[0xff; 16]) < floor);
        assert!(tx_id(1_000, &[0; 16]) >= floor);
        assert!(tx_id(1_000, &[1; 16]) > floor);
    }
}
