//! Web sessions (issue 23): one row per signed-in browser, keyed by the SHA-256 of its cookie
//! (the cookie itself is never stored), with the short message its next page shows.

use super::{Result, Row, Store, query};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSessionRow {
    pub cookie_hash: String,
    /// `admin` or `user`.
    pub kind: String,
    pub subject: String,
    /// For user sessions, how it was opened (`invite`, `strong`); `-` for admins.
    pub strength: String,
    pub csrf: String,
    pub ip: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

const COLS: &str =
    "cookie_hash, kind, subject, strength, csrf, ip, created_at, last_seen_at, expires_at";

fn from_row(r: &Row) -> Result<WebSessionRow> {
    Ok(WebSessionRow {
        cookie_hash: r.try_get("cookie_hash")?,
        kind: r.try_get("kind")?,
        subject: r.try_get("subject")?,
        strength: r.try_get("strength")?,
        csrf: r.try_get("csrf")?,
        ip: r.try_get("ip")?,
        created_at: r.try_get("created_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

impl Store {
    pub async fn web_session_insert(&self, s: &WebSessionRow) -> Result<()> {
        query(format!(
            "INSERT INTO web_sessions ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&s.cookie_hash)
        .bind(&s.kind)
        .bind(&s.subject)
        .bind(&s.strength)
        .bind(&s.csrf)
        .bind(&s.ip)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The session of a cookie hash and whether its subject still holds: the admin exists,
    /// or the user exists and is enabled. Read beside the writes (the writer's connection
    /// first, so a session opened a moment ago is seen).
    pub async fn web_session_get(
        &self,
        cookie_hash: &str,
    ) -> Result<Option<(WebSessionRow, bool)>> {
        let row = query(format!(
            "SELECT {COLS}, CASE kind \
               WHEN 'admin' THEN (SELECT COUNT(*) FROM admins a WHERE a.name = s.subject) \
               ELSE (SELECT COUNT(*) FROM users u WHERE u.name = s.subject AND u.enabled = 1) \
             END AS alive FROM web_sessions s WHERE cookie_hash = $1"
        ))
        .bind(cookie_hash)
        .quick()
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok((from_row(&r)?, r.try_get::<i64, _>("alive")? > 0)))
            .transpose()
    }

    /// Moves `last_seen_at` forward (never back).
    pub async fn web_session_touch(&self, cookie_hash: &str, now: i64) -> Result<()> {
        query("UPDATE web_sessions SET last_seen_at = $2 WHERE cookie_hash = $1 AND last_seen_at < $2")
            .bind(cookie_hash)
            .bind(now)
            .quick()
            .execute(self.writer())
            .await?;
        Ok(())
    }

    pub async fn web_session_delete(&self, cookie_hash: &str) -> Result<()> {
        query("DELETE FROM web_sessions WHERE cookie_hash = $1")
            .bind(cookie_hash)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Deletes sessions past their absolute expiry or idle since before `idle_before`.
    pub async fn web_session_purge(&self, now: i64, idle_before: i64) -> Result<u64> {
        let done = query("DELETE FROM web_sessions WHERE expires_at <= $1 OR last_seen_at < $2")
            .bind(now)
            .bind(idle_before)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    /// Sets the message the session's next page shows (replacing one not yet shown).
    pub async fn web_flash_set(&self, cookie_hash: &str, text: &str) -> Result<()> {
        query("UPDATE web_sessions SET flash = $2 WHERE cookie_hash = $1")
            .bind(cookie_hash)
            .bind(text)
            .quick()
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// The message set for the session, cleared in the same step (shown once).
    pub async fn web_flash_take(&self, cookie_hash: &str) -> Result<Option<String>> {
        let get = query("SELECT flash FROM web_sessions WHERE cookie_hash = $1").bind(cookie_hash);
        let clear =
            query("UPDATE web_sessions SET flash = NULL WHERE cookie_hash = $1").bind(cookie_hash);
        self.writer()
            .transaction(true, move |c| {
                let text = match get.fetch_optional_on(c)? {
                    Some(r) => r.try_get::<Option<String>, _>(0usize)?,
                    None => None,
                };
                if text.is_some() {
                    clear.execute_on(c)?;
                }
                Ok(text)
            })
            .await
    }
}
