//! Rows of the offline tables in the state database (migration 2 in state.rs).

use crate::agent_db::{AgentDb, AgentDbError};
use rusqlite::{OptionalExtension, params};

/// A stored bundle: the signed bytes exactly as received, and the agent's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBundle {
    pub payload: String,
    pub signature: String,
    pub logins_used: u32,
    pub failures: u32,
}

impl AgentDb {
    /// Stores a verified bundle, replacing the user's previous one (counters start over).
    pub fn bundle_put(
        &self,
        user: &str,
        payload: &str,
        signature: &str,
        not_after: i64,
        now: i64,
    ) -> Result<(), AgentDbError> {
        self.conn().execute(
            "INSERT INTO offline_bundles (user_name, payload, signature, not_after, logins_used, failures, stored_at)
             VALUES (?1, ?2, ?3, ?4, 0, 0, ?5)
             ON CONFLICT (user_name) DO UPDATE SET payload = excluded.payload, signature = excluded.signature,
               not_after = excluded.not_after, logins_used = 0, failures = 0, stored_at = excluded.stored_at",
            params![user, payload, signature, not_after, now],
        )?;
        Ok(())
    }

    pub fn bundle_get(&self, user: &str) -> Result<Option<StoredBundle>, AgentDbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT payload, signature, logins_used, failures FROM offline_bundles WHERE user_name = ?1",
                [user],
                |r| {
                    Ok(StoredBundle {
                        payload: r.get(0)?,
                        signature: r.get(1)?,
                        logins_used: r.get(2)?,
                        failures: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Wipes a user's bundle; true if there was one.
    pub fn bundle_delete(&self, user: &str) -> Result<bool, AgentDbError> {
        Ok(self
            .conn()
            .execute("DELETE FROM offline_bundles WHERE user_name = ?1", [user])?
            == 1)
    }

    /// Users with a stored bundle.
    pub fn bundle_users(&self) -> Result<Vec<String>, AgentDbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT user_name FROM offline_bundles ORDER BY user_name")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }

    /// Counts one offline login if fewer than `max` were used: the new count, or None when
    /// the limit was already reached (a conditional UPDATE: two logins cannot both pass).
    pub fn bundle_count_login(
        &self,
        user: &str,
        payload: &str,
        max: u32,
    ) -> Result<Option<u32>, AgentDbError> {
        let n: Option<u32> = self
            .conn()
            .query_row(
                "UPDATE offline_bundles SET logins_used = logins_used + 1
                 WHERE user_name = ?1 AND payload = ?2 AND logins_used < ?3 RETURNING logins_used",
                params![user, payload, max],
                |r| r.get(0),
            )
            .optional()?;
        Ok(n)
    }

    /// Counts one wrong answer; returns the new failure count (None: bundle gone or
    /// replaced).
    pub fn bundle_count_failure(
        &self,
        user: &str,
        payload: &str,
    ) -> Result<Option<u32>, AgentDbError> {
        let f: Option<u32> = self
            .conn()
            .query_row(
                "UPDATE offline_bundles SET failures = failures + 1
                 WHERE user_name = ?1 AND payload = ?2 RETURNING failures",
                params![user, payload],
                |r| r.get(0),
            )
            .optional()?;
        Ok(f)
    }

    /// The highest counter seen offline for a credential (None: never used offline).
    pub fn fido2_counter(
        &self,
        user: &str,
        credential_id: &str,
    ) -> Result<Option<u32>, AgentDbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT sign_count FROM offline_fido2_counters WHERE user_name = ?1 AND credential_id = ?2",
                params![user, credential_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Stores `new` as the credential's counter only if it is above the stored one (a
    /// conditional upsert: two logins with the same counter cannot both pass). True when
    /// stored.
    pub fn fido2_counter_advance(
        &self,
        user: &str,
        credential_id: &str,
        new: u32,
    ) -> Result<bool, AgentDbError> {
        Ok(self.conn().execute(
            "INSERT INTO offline_fido2_counters (user_name, credential_id, sign_count) VALUES (?1, ?2, ?3)
             ON CONFLICT (user_name, credential_id) DO UPDATE SET sign_count = excluded.sign_count
               WHERE offline_fido2_counters.sign_count < excluded.sign_count",
            params![user, credential_id, new],
        )? == 1)
    }
}
