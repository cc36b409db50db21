use super::db::values_rows;
use super::query;
use super::{Result, Row, Store};
use latchkey_proto::admin::AuditEntry;

/// One audit line to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub time: i64,
    pub actor: String,
    pub action: String,
    pub user: Option<String>,
    pub client_id: Option<String>,
    pub result: String,
    pub detail: String,
}

/// What the console's audit page asks for: every filter optional, `before` an audit id
/// (keyset paging, newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub user: Option<String>,
    pub actor: Option<String>,
    /// An action (`user.add`) or its prefix before the dot (`user`).
    pub action: Option<String>,
    pub client_id: Option<String>,
    pub result: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    pub before: Option<i64>,
    pub limit: i64,
}

impl Store {
    /// Writes a batch with multi-row INSERTs (one statement per 100 lines): each statement is
    /// a round trip to the database's worker, so one per line would cost more than the logins.
    pub async fn audit_insert(&self, batch: &[AuditRecord]) -> Result<()> {
        const ROWS: usize = 100;
        for chunk in batch.chunks(ROWS) {
            let sql = format!(
                "INSERT INTO audit (time, actor, action, user_name, client_id, result, detail) VALUES {}",
                values_rows(chunk.len(), 7)
            );
            let mut q = query(&sql);
            for a in chunk {
                q = q
                    .bind(a.time)
                    .bind(&a.actor)
                    .bind(&a.action)
                    .bind(&a.user)
                    .bind(&a.client_id)
                    .bind(&a.result)
                    .bind(&a.detail);
            }
            // Quick: a few hundred microseconds, run with the group commit it joins.
            q.quick().execute(self.writer()).await?;
        }
        Ok(())
    }

    /// Newest first.
    pub async fn audit_search(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let rows = query(
            "SELECT id, time, actor, action, user_name, client_id, result, detail FROM audit \
             WHERE id < $1 AND time >= $2 AND time < $3 \
             AND ($4 IS NULL OR user_name = $4) AND ($5 IS NULL OR actor = $5) \
             AND ($6 IS NULL OR action = $6 OR action LIKE $7) \
             AND ($8 IS NULL OR client_id = $8) AND ($9 IS NULL OR result = $9) \
             ORDER BY id DESC LIMIT $10",
        )
        .bind(f.before.unwrap_or(i64::MAX))
        .bind(f.since.unwrap_or(i64::MIN))
        .bind(f.until.unwrap_or(i64::MAX))
        .bind(f.user.clone())
        .bind(f.actor.clone())
        .bind(f.action.clone())
        .bind(
            f.action
                .as_ref()
                .map(|a| format!("{}.%", a.replace(['%', '_'], ""))),
        )
        .bind(f.client_id.clone())
        .bind(f.result.clone())
        .bind(f.limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(entry).collect()
    }

    pub async fn audit_query(
        &self,
        user: Option<&str>,
        since: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        const COLS: &str = "id, time, actor, action, user_name, client_id, result, detail";
        // Two statements, so each can use its index: a user's records through
        // audit_user_time (newest first by time, then id); everyone's by id, the order of
        // writing (a `($1 IS NULL OR user_name = $1)` filter made SQLite scan the table).
        let rows = match user {
            Some(user) => query(format!(
                "SELECT {COLS} FROM audit WHERE user_name = $1 AND time >= $2 \
                 ORDER BY time DESC, id DESC LIMIT $3"
            ))
            .bind(user),
            None => query(format!(
                "SELECT {COLS} FROM audit WHERE time >= $1 ORDER BY id DESC LIMIT $2"
            )),
        }
        .bind(since.unwrap_or(0))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows.iter().map(entry).collect::<Result<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }
}

fn entry(r: &Row) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.try_get("id")?,
        time: r.try_get("time")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        user: r.try_get("user_name")?,
        client_id: r.try_get("client_id")?,
        result: r.try_get("result")?,
        detail: r.try_get("detail")?,
    })
}
