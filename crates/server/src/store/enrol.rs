//! Inline enrolments (docs/enrollment.md): one pending enrolment per user at a time, tied
//! to a login transaction; its method chosen once; finished, expired, failed or skipped
//! once. Every change that guards a property is one conditional statement (or one write
//! transaction) whose affected rows decide.

use super::db::Query;
use super::tx::NewTx;
use super::{Result, Row, Store, StoreError, TokenRow, query, query_scalar};
use latchkey_proto::enroll::EnrollMethod;

/// Where a pending enrolment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrolState {
    Open,
    /// The token is active (the first code confirmed it, or the token app registered).
    Done,
    Expired,
    /// Wrong first codes used up the attempts, or the login was refused meanwhile.
    Failed,
    /// The user skipped it, spending a grace login.
    Skipped,
}

impl EnrolState {
    pub fn as_str(self) -> &'static str {
        match self {
            EnrolState::Open => "open",
            EnrolState::Done => "done",
            EnrolState::Expired => "expired",
            EnrolState::Failed => "failed",
            EnrolState::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Result<EnrolState> {
        Ok(match s {
            "open" => EnrolState::Open,
            "done" => EnrolState::Done,
            "expired" => EnrolState::Expired,
            "failed" => EnrolState::Failed,
            "skipped" => EnrolState::Skipped,
            other => {
                return Err(StoreError::Corrupt(format!("enrolments.state: {other:?}")));
            }
        })
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct EnrolRow {
    pub tx_id: String,
    pub user_name: String,
    pub machine_id: String,
    pub client_id: String,
    /// What the offer allowed.
    pub methods: Vec<EnrollMethod>,
    /// What the person picked (once).
    pub method: Option<EnrollMethod>,
    /// `totp`: the new seed, sealed with the master key (associated data: the tx id).
    pub secret_sealed: Option<String>,
    /// `app`: the hash of the registration code handed out.
    pub app_code_hash: Option<String>,
    pub state: EnrolState,
    pub created_at: i64,
    pub expires_at: i64,
}

impl std::fmt::Debug for EnrolRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolRow")
            .field("tx_id", &self.tx_id)
            .field("user", &self.user_name)
            .field("method", &self.method)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// What opening an enrolment did, with the user's enrolments it found expired (to audit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Opened {
        expired: Vec<String>,
    },
    /// Another enrolment of the user is open and unexpired: none was opened.
    Busy {
        expired: Vec<String>,
    },
}

/// What spending a grace login did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grace {
    /// Spent: `used` grace logins of the user now.
    Spent { used: i64 },
    /// None left: nothing changed.
    NoneLeft,
    /// The enrolment is no longer open (finished, expired): nothing changed.
    Gone,
}

/// A registration code for the token app chosen in an enrolment.
pub struct AppLink<'a> {
    pub code_hash: &'a str,
    pub expires_at: i64,
}

const COLS: &str = "tx_id, user_name, machine_id, client_id, methods, method, secret_sealed, app_code_hash, state, created_at, expires_at";

