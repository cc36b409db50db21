//! Answers to a login transaction: the limits taken before a verdict (attempts, the
//! user's lockout or the portal's), and the code's verdict, each in one store transaction
//! so parallel answers cannot pass a limit together.

use super::{Result, Store, query};

/// Why an answer to a login was refused without being judged (limits first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unjudged {
    /// The transaction is finished, expired or unknown: nothing was counted.
    TxGone,
    /// No attempt was left on the transaction: it is finished now.
    NoAttempts,
    /// The user is locked out until `until`: the transaction is finished now.
    Locked { until: i64 },
}

/// What [`Store::tx_reserve_answer`] left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// Judge the answer: it is the transaction's `attempt`-th and the user's `failures`-th
    /// answer since the last success (both already counted).
    Judge {
        attempt: i64,
        failures: i64,
    },
    Refused(Unjudged),
}

/// The verdict on a code answering a login ([`Store::tx_answer_otp`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtpVerdict {
    /// The code was used up with `token_id`; the transaction is finished and the user's run
    /// of failures ended.
    Success {
        token_id: String,
    },
    /// Counted as the transaction's `attempt`-th answer and the user's `failures`-th failure;
    /// `locked_until` is set (non-zero) when this failure locked the user. `replayed`: the
    /// code was right but already used. The transaction is finished when the user is locked
    /// or `max_attempts` is reached.
    Failed {
        attempt: i64,
        failures: i64,
        locked_until: i64,
        replayed: bool,
    },
    Refused(Unjudged),
    /// The code is right, but only for a token app's TOTP seed, which this answer does not
    /// take ([`OtpRules::app_seeds`]): nothing was used up or counted.
    AppSeed,
}

/// Which lockout an answer's failures count toward.
#[derive(Debug, Clone, Copy)]
pub enum Lockout<F> {
    /// The user's login lockout (`users.failures`, `locked_until`): `F(n)` is the lockout
    /// after the n-th failure of a run (0: none).
    Login(F),
    /// The portal sign-in's own (`users.web_failures`, `web_locked_until`): `max_failures`
    /// in a row lock portal sign-ins for `lock_secs`; a lock that has run out starts the
    /// count over. The login lockout is read (a user locked out of logins is refused here
    /// too) but never counted, set or cleared.
    Portal { max_failures: i64, lock_secs: i64 },
}

/// SQL: counts one portal sign-in failure of user `$1` at `$2` unless a lock of either
/// kind holds (`$3` failures lock for `$4` seconds), in one conditional UPDATE, as an admin
/// sign-in's attempt is counted. Returns the failures and the portal lock (0: none).
const PORTAL_FAILURE: &str = "UPDATE users SET web_failures = (CASE WHEN web_locked_until > 0 THEN 1 ELSE web_failures + 1 END), \
     web_locked_until = CASE WHEN (CASE WHEN web_locked_until > 0 THEN 1 ELSE web_failures + 1 END) >= $3 THEN $2 + $4 ELSE 0 END \
     WHERE name = $1 AND web_locked_until <= $2 AND locked_until <= $2 RETURNING web_failures, web_locked_until";

/// SQL: ends the portal sign-in failures of user `$1`.
const PORTAL_RESET: &str = "UPDATE users SET web_failures = 0, web_locked_until = 0 \
     WHERE name = $1 AND (web_failures <> 0 OR web_locked_until <> 0)";

fn portal_failure(user: &str, now: i64, max_failures: i64, lock_secs: i64) -> super::db::Query {
    query(PORTAL_FAILURE)
        .bind(user.to_string())
        .bind(now)
        .bind(max_failures)
        .bind(lock_secs)
}

/// How [`Store::tx_answer_otp`] judges a code besides what it matched.
pub struct OtpRules<F> {
    /// The transaction's attempts.
    pub max_attempts: i64,
    /// The lockout the failures count toward.
    pub lockout: Lockout<F>,
    /// Whether a token app's TOTP seed may answer. Not in the portal's code + push sign-in:
    /// the seed lives on the phone that approves the push, and one device is one factor.
    pub app_seeds: bool,
}

