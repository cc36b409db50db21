use super::Row;
use super::{Result, Store, StoreError, map_conflict};
use super::{query, query_scalar};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub name: String,
    pub display_name: String,
    pub groups: Vec<String>,
    pub enabled: bool,
    pub created_at: i64,
    pub failures: i64,
    pub locked_until: i64,
}

const COLS: &str = "name, display_name, groups_json, enabled, created_at, failures, locked_until";
/// The same columns from a `users u` in a join.
pub(super) const COLS_U: &str =
    "u.name, u.display_name, u.groups_json, u.enabled, u.created_at, u.failures, u.locked_until";

pub(super) fn from_row(r: &Row) -> Result<UserRow> {
    let groups_json: String = r.try_get("groups_json")?;
    let groups = serde_json::from_str(&groups_json)
        .map_err(|e| StoreError::Corrupt(format!("users.groups_json: {e}")))?;
    Ok(UserRow {
        name: r.try_get("name")?,
        display_name: r.try_get("display_name")?,
        groups,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        created_at: r.try_get("created_at")?,
        failures: r.try_get("failures")?,
        locked_until: r.try_get("locked_until")?,
    })
}

fn groups_json(groups: &[String]) -> String {
    serde_json::to_string(groups).unwrap_or_else(|_| "[]".to_string())
}

impl Store {
    pub async fn user_create(&self, u: &UserRow) -> Result<()> {
        query(
            "INSERT INTO users (name, display_name, groups_json, enabled, created_at, failures, locked_until) \
             VALUES ($1, $2, $3, $4, $5, 0, 0)",
        )
        .bind(&u.name)
        .bind(&u.display_name)
        .bind(groups_json(&u.groups))
        .bind(i64::from(u.enabled))
        .bind(u.created_at)
        .execute(self.writer())
        .await
        .map_err(|e| map_conflict(e, &format!("user {:?}", u.name)))?;
        Ok(())
    }

    pub async fn user_get(&self, name: &str) -> Result<Option<UserRow>> {
        let row = query(format!("SELECT {COLS} FROM users WHERE name = $1"))
            .bind(name)
            .quick()
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The user with its numbers of OATH tokens, token apps and smartcards, in one statement
    /// (read on every login start).
    pub async fn user_get_with_counts(
        &self,
        name: &str,
    ) -> Result<Option<(UserRow, i64, i64, i64, i64)>> {
        let row = query(format!(
            "SELECT {COLS}, (SELECT COUNT(*) FROM tokens WHERE user_name = $1 AND kind <> 'smartcard') AS n_tokens, \
             (SELECT COUNT(*) FROM apps WHERE user_name = $1) AS n_apps, \
             (SELECT COUNT(*) FROM tokens WHERE user_name = $1 AND kind = 'smartcard') AS n_cards, \
             (SELECT COUNT(*) FROM fido2_credentials WHERE user_name = $1) AS n_fido2 \
             FROM users WHERE name = $1"
        ))
        .bind(name)
        .quick()
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok((
                from_row(&r)?,
                r.try_get("n_tokens")?,
                r.try_get("n_apps")?,
                r.try_get("n_cards")?,
                r.try_get("n_fido2")?,
            ))
        })
        .transpose()
    }

    pub async fn user_list(&self) -> Result<Vec<UserRow>> {
        let rows = query(format!("SELECT {COLS} FROM users ORDER BY name"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Returns false when the user does not exist.
    /// Changes a user's display name, groups or enabled flag. Disabling also ends the
    /// user's web sessions and drops their invite links not used yet, in the same
    /// transaction: nothing opened before the disable survives an enable that follows.
    pub async fn user_update(
        &self,
        name: &str,
        display_name: Option<&str>,
        groups: Option<&[String]>,
        enabled: Option<bool>,
    ) -> Result<bool> {
        let update = query(
            "UPDATE users SET display_name = COALESCE($1, display_name), \
             groups_json = COALESCE($2, groups_json), enabled = COALESCE($3, enabled) WHERE name = $4",
        )
        .bind(display_name)
        .bind(groups.map(groups_json))
        .bind(enabled.map(i64::from))
        .bind(name);
        let disabling = enabled == Some(false);
        let sessions = end_web_access(name);
        self.writer()
            .transaction(false, move |c| {
                let n = update.execute_on(c)?.rows_affected();
                if n == 1 && disabling {
                    for q in &sessions {
                        q.execute_on(c)?;
                    }
                }
                Ok(n == 1)
            })
            .await
    }

    /// Deletes a user with their tokens, token apps, web sessions and invite links, in one
    /// transaction: a user made again under the same name inherits nothing.
    pub async fn user_delete(&self, name: &str) -> Result<bool> {
        // Tokens go with the user (ON DELETE CASCADE; deleted explicitly too so the
        // behaviour does not depend on the foreign-key pragma). Web sessions name their
        // user by a string, without a foreign key.
        let tokens = query("DELETE FROM tokens WHERE user_name = $1").bind(name);
        let apps = query("DELETE FROM apps WHERE user_name = $1").bind(name);
        let user = query("DELETE FROM users WHERE name = $1").bind(name);
        let sessions = end_web_access(name);
        self.writer()
            .transaction(false, move |c| {
                tokens.execute_on(c)?;
                apps.execute_on(c)?;
                for q in &sessions {
                    q.execute_on(c)?;
                }
                Ok(user.execute_on(c)?.rows_affected() == 1)
            })
            .await
    }

    /// Records one failure atomically and returns the new failure count.
    /// `lock_for(count)` gives the lockout duration in seconds for that count (0 = none).
    pub async fn user_record_failure(
        &self,
        name: &str,
        now: i64,
        lock_for: impl Fn(i64) -> i64,
    ) -> Result<(i64, i64)> {
        let failures: Option<i64> = query_scalar(
            "UPDATE users SET failures = failures + 1 WHERE name = $1 RETURNING failures",
        )
        .bind(name)
        .quick()
        .fetch_optional(self.writer())
        .await?;
        let Some(failures) = failures else {
            return Ok((0, 0));
        };
        let secs = lock_for(failures);
        if secs > 0 {
            let until = now + secs;
            self.user_lock_until(name, until).await?;
            return Ok((failures, until));
        }
        Ok((failures, 0))
    }

    /// Locks `name` until `until`; only ever extends a lock.
    pub async fn user_lock_until(&self, name: &str, until: i64) -> Result<()> {
        query("UPDATE users SET locked_until = $1 WHERE name = $2 AND locked_until < $1")
            .bind(until)
            .bind(name)
            .quick()
            .execute(self.writer())
            .await?;
        Ok(())
    }

    pub async fn user_reset_failures(&self, name: &str) -> Result<()> {
        query(
            "UPDATE users SET failures = 0, locked_until = 0 WHERE name = $1 AND (failures <> 0 OR locked_until <> 0)",
        )
        .bind(name)
        .quick()
        .execute(self.writer())
        .await?;
        Ok(())
    }

    pub async fn user_count(&self) -> Result<i64> {
        query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.pool())
            .await
    }
}

/// The statements that end a user's way into the portal: their web sessions and their
/// invite links not used yet.
fn end_web_access(name: &str) -> [super::db::Query; 2] {
    [
        query("DELETE FROM web_sessions WHERE kind = 'user' AND subject = $1").bind(name),
        query("DELETE FROM invites WHERE user_name = $1 AND used_at IS NULL").bind(name),
    ]
}