fn methods_text(methods: &[EnrollMethod]) -> String {
    methods
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn from_row(r: &Row) -> Result<EnrolRow> {
    let corrupt = |f: &str, e: String| StoreError::Corrupt(format!("enrolments.{f}: {e}"));
    let methods: String = r.try_get("methods")?;
    let methods = methods
        .split(',')
        .filter(|m| !m.is_empty())
        .map(|m| m.parse().map_err(|e| corrupt("methods", e)))
        .collect::<Result<Vec<EnrollMethod>>>()?;
    let method: Option<String> = r.try_get("method")?;
    let state: String = r.try_get("state")?;
    Ok(EnrolRow {
        tx_id: r.try_get("tx_id")?,
        user_name: r.try_get("user_name")?,
        machine_id: r.try_get("machine_id")?,
        client_id: r.try_get("client_id")?,
        methods,
        method: method
            .map(|m| m.parse().map_err(|e| corrupt("method", e)))
            .transpose()?,
        secret_sealed: r.try_get("secret_sealed")?,
        app_code_hash: r.try_get("app_code_hash")?,
        state: EnrolState::parse(&state)?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

fn tx_insert(t: &NewTx<'_>) -> Query {
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
}

impl Store {
    /// Opens a pending enrolment for `t.user_name` with its login transaction `t`, unless
    /// another one of the user is open and unexpired. Open ones that expired are marked
    /// expired on the way (and returned, to be audited).
    pub async fn enrol_open(&self, t: &NewTx<'_>, methods: &[EnrollMethod]) -> Result<Opened> {
        let expire = query(
            "UPDATE enrolments SET state = 'expired' \
             WHERE user_name = $1 AND state = 'open' AND expires_at <= $2 RETURNING tx_id",
        )
        .bind(t.user_name)
        .bind(t.now);
        let open = query("SELECT tx_id FROM enrolments WHERE user_name = $1 AND state = 'open'")
            .bind(t.user_name);
        let tx = tx_insert(t);
        let enrol = query(format!(
            "INSERT INTO enrolments ({COLS}) VALUES ($1, $2, $3, $4, $5, NULL, NULL, NULL, 'open', $6, $7)"
        ))
        .bind(t.id)
        .bind(t.user_name)
        .bind(t.machine_id)
        .bind(t.client_id)
        .bind(methods_text(methods))
        .bind(t.now)
        .bind(t.expires_at);
        let opened = self
            .writer()
            .transaction(true, move |c| {
                let expired = expire
                    .fetch_all_on(c)?
                    .iter()
                    .map(|r| r.try_get::<String, _>(0usize))
                    .collect::<Result<Vec<_>>>()?;
                if open.fetch_optional_on(c)?.is_some() {
                    return Ok(Opened::Busy { expired });
                }
                tx.execute_on(c)?;
                enrol.execute_on(c)?;
                Ok(Opened::Opened { expired })
            })
            .await;
        match opened {
            // The unique index: another instance opened one in between.
            Err(StoreError::Unique(_)) => Ok(Opened::Busy { expired: vec![] }),
            other => other,
        }
    }

    pub async fn enrol_get(&self, tx_id: &str) -> Result<Option<EnrolRow>> {
        let row = query(format!("SELECT {COLS} FROM enrolments WHERE tx_id = $1"))
            .bind(tx_id)
            .quick()
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Records the method picked, once, while the enrolment is open and unexpired: with the
    /// sealed seed (`totp`) or the registration code, stored for the user in the same
    /// transaction (`app`). True for exactly one caller.
    pub async fn enrol_choose(
        &self,
        tx_id: &str,
        method: EnrollMethod,
        secret_sealed: Option<&str>,
        app: Option<AppLink<'_>>,
        now: i64,
    ) -> Result<bool> {
        let choose = query(
            "UPDATE enrolments SET method = $2, secret_sealed = $3, app_code_hash = $4 \
             WHERE tx_id = $1 AND state = 'open' AND method IS NULL AND expires_at > $5 \
             RETURNING user_name",
        )
        .bind(tx_id)
        .bind(method.as_str())
        .bind(secret_sealed)
        .bind(app.as_ref().map(|a| a.code_hash))
        .bind(now);
        let link = app.map(|a| (a.code_hash.to_string(), a.expires_at));
        self.writer()
            .transaction(true, move |c| {
                let Some(row) = choose.fetch_optional_on(c)? else {
                    return Ok(false);
                };
                if let Some((hash, expires_at)) = &link {
                    let user: String = row.try_get(0usize)?;
                    query(
                        "INSERT INTO app_links (code_hash, user_name, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(hash.as_str())
                    .bind(user.as_str())
                    .bind(now)
                    .bind(*expires_at)
                    .execute_on(c)?;
                }
                Ok(true)
            })
            .await
    }

    /// Finishes an open, unexpired enrolment as done; with `token` (an authenticator's first
    /// code confirmed it) the token is stored, the login transaction finished and the user's
    /// failures cleared in the same transaction. True for exactly one caller.
    pub async fn enrol_finish(
        &self,
        tx_id: &str,
        token: Option<TokenRow>,
        now: i64,
    ) -> Result<bool> {
        let done = query(
            "UPDATE enrolments SET state = 'done' \
             WHERE tx_id = $1 AND state = 'open' AND expires_at > $2 RETURNING user_name",
        )
        .bind(tx_id)
        .bind(now);
        let finish = query("UPDATE login_tx SET done = 1 WHERE id = $1 AND done = 0").bind(tx_id);
        let insert = token.as_ref().map(super::tokens::insert_query);
        let failed = query("UPDATE enrolments SET state = 'failed' WHERE tx_id = $1").bind(tx_id);
        self.writer()
            .transaction(true, move |c| {
                let Some(row) = done.fetch_optional_on(c)? else {
                    return Ok(false);
                };
                if let Some(insert) = &insert {
                    if finish.execute_on(c)?.rows_affected() != 1 {
                        // The login ended meanwhile: keep nothing.
                        failed.execute_on(c)?;
                        return Ok(false);
                    }
                    insert.execute_on(c)?;
                    let user: String = row.try_get(0usize)?;
                    query("UPDATE users SET failures = 0, locked_until = 0 WHERE name = $1")
                        .bind(user.as_str())
                        .execute_on(c)?;
                }
                Ok(true)
            })
            .await
    }

    /// Ends an open enrolment as `state` (expired, failed); true when it was open.
    pub async fn enrol_end(&self, tx_id: &str, state: EnrolState) -> Result<bool> {
        let res = query("UPDATE enrolments SET state = $2 WHERE tx_id = $1 AND state = 'open'")
            .bind(tx_id)
            .bind(state.as_str())
            .execute(self.writer())
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// The open enrolment that handed out the registration code with this hash.
    pub async fn enrol_by_app_code(&self, code_hash: &str) -> Result<Option<String>> {
        query_scalar("SELECT tx_id FROM enrolments WHERE app_code_hash = $1 AND state = 'open'")
            .bind(code_hash)
            .fetch_optional(self.pool())
            .await
    }

    /// Whether the registration code with this hash was redeemed.
    pub async fn app_link_used(&self, code_hash: &str) -> Result<bool> {
        let used: Option<Option<i64>> =
            query_scalar("SELECT used_at FROM app_links WHERE code_hash = $1")
                .bind(code_hash)
                .quick()
                .fetch_optional(self.pool())
                .await?;
        Ok(matches!(used, Some(Some(_))))
    }

    /// Grace logins `user` has spent.
    pub async fn grace_used(&self, user: &str) -> Result<i64> {
        let used: Option<i64> = query_scalar("SELECT used FROM enrol_grace WHERE user_name = $1")
            .bind(user)
            .quick()
            .fetch_optional(self.pool())
            .await?;
        Ok(used.unwrap_or(0))
    }

    /// Spends one of `user`'s `max` grace logins on the open enrolment `tx_id`: the count,
    /// the enrolment (skipped) and its login transaction (finished) change together or not
    /// at all.
    pub async fn grace_take(&self, tx_id: &str, user: &str, max: i64, now: i64) -> Result<Grace> {
        let ensure = query(
            "INSERT INTO enrol_grace (user_name, used) VALUES ($1, 0) ON CONFLICT DO NOTHING",
        )
        .bind(user);
        let spend = query(
            "UPDATE enrol_grace SET used = used + 1 WHERE user_name = $1 AND used < $2 RETURNING used",
        )
        .bind(user)
        .bind(max);
        let give_back =
            query("UPDATE enrol_grace SET used = used - 1 WHERE user_name = $1").bind(user);
        let skip = query(
            "UPDATE enrolments SET state = 'skipped' \
             WHERE tx_id = $1 AND user_name = $2 AND state = 'open' AND expires_at > $3",
        )
        .bind(tx_id)
        .bind(user)
        .bind(now);
        let finish = query("UPDATE login_tx SET done = 1 WHERE id = $1 AND done = 0").bind(tx_id);
        self.writer()
            .transaction(true, move |c| {
                ensure.execute_on(c)?;
                let Some(row) = spend.fetch_optional_on(c)? else {
                    return Ok(Grace::NoneLeft);
                };
                if skip.execute_on(c)?.rows_affected() != 1
                    || finish.execute_on(c)?.rows_affected() != 1
                {
                    give_back.execute_on(c)?;
                    return Ok(Grace::Gone);
                }
                Ok(Grace::Spent {
                    used: row.try_get(0usize)?,
                })
            })
            .await
    }

    /// Deletes enrolments that ended before `before` (unix seconds).
    pub async fn enrol_purge(&self, before: i64) -> Result<u64> {
        let res = query("DELETE FROM enrolments WHERE state <> 'open' AND expires_at < $1")
            .bind(before)
            .execute(self.writer())
            .await?;
        Ok(res.rows_affected())
    }
}