impl Store {
    /// Decides a code's answer to transaction `id` of `user` in one write transaction: the
    /// limits (the transaction's `max_attempts`, the user's lockout) are read, the answer is
    /// judged against `matches` (what the code matched, from the engine: `(token id, step,
    /// last used step as read)`), and the outcome is written, all under the writer's lock.
    /// However many answers arrive at once, no more than the limits allow are judged, and
    /// no answer sees the limits before another's outcome is counted (STYLE: a limit is
    /// checked and consumed in one step). A success costs the same two row updates as
    /// before the limits moved here (the code's step, the transaction), plus the user's
    /// reset only when it had failures.
    ///
    /// Without `rules.app_seeds`, a match of a token app's seed (`tokens.app_id` set, or
    /// kind `app`) is read in the same transaction and not taken: a code right only for
    /// such seeds is [`OtpVerdict::AppSeed`], neither used up nor counted. A seed's
    /// `app_id` is set before the registration answers it to the app, so no code of a seed
    /// is ever known while it looks like an authenticator's.
    pub async fn tx_answer_otp(
        &self,
        id: &str,
        user: &str,
        now: i64,
        rules: OtpRules<impl Fn(i64) -> i64 + Send + 'static>,
        matches: Vec<(String, i64, i64)>,
    ) -> Result<OtpVerdict> {
        let OtpRules {
            max_attempts,
            lockout,
            app_seeds,
        } = rules;
        let (id, user) = (id.to_string(), user.to_string());
        self.writer()
            .transaction(true, move |c| {
                let limits = query(
                    "SELECT t.attempts, t.done, t.expires_at, u.failures, u.locked_until, \
                     u.web_locked_until FROM login_tx t JOIN users u ON u.name = t.user_name \
                     WHERE t.id = $1 AND u.name = $2",
                )
                .bind(id.as_str())
                .bind(user.as_str())
                .fetch_optional_on(c)?;
                let Some(r) = limits else {
                    return Ok(OtpVerdict::Refused(Unjudged::TxGone));
                };
                let attempts: i64 = r.try_get(0usize)?;
                let done = r.try_get::<i64, _>(1usize)? != 0;
                let expires_at: i64 = r.try_get(2usize)?;
                let failures: i64 = r.try_get(3usize)?;
                let locked_until: i64 = r.try_get(4usize)?;
                let web_locked_until: i64 = r.try_get(5usize)?;
                if done || expires_at <= now {
                    return Ok(OtpVerdict::Refused(Unjudged::TxGone));
                }
                let finish = || {
                    query("UPDATE login_tx SET done = 1 WHERE id = $1")
                        .bind(id.as_str())
                        .execute_on(c)
                };
                if attempts >= max_attempts {
                    finish()?;
                    return Ok(OtpVerdict::Refused(Unjudged::NoAttempts));
                }
                // Locked is locked: a portal answer is refused under either lock.
                let lock = match lockout {
                    Lockout::Login(_) => locked_until,
                    Lockout::Portal { .. } => locked_until.max(web_locked_until),
                };
                if lock > now {
                    finish()?;
                    return Ok(OtpVerdict::Refused(Unjudged::Locked { until: lock }));
                }
                let mut replayed = false;
                let mut seed_matched = false;
                for (token, step, used) in &matches {
                    if !app_seeds {
                        let seed = query(
                            "SELECT 1 FROM tokens WHERE id = $1 AND (app_id IS NOT NULL OR kind = 'app')",
                        )
                        .bind(token.as_str())
                        .fetch_optional_on(c)?
                        .is_some();
                        if seed {
                            seed_matched = true;
                            continue;
                        }
                    }
                    if *step <= *used {
                        replayed = true;
                        continue;
                    }
                    let consumed = query(
                        "UPDATE tokens SET used = $1, last_used_at = $2 WHERE id = $3 AND used < $1",
                    )
                    .bind(*step)
                    .bind(now)
                    .bind(token.as_str())
                    .execute_on(c)?
                    .rows_affected()
                        == 1;
                    if !consumed {
                        replayed = true;
                        continue;
                    }
                    query("UPDATE login_tx SET attempts = attempts + 1, done = 1 WHERE id = $1")
                        .bind(id.as_str())
                        .execute_on(c)?;
                    match lockout {
                        Lockout::Login(_) if failures != 0 || locked_until != 0 => {
                            query(
                                "UPDATE users SET failures = 0, locked_until = 0 WHERE name = $1",
                            )
                            .bind(user.as_str())
                            .execute_on(c)?;
                        }
                        Lockout::Login(_) => {}
                        Lockout::Portal { .. } => {
                            query(PORTAL_RESET).bind(user.as_str()).execute_on(c)?;
                        }
                    }
                    return Ok(OtpVerdict::Success {
                        token_id: token.clone(),
                    });
                }
                if seed_matched && !replayed {
                    return Ok(OtpVerdict::AppSeed);
                }
                let attempt = attempts + 1;
                let (failures, locked_until) = match &lockout {
                    Lockout::Login(lock_for) => {
                        let failures = failures + 1;
                        let lock = lock_for(failures);
                        let locked_until = if lock > 0 { now + lock } else { 0 };
                        query(
                            "UPDATE users SET failures = $1, \
                             locked_until = CASE WHEN locked_until < $2 THEN $2 ELSE locked_until END WHERE name = $3",
                        )
                        .bind(failures)
                        .bind(locked_until)
                        .bind(user.as_str())
                        .execute_on(c)?;
                        (failures, locked_until)
                    }
                    Lockout::Portal {
                        max_failures,
                        lock_secs,
                    } => {
                        // No lock holds (read above, under the same writer): counted.
                        let r = portal_failure(&user, now, *max_failures, *lock_secs)
                            .fetch_optional_on(c)?;
                        match r {
                            Some(r) => (r.try_get(0usize)?, r.try_get(1usize)?),
                            None => (0, 0),
                        }
                    }
                };
                let ends = locked_until > 0 || attempt >= max_attempts;
                query("UPDATE login_tx SET attempts = $1, done = $2 WHERE id = $3")
                    .bind(attempt)
                    .bind(i64::from(ends))
                    .bind(id.as_str())
                    .execute_on(c)?;
                Ok(OtpVerdict::Failed {
                    attempt,
                    failures,
                    locked_until,
                    replayed,
                })
            })
            .await
    }

