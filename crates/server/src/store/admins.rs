//! Admin accounts of the web console (issue 23): an Argon2id PHC hash of the password, the
//! TOTP secret sealed with the master key, the last TOTP step used (replay refusal) and the
//! lockout counters. The lockout is counted and checked in one conditional UPDATE.

use super::{Result, Row, Store, map_conflict, query};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRow {
    pub name: String,
    pub password_hash: String,
    /// Base64 of the sealed TOTP secret (AAD `admin:NAME`).
    pub totp_sealed: String,
    pub totp_last_step: i64,
    pub failures: i64,
    pub locked_until: i64,
    pub created_at: i64,
    pub last_signin_at: Option<i64>,
}

const COLS: &str = "name, password_hash, totp_sealed, totp_last_step, failures, locked_until, created_at, last_signin_at";

fn from_row(r: &Row) -> Result<AdminRow> {
    Ok(AdminRow {
        name: r.try_get("name")?,
        password_hash: r.try_get("password_hash")?,
        totp_sealed: r.try_get("totp_sealed")?,
        totp_last_step: r.try_get("totp_last_step")?,
        failures: r.try_get("failures")?,
        locked_until: r.try_get("locked_until")?,
        created_at: r.try_get("created_at")?,
        last_signin_at: r.try_get("last_signin_at")?,
    })
}

/// What [`Store::admin_attempt`] decided before the password is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// No admin of that name.
    Unknown,
    /// Locked until this time; nothing was counted.
    Locked(i64),
    /// Counted as a failure in advance (undone by [`Store::admin_signed_in`]); the row with
    /// this attempt counted.
    Counted(AdminRow),
}

impl Store {
    pub async fn admin_insert(&self, a: &AdminRow) -> Result<()> {
        query(format!(
            "INSERT INTO admins ({COLS}) VALUES ($1, $2, $3, 0, 0, 0, $4, NULL)"
        ))
        .bind(&a.name)
        .bind(&a.password_hash)
        .bind(&a.totp_sealed)
        .bind(a.created_at)
        .execute(self.writer())
        .await
        .map_err(|e| map_conflict(e, &format!("admin {:?}", a.name)))?;
        Ok(())
    }

    pub async fn admin_list(&self) -> Result<Vec<AdminRow>> {
        let rows = query(format!("SELECT {COLS} FROM admins ORDER BY name"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Deletes the admin and every web session of theirs; false when there was none.
    pub async fn admin_delete(&self, name: &str) -> Result<bool> {
        let del = query("DELETE FROM admins WHERE name = $1").bind(name);
        let sessions =
            query("DELETE FROM web_sessions WHERE kind = 'admin' AND subject = $1").bind(name);
        self.writer()
            .transaction(false, move |c| {
                let n = del.execute_on(c)?.rows_affected();
                sessions.execute_on(c)?;
                Ok(n == 1)
            })
            .await
    }

    /// One sign-in attempt, counted before its password is checked: unless the admin is
    /// locked, `failures` goes up by one and reaching `max_failures` sets the lock, in one
    /// conditional UPDATE. So however many attempts run at once, at most `max_failures` are
    /// checked before the lock holds. Failures decay in the same UPDATE: when the last one
    /// counted is `lock_secs` old or more (or a lock has run out), the count starts over.
    pub async fn admin_attempt(
        &self,
        name: &str,
        now: i64,
        max_failures: i64,
        lock_secs: i64,
    ) -> Result<Attempt> {
        let count = query(format!(
            "UPDATE admins SET failures = {next}, \
             locked_until = CASE WHEN {next} >= $3 THEN $2 + $4 ELSE 0 END, failed_at = $2 \
             WHERE name = $1 AND locked_until <= $2 RETURNING {COLS}",
            // A lock that has run out, or failures older than the lock window, start the
            // count over (every SET expression reads the row as it was).
            next =
                "(CASE WHEN locked_until > 0 OR failed_at <= $2 - $4 THEN 1 ELSE failures + 1 END)"
        ))
        .bind(name)
        .bind(now)
        .bind(max_failures)
        .bind(lock_secs);
        let get = query("SELECT locked_until FROM admins WHERE name = $1").bind(name);
        self.writer()
            .transaction(true, move |c| {
                if let Some(r) = count.fetch_optional_on(c)? {
                    return Ok(Attempt::Counted(from_row(&r)?));
                }
                Ok(match get.fetch_optional_on(c)? {
                    Some(r) => Attempt::Locked(r.try_get("locked_until")?),
                    None => Attempt::Unknown,
                })
            })
            .await
    }

    /// A successful sign-in: the TOTP step is taken (only if later than the last one used:
    /// a code is good once) and the counters are cleared, in one UPDATE. False when the step
    /// was already used (the attempt stays counted as a failure).
    pub async fn admin_signed_in(&self, name: &str, step: i64, now: i64) -> Result<bool> {
        let done = query(
            "UPDATE admins SET failures = 0, locked_until = 0, totp_last_step = $2, \
             last_signin_at = $3 WHERE name = $1 AND totp_last_step < $2",
        )
        .bind(name)
        .bind(step)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Clears an admin's lockout (`latchkey admin unlock`, the API key's
    /// `POST /v1/admin/admins/{name}/unlock`); false when there is no such admin.
    pub async fn admin_unlock(&self, name: &str) -> Result<bool> {
        let done = query("UPDATE admins SET failures = 0, locked_until = 0 WHERE name = $1")
            .bind(name)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
