//! The self-service portal's tables: invite links, the authenticator a user is enrolling for
//! themself, and the owner-scoped changes to a user's own factors. Every step that guards a
//! property (an invite used once, a last factor never removed, a first code judged within
//! its attempts) is one conditional statement or one write transaction.

use super::{Result, Row, Store, TokenRow, query, query_scalar};

/// What removing one of a user's own factors did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnRemoved {
    /// Removed: an OATH token or smartcard, a token app (with its TOTP seed), a security key.
    Token,
    App,
    SecurityKey,
    /// The user has no factor with this id (another user's id is the same as none).
    NotFound,
    /// It is the user's last factor: nothing changed.
    LastOne,
}

/// An authenticator being enrolled by its user, until its first code confirms it.
#[derive(Clone)]
pub struct PendingTotp {
    pub user_name: String,
    /// The seed's associated data when sealed (a fresh id per enrolment).
    pub id: String,
    pub secret_sealed: String,
    pub label: String,
    pub attempts: i64,
    pub expires_at: i64,
}

impl std::fmt::Debug for PendingTotp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingTotp")
            .field("user", &self.user_name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// How many factors of any kind the user has: OATH tokens and smartcards, token apps,
/// security keys.
const FACTORS: &str = "(SELECT COUNT(*) FROM tokens WHERE user_name = $1) \
     + (SELECT COUNT(*) FROM apps WHERE user_name = $1) \
     + (SELECT COUNT(*) FROM fido2_credentials WHERE user_name = $1)";

impl Store {
    /// Stores a new invite for `user`; the user's invites not used yet are dropped in the same
    /// transaction (one open invite per user).
    pub async fn invite_create(
        &self,
        code_hash: &str,
        user: &str,
        created_by: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        let drop_old =
            query("DELETE FROM invites WHERE user_name = $1 AND used_at IS NULL").bind(user);
        let insert = query(
            "INSERT INTO invites (code_hash, user_name, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(code_hash)
        .bind(user)
        .bind(created_by)
        .bind(now)
        .bind(expires_at);
        self.writer()
            .transaction(false, move |c| {
                drop_old.execute_on(c)?;
                insert.execute_on(c)?;
                Ok(())
            })
            .await
    }

    /// Spends an invite: its user for exactly one caller, before expiry.
    pub async fn invite_consume(&self, code_hash: &str, now: i64) -> Result<Option<String>> {
        query_scalar(
            "UPDATE invites SET used_at = $1 \
             WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_name",
        )
        .bind(now)
        .bind(code_hash)
        .fetch_optional(self.writer())
        .await
    }

    /// Removes the factor `id` of `user` unless it is the user's last one, in one write
    /// transaction: of two removals at once, the second sees the first's result.
    pub async fn own_factor_remove(&self, user: &str, id: &str) -> Result<OwnRemoved> {
        let total = query(format!("SELECT {FACTORS} AS n")).bind(user);
        let token = query("SELECT 1 FROM tokens WHERE id = $1 AND user_name = $2")
            .bind(id)
            .bind(user);
        let app_seeds = query(
            "SELECT (SELECT COUNT(*) FROM apps WHERE id = $1 AND user_name = $2) AS apps, \
             (SELECT COUNT(*) FROM tokens WHERE app_id = $1 AND user_name = $2) AS seeds",
        )
        .bind(id)
        .bind(user);
        let key = query("SELECT 1 FROM fido2_credentials WHERE id = $1 AND user_name = $2")
            .bind(id)
            .bind(user);
        let del_token = query("DELETE FROM tokens WHERE id = $1 AND user_name = $2")
            .bind(id)
            .bind(user);
        let del_app = query("DELETE FROM apps WHERE id = $1 AND user_name = $2")
            .bind(id)
            .bind(user);
        let del_seeds = query("DELETE FROM tokens WHERE app_id = $1 AND user_name = $2")
            .bind(id)
            .bind(user);
        let del_key = query("DELETE FROM fido2_credentials WHERE id = $1 AND user_name = $2")
            .bind(id)
            .bind(user);
        self.writer()
            .transaction(false, move |c| {
                let n: i64 = match total.fetch_optional_on(c)? {
                    Some(r) => r.try_get("n")?,
                    None => 0,
                };
                let (what, removed) = if token.fetch_optional_on(c)?.is_some() {
                    (OwnRemoved::Token, 1)
                } else if let Some(r) = app_seeds.fetch_optional_on(c)?
                    && r.try_get::<i64, _>("apps")? == 1
                {
                    (OwnRemoved::App, 1 + r.try_get::<i64, _>("seeds")?)
                } else if key.fetch_optional_on(c)?.is_some() {
                    (OwnRemoved::SecurityKey, 1)
                } else {
                    return Ok(OwnRemoved::NotFound);
                };
                if n - removed <= 0 {
                    return Ok(OwnRemoved::LastOne);
                }
                match what {
                    OwnRemoved::Token => del_token.execute_on(c)?,
                    OwnRemoved::App => {
                        del_seeds.execute_on(c)?;
                        del_app.execute_on(c)?
                    }
                    _ => del_key.execute_on(c)?,
                };
                Ok(what)
            })
            .await
    }

    /// Renames the factor `id` of `user`; false when the user has none with this id.
    pub async fn own_factor_rename(&self, user: &str, id: &str, label: &str) -> Result<bool> {
        let stmts = [
            "UPDATE tokens SET label = $3 WHERE id = $1 AND user_name = $2",
            "UPDATE apps SET device_name = $3 WHERE id = $1 AND user_name = $2",
            "UPDATE fido2_credentials SET label = $3 WHERE id = $1 AND user_name = $2",
        ]
        .map(|sql| query(sql).bind(id).bind(user).bind(label));
        self.writer()
            .transaction(false, move |c| {
                for q in &stmts {
                    if q.execute_on(c)?.rows_affected() == 1 {
                        return Ok(true);
                    }
                }
                Ok(false)
            })
            .await
    }

    /// Starts (or restarts: one per user) an authenticator enrolment of the user's own.
    pub async fn pending_totp_put(&self, p: &PendingTotp, now: i64) -> Result<()> {
        query(
            "INSERT INTO self_totp (user_name, id, secret_sealed, label, attempts, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $6) \
             ON CONFLICT (user_name) DO UPDATE SET id = excluded.id, \
             secret_sealed = excluded.secret_sealed, label = excluded.label, attempts = 0, \
             created_at = excluded.created_at, expires_at = excluded.expires_at",
        )
        .bind(&p.user_name)
        .bind(&p.id)
        .bind(&p.secret_sealed)
        .bind(&p.label)
        .bind(now)
        .bind(p.expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Takes one attempt of the user's pending enrolment `id` (open, unexpired, fewer than
    /// `max` attempts so far): the pending row for exactly as many callers as attempts are
    /// left.
    pub async fn pending_totp_attempt(
        &self,
        user: &str,
        id: &str,
        max: i64,
        now: i64,
    ) -> Result<Option<PendingTotp>> {
        let row = query(
            "UPDATE self_totp SET attempts = attempts + 1 \
             WHERE user_name = $1 AND id = $2 AND attempts < $3 AND expires_at > $4 \
             RETURNING user_name, id, secret_sealed, label, attempts, expires_at",
        )
        .bind(user)
        .bind(id)
        .bind(max)
        .bind(now)
        .fetch_optional(self.writer())
        .await?;
        row.as_ref().map(pending_totp).transpose()
    }

    /// Confirms the pending enrolment `id`: it ends and `token` is stored, together, once.
    pub async fn pending_totp_confirm(
        &self,
        user: &str,
        id: &str,
        token: TokenRow,
    ) -> Result<bool> {
        let take = query("DELETE FROM self_totp WHERE user_name = $1 AND id = $2")
            .bind(user)
            .bind(id);
        let insert = super::tokens::insert_query(&token);
        self.writer()
            .transaction(false, move |c| {
                if take.execute_on(c)?.rows_affected() != 1 {
                    return Ok(false);
                }
                insert.execute_on(c)?;
                Ok(true)
            })
            .await
    }

    /// The user's pending enrolment `id`, open and unexpired.
    pub async fn pending_totp_get(
        &self,
        user: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<PendingTotp>> {
        let row = query(
            "SELECT user_name, id, secret_sealed, label, attempts, expires_at FROM self_totp \
             WHERE user_name = $1 AND id = $2 AND expires_at > $3",
        )
        .bind(user)
        .bind(id)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(pending_totp).transpose()
    }

    /// Drops the user's pending enrolment `id` (its attempts are used up).
    pub async fn pending_totp_drop(&self, user: &str, id: &str) -> Result<()> {
        query("DELETE FROM self_totp WHERE user_name = $1 AND id = $2")
            .bind(user)
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}

fn pending_totp(r: &Row) -> Result<PendingTotp> {
    Ok(PendingTotp {
        user_name: r.try_get("user_name")?,
        id: r.try_get("id")?,
        secret_sealed: r.try_get("secret_sealed")?,
        label: r.try_get("label")?,
        attempts: r.try_get("attempts")?,
        expires_at: r.try_get("expires_at")?,
    })
}