    /// Reserves the right to judge one answer to transaction `id` of `user`, before it is
    /// judged, in one database transaction: one of the transaction's `max_attempts` and one
    /// failure toward the user's lockout (a success clears it). So however many answers
    /// arrive at once, no more than the limits are ever judged: the 41st of 40 concurrent
    /// answers finds no attempt left, and with a lockout threshold of 5 the 6th finds the
    /// user locked (STYLE: a limit is checked and consumed in one step). `lock_for(n)` is
    /// the lockout after the n-th failure (0: none): the answer that would set it sets it
    /// at once, before it is judged, and a success clears it.
    ///
    /// With [`Lockout::Portal`] the failure is the portal's, counted by one conditional
    /// UPDATE that also refuses under a login lock; reaching `max_failures` sets the portal
    /// lock at once.
    pub async fn tx_reserve_answer(
        &self,
        id: &str,
        user: &str,
        now: i64,
        max_attempts: i64,
        lockout: Lockout<impl Fn(i64) -> i64 + Send + 'static>,
    ) -> Result<Reserved> {
        let attempt = query(
            "UPDATE login_tx SET attempts = attempts + 1 \
             WHERE id = $1 AND done = 0 AND expires_at > $2 AND attempts < $3 RETURNING attempts",
        )
        .bind(id)
        .bind(now)
        .bind(max_attempts);
        let state = query("SELECT done, expires_at FROM login_tx WHERE id = $1").bind(id);
        let finish = query("UPDATE login_tx SET done = 1 WHERE id = $1 AND done = 0").bind(id);
        let (failure, lock_for) = match lockout {
            Lockout::Login(lock_for) => (
                query(
                    "UPDATE users SET failures = failures + 1 WHERE name = $1 AND locked_until <= $2 \
                     RETURNING failures",
                )
                .bind(user)
                .bind(now),
                Some(lock_for),
            ),
            Lockout::Portal {
                max_failures,
                lock_secs,
            } => (portal_failure(user, now, max_failures, lock_secs), None),
        };
        let portal = lock_for.is_none();
        let locked =
            query("SELECT locked_until, web_locked_until FROM users WHERE name = $1").bind(user);
        let user = user.to_string();
        self.writer()
            .transaction(true, move |c| {
                let Some(attempt) = attempt.fetch_optional_on(c)? else {
                    let gone = match state.fetch_optional_on(c)? {
                        None => true,
                        Some(r) => {
                            r.try_get::<i64, _>("done")? != 0
                                || r.try_get::<i64, _>("expires_at")? <= now
                        }
                    };
                    if gone {
                        return Ok(Reserved::Refused(Unjudged::TxGone));
                    }
                    finish.execute_on(c)?;
                    return Ok(Reserved::Refused(Unjudged::NoAttempts));
                };
                let attempt: i64 = attempt.try_get(0usize)?;
                let Some(failures) = failure.fetch_optional_on(c)? else {
                    // Locked (or removed) since the answer's first read.
                    finish.execute_on(c)?;
                    let until = match locked.fetch_optional_on(c)? {
                        Some(r) if portal => r
                            .try_get::<i64, _>(0usize)?
                            .max(r.try_get::<i64, _>(1usize)?),
                        Some(r) => r.try_get::<i64, _>(0usize)?,
                        None => 0,
                    };
                    return Ok(Reserved::Refused(Unjudged::Locked { until }));
                };
                let failures: i64 = failures.try_get(0usize)?;
                // An answer that would lock the user if wrong locks it now, before it is
                // judged: answers arriving meanwhile find the user locked and are refused
                // unjudged. A success clears the lock with the failures. (The portal's
                // statement set its own lock already.)
                let lock = lock_for.as_ref().map_or(0, |f| f(failures));
                if lock > 0 {
                    query(
                        "UPDATE users SET locked_until = $1 WHERE name = $2 AND locked_until < $1",
                    )
                    .bind(now + lock)
                    .bind(user.as_str())
                    .execute_on(c)?;
                }
                Ok(Reserved::Judge { attempt, failures })
            })
            .await
    }

    /// Ends the user's run of portal sign-in failures (a portal sign-in succeeded).
    pub async fn portal_failures_reset(&self, user: &str) -> Result<()> {
        query(PORTAL_RESET)
            .bind(user)
            .quick()
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
