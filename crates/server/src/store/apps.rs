//! Token apps, their one-time registration links, push requests and badge state.

use super::Row;
use super::{Result, Store, map_conflict};
use super::{query, query_scalar};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRow {
    pub id: String,
    pub user_name: String,
    pub device_name: String,
    pub x25519_public: String,
    pub ed25519_public: String,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
}

const APP_COLS: &str =
    "id, user_name, device_name, x25519_public, ed25519_public, created_at, last_seen_at";

fn app_from_row(r: &Row) -> Result<AppRow> {
    Ok(AppRow {
        id: r.try_get("id")?,
        user_name: r.try_get("user_name")?,
        device_name: r.try_get("device_name")?,
        x25519_public: r.try_get("x25519_public")?,
        ed25519_public: r.try_get("ed25519_public")?,
        created_at: r.try_get("created_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
    })
}

/// Where a push request stands, as stored. Expiry is not stored: a request still pending
/// past `expires_at` has expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushState {
    Pending,
    Approved,
    /// Denied in the app.
    Denied,
    /// Approved in the app with a number other than the one the login screen showed.
    WrongNumber,
}

impl PushState {
    pub fn as_str(self) -> &'static str {
        match self {
            PushState::Pending => "pending",
            PushState::Approved => "approved",
            PushState::Denied => "denied",
            PushState::WrongNumber => "wrong_number",
        }
    }

    fn parse(s: &str) -> Result<PushState> {
        Ok(match s {
            "pending" => PushState::Pending,
            "approved" => PushState::Approved,
            "denied" => PushState::Denied,
            "wrong_number" => PushState::WrongNumber,
            other => {
                return Err(super::StoreError::Corrupt(format!(
                    "push request state {other:?}"
                )));
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRow {
    pub tx_id: String,
    pub user_name: String,
    pub host: String,
    pub client_id: String,
    pub rhost: Option<String>,
    pub number: i64,
    pub nonce: String,
    pub expires_at: i64,
    pub state: PushState,
    pub detail: Option<String>,
}

const PUSH_COLS: &str =
    "tx_id, user_name, host, client_id, rhost, number, nonce, expires_at, state, detail";

fn push_from_row(r: &Row) -> Result<PushRow> {
    Ok(PushRow {
        tx_id: r.try_get("tx_id")?,
        user_name: r.try_get("user_name")?,
        host: r.try_get("host")?,
        client_id: r.try_get("client_id")?,
        rhost: r.try_get("rhost")?,
        number: r.try_get("number")?,
        nonce: r.try_get("nonce")?,
        expires_at: r.try_get("expires_at")?,
        state: PushState::parse(&r.try_get::<String, _>("state")?)?,
        detail: r.try_get("detail")?,
    })
}

pub struct NewApp<'a> {
    pub id: &'a str,
    pub user_name: &'a str,
    pub device_name: &'a str,
    pub x25519_public: &'a str,
    pub ed25519_public: &'a str,
    pub key_hash: &'a str,
    pub now: i64,
}

impl Store {
    pub async fn app_link_create(
        &self,
        code_hash: &str,
        user: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        query("INSERT INTO app_links (code_hash, user_name, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(code_hash)
            .bind(user)
            .bind(now)
            .bind(expires_at)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Spends a registration code; returns its user for exactly one caller, before expiry.
    pub async fn app_link_consume(&self, code_hash: &str, now: i64) -> Result<Option<String>> {
        query_scalar(
            "UPDATE app_links SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_name",
        )
        .bind(now)
        .bind(code_hash)
        .fetch_optional(self.writer())
        .await
    }

    pub async fn app_create(&self, a: &NewApp<'_>) -> Result<()> {
        query(format!(
            "INSERT INTO apps ({APP_COLS}, key_hash) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7)"
        ))
        .bind(a.id)
        .bind(a.user_name)
        .bind(a.device_name)
        .bind(a.x25519_public)
        .bind(a.ed25519_public)
        .bind(a.now)
        .bind(a.key_hash)
        .execute(self.writer())
        .await
        .map_err(|e| map_conflict(e, "app"))?;
        Ok(())
    }

    pub async fn app_by_key_hash(&self, hash: &str) -> Result<Option<AppRow>> {
        let row = query(format!("SELECT {APP_COLS} FROM apps WHERE key_hash = $1"))
            .bind(hash)
            .quick()
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(app_from_row).transpose()
    }

    pub async fn apps_of(&self, user: &str) -> Result<Vec<AppRow>> {
        let rows = query(format!(
            "SELECT {APP_COLS} FROM apps WHERE user_name = $1 ORDER BY created_at, id"
        ))
        .bind(user)
        .quick()
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(app_from_row).collect()
    }

    pub async fn app_count_of(&self, user: &str) -> Result<i64> {
        query_scalar("SELECT COUNT(*) FROM apps WHERE user_name = $1")
            .bind(user)
            .quick()
            .fetch_one(self.pool())
            .await
    }

    /// Revokes an app and the TOTP token that came with it; returns its user.
    pub async fn app_delete(&self, id: &str) -> Result<Option<String>> {
        let user: Option<String> =
            query_scalar("DELETE FROM apps WHERE id = $1 RETURNING user_name")
                .bind(id)
                .fetch_optional(self.writer())
                .await?;
        if user.is_some() {
            query("DELETE FROM tokens WHERE app_id = $1")
                .bind(id)
                .execute(self.writer())
                .await?;
        }
        Ok(user)
    }

    pub async fn token_set_app(&self, token_id: &str, app_id: &str) -> Result<()> {
        query("UPDATE tokens SET app_id = $1 WHERE id = $2")
            .bind(app_id)
            .bind(token_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Creates the push request of a transaction, or returns the one already there.
    pub async fn push_create(&self, p: &PushRow, now: i64) -> Result<PushRow> {
        query(format!(
            "INSERT INTO push_requests ({PUSH_COLS}, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (tx_id) DO NOTHING"
        ))
        .bind(&p.tx_id)
        .bind(&p.user_name)
        .bind(&p.host)
        .bind(&p.client_id)
        .bind(&p.rhost)
        .bind(p.number)
        .bind(&p.nonce)
        .bind(p.expires_at)
        .bind(p.state.as_str())
        .bind(&p.detail)
        .bind(now)
        .quick()
        .execute(self.writer())
        .await?;
        self.push_get(&p.tx_id)
            .await?
            .ok_or_else(|| super::StoreError::Corrupt("push request vanished".into()))
    }

    pub async fn push_get(&self, tx_id: &str) -> Result<Option<PushRow>> {
        let row = query(format!(
            "SELECT {PUSH_COLS} FROM push_requests WHERE tx_id = $1"
        ))
        .bind(tx_id)
        .quick()
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(push_from_row).transpose()
    }

    pub async fn push_pending_for(&self, user: &str, now: i64) -> Result<Vec<PushRow>> {
        let rows = query(format!(
            "SELECT {PUSH_COLS} FROM push_requests WHERE user_name = $1 AND state = 'pending' AND expires_at > $2 ORDER BY created_at"
        ))
        .bind(user)
        .bind(now)
        .quick()
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(push_from_row).collect()
    }

    /// Settles a pending request: true for exactly one caller, only before expiry.
    pub async fn push_settle(
        &self,
        tx_id: &str,
        state: PushState,
        app_id: &str,
        detail: &str,
        now: i64,
    ) -> Result<bool> {
        let res = query(
            "UPDATE push_requests SET state = $1, app_id = $2, detail = $3 WHERE tx_id = $4 AND state = 'pending' AND expires_at > $5",
        )
        .bind(state.as_str())
        .bind(app_id)
        .bind(detail)
        .bind(tx_id)
        .bind(now)
        .quick()
        .execute(self.writer())
        .await?;
        Ok(res.rows_affected() == 1)
    }

    pub async fn badge_set(&self, user: &str, state: &str, time: i64, app_id: &str) -> Result<()> {
        query(
            "INSERT INTO badges (user_name, state, time, app_id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_name) DO UPDATE SET state = excluded.state, time = excluded.time, app_id = excluded.app_id",
        )
        .bind(user)
        .bind(state)
        .bind(time)
        .bind(app_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    pub async fn badge_get(&self, user: &str) -> Result<Option<(String, i64)>> {
        let row = query("SELECT state, time FROM badges WHERE user_name = $1")
            .bind(user)
            .quick()
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok((r.try_get("state")?, r.try_get("time")?)))
            .transpose()
    }
}
