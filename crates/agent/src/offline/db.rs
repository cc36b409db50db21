//! Rows of the offline tables in the state database (migration 2 in state.rs).

use crate::state::{StateDb, StateError};
use rusqlite::{OptionalExtension, params};

/// A stored bundle: the signed bytes exactly as received, and the agent's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBundle {
    pub payload: String,
    pub signature: String,
    pub logins_used: u32,
    pub failures: u32,
}

/// One offline outcome, for the event uploader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineEvent {
    pub uuid: String,
    pub time: i64,
    pub user: String,
    pub client_id: String,
    pub method: String,
    /// `success` or `failure`.
    pub outcome: String,
    pub reason: String,
}

impl StateDb {
    /// Stores a verified bundle, replacing the user's previous one (counters start over).
    pub fn bundle_put(
        &self,
        user: &str,
        payload: &str,
        signature: &str,
        not_after: i64,
        now: i64,
    ) -> Result<(), StateError> {
        self.conn().execute(
            "INSERT INTO offline_bundles (user_name, payload, signature, not_after, logins_used, failures, stored_at)
             VALUES (?1, ?2, ?3, ?4, 0, 0, ?5)
             ON CONFLICT (user_name) DO UPDATE SET payload = excluded.payload, signature = excluded.signature,
               not_after = excluded.not_after, logins_used = 0, failures = 0, stored_at = excluded.stored_at",
            params![user, payload, signature, not_after, now],
        )?;
        Ok(())
    }

    pub fn bundle_get(&self, user: &str) -> Result<Option<StoredBundle>, StateError> {
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
    pub fn bundle_delete(&self, user: &str) -> Result<bool, StateError> {
        Ok(self
            .conn()
            .execute("DELETE FROM offline_bundles WHERE user_name = ?1", [user])?
            == 1)
    }

    /// Users with a stored bundle.
    pub fn bundle_users(&self) -> Result<Vec<String>, StateError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT user_name FROM offline_bundles ORDER BY user_name")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }

    /// Counts one offline login if fewer than `max` were used, and records its event in the
    /// same transaction (one fsync): the new count, or None when the limit was already reached
    /// (a conditional UPDATE: two logins cannot both pass).
    pub fn bundle_count_login(
        &self,
        user: &str,
        payload: &str,
        max: u32,
        event: impl FnOnce(u32) -> Option<OfflineEvent>,
    ) -> Result<Option<u32>, StateError> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let n: Option<u32> = tx
            .query_row(
                "UPDATE offline_bundles SET logins_used = logins_used + 1
                 WHERE user_name = ?1 AND payload = ?2 AND logins_used < ?3 RETURNING logins_used",
                params![user, payload, max],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(e) = n.and_then(event) {
            insert_event(&tx, &e)?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Counts one wrong answer and records its event in the same transaction; returns the
    /// new failure count (None: bundle gone or replaced).
    pub fn bundle_count_failure(
        &self,
        user: &str,
        payload: &str,
        event: impl FnOnce(Option<u32>) -> Option<OfflineEvent>,
    ) -> Result<Option<u32>, StateError> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let f: Option<u32> = tx
            .query_row(
                "UPDATE offline_bundles SET failures = failures + 1
                 WHERE user_name = ?1 AND payload = ?2 RETURNING failures",
                params![user, payload],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(e) = event(f) {
            insert_event(&tx, &e)?;
        }
        tx.commit()?;
        Ok(f)
    }

    /// The highest counter seen offline for a credential (None: never used offline).
    pub fn fido2_counter(
        &self,
        user: &str,
        credential_id: &str,
    ) -> Result<Option<u32>, StateError> {
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
    ) -> Result<bool, StateError> {
        Ok(self.conn().execute(
            "INSERT INTO offline_fido2_counters (user_name, credential_id, sign_count) VALUES (?1, ?2, ?3)
             ON CONFLICT (user_name, credential_id) DO UPDATE SET sign_count = excluded.sign_count
               WHERE offline_fido2_counters.sign_count < excluded.sign_count",
            params![user, credential_id, new],
        )? == 1)
    }

    pub fn offline_event_add(&self, e: &OfflineEvent) -> Result<(), StateError> {
        insert_event(&self.conn(), e)
    }

    /// Offline events in time order (the uploader reads and deletes them).
    pub fn offline_events(&self) -> Result<Vec<OfflineEvent>, StateError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT uuid, time, user_name, client_id, method, outcome, reason FROM offline_events ORDER BY time, uuid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(OfflineEvent {
                uuid: r.get(0)?,
                time: r.get(1)?,
                user: r.get(2)?,
                client_id: r.get(3)?,
                method: r.get(4)?,
                outcome: r.get(5)?,
                reason: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

fn insert_event(conn: &rusqlite::Connection, e: &OfflineEvent) -> Result<(), StateError> {
    conn.execute(
        "INSERT INTO offline_events (uuid, time, user_name, client_id, method, outcome, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            e.uuid,
            e.time,
            e.user,
            e.client_id,
            e.method,
            e.outcome,
            e.reason
        ],
    )?;
    Ok(())
}
