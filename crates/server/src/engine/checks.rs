//! Checking codes against a user's tokens, counting failures, and the checks that are not a
//! login transaction (account management, admin verification, HOTP resynchronisation).

use super::*;
use crate::policy;
use crate::state::{Actor, State, now};
use crate::store::{StoreError, TokenRow, UserRow};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::otp::{OtpParams, resync_hotp, verify_hotp, verify_totp};
use latchkey_proto::TokenKind;
use latchkey_proto::admin::{Policy, UnknownUser};

impl State {
    /// Account management: a disabled or locked-out user may not log in, whatever
    /// authenticated them (e.g. an SSH key that skipped PAM authentication).
    pub async fn account_check(
        &self,
        machine_id: &str,
        user: &str,
        client_id: &str,
    ) -> Result<(bool, String)> {
        validate_user_name(user)?;
        validate_client_id(client_id)?;
        // The same read as a login start: the user with the number of each kind of token.
        let found = self.store.user_get_with_counts(user).await?;
        let groups = found
            .as_ref()
            .map(|(u, ..)| u.groups.clone())
            .unwrap_or_default();
        let policy = self.policy_for(client_id, user, &groups).await?;
        let now = now();
        // Unknown, disabled and token-less users get the same answer, as at login start;
        // the audit line keeps the reason.
        let generic = || (false, GENERIC_DENY.to_string());
        let ((allowed, message), why) = match found {
            None if policy.unknown_user == UnknownUser::Allow => {
                ((true, String::new()), "unknown user allowed by policy")
            }
            None => (generic(), "unknown user"),
            Some((u, ..)) if !u.enabled => (generic(), "user disabled"),
            Some((u, ..)) if u.locked_until > now => (
                (false, lock_message(u.locked_until, now)),
                "user locked out",
            ),
            Some((_, tokens, apps, cards, keys))
                if policy.mfa_required
                    && !has_usable_method(&policy, tokens, apps, cards, keys) =>
            {
                (generic(), "no usable MFA method")
            }
            Some(_) => ((true, String::new()), "account usable"),
        };
        let actor = Actor::Machine(machine_id.to_string());
        self.audit(
            &actor,
            "account.check",
            Some(user),
            Some(client_id),
            if allowed { "ok" } else { "deny" },
            why,
        )
        .await;
        Ok((allowed, message))
    }

    /// Admin check of a code (`latchkey token verify`): same rules as a login, consumes the
    /// code and counts failures toward the lockout.
    pub async fn admin_verify(
        &self,
        user_name: &str,
        code: &str,
    ) -> Result<Option<(bool, String)>> {
        let Some(user) = self.store.user_get(user_name).await? else {
            return Ok(None);
        };
        let now = now();
        if !user.enabled {
            return Ok(Some((false, "user is disabled".into())));
        }
        if user.locked_until > now {
            return Ok(Some((false, lock_message(user.locked_until, now))));
        }
        let policy = self
            .policy_for(policy::FALLBACK, &user.name, &user.groups)
            .await?;
        let result = match self.check_otp(&user, code, now).await? {
            OtpCheck::Ok { token_id } => {
                self.clear_failures(&user).await?;
                (true, format!("code accepted (token {token_id})"))
            }
            check => {
                let why = check.failure_words();
                let (_, until) = self.count_failure(&user, &policy, now).await?;
                if until > 0 {
                    (false, format!("{why}; {}", lock_message(until, now)))
                } else {
                    (false, why.to_string())
                }
            }
        };
        self.audit(
            &Actor::Admin,
            "token.verify",
            Some(user_name),
            None,
            if result.0 { "ok" } else { "fail" },
            &result.1,
        )
        .await;
        Ok(Some(result))
    }

    /// A success ends the run of failures. Skipped when there is none: a write per login
    /// would serialize every login on the database's write lock.
    pub(crate) async fn clear_failures(&self, user: &UserRow) -> Result<()> {
        if user.failures != 0 || user.locked_until != 0 {
            self.store.user_reset_failures(&user.name).await?;
        }
        Ok(())
    }

    /// A success of an answer that reserved a failure (open_step): the run ends, including
    /// the reservation itself, whatever the snapshot read before it said.
    pub(crate) async fn clear_reserved(&self, user: &UserRow) -> Result<()> {
        Ok(self.store.user_reset_failures(&user.name).await?)
    }

    /// Counts a failure toward the user's lockout: (failures, locked_until or 0).
    pub(super) async fn count_failure(
        &self,
        user: &UserRow,
        policy: &Policy,
        now: i64,
    ) -> Result<(i64, i64)> {
        Ok(self
            .store
            .user_record_failure(&user.name, now, |n| policy::lockout_secs(policy, n))
            .await?)
    }

    fn open_secret(&self, t: &TokenRow) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let sealed = B64
            .decode(&t.secret_sealed)
            .map_err(|_| StoreError::Corrupt(format!("token {} secret is not base64", t.id)))?;
        self.master.open(&sealed, t.id.as_bytes()).map_err(|_| {
            EngineError::Store(StoreError::Corrupt(format!(
                "token {} secret does not open with the master key",
                t.id
            )))
        })
    }

    /// Which of the user's OATH tokens `code` matches, and at which step: `(token id, step,
    /// the token's last used step as read)`. Every token is computed whatever matches (same
    /// work for a right and a wrong code). Nothing is decided here: the verdict, with the
    /// replay floor and the limits, is [`crate::store::Store::tx_answer_otp`]'s, in one
    /// transaction.
    pub(super) fn otp_matches(
        &self,
        tokens: &[TokenRow],
        code: &str,
        now: i64,
    ) -> Result<Vec<(String, i64, i64)>> {
        let mut found = Vec::new();
        for t in tokens {
            if !matches!(t.kind, TokenKind::Totp | TokenKind::Hotp | TokenKind::App) {
                continue;
            }
            let secret = self.open_secret(t)?;
            let params = OtpParams {
                algorithm: t.algorithm,
                digits: t.digits,
                period: t.period,
            };
            let matched = match t.kind {
                // Tokens stored here are OATH tokens; an app's seed is stored as TOTP.
                TokenKind::Totp | TokenKind::App => {
                    // Search without the replay floor so a replay can be told apart.
                    verify_totp(
                        &secret,
                        code,
                        now.max(0) as u64,
                        params,
                        self.cfg.totp_window,
                        None,
                    )
                }
                TokenKind::Hotp => {
                    // Start at the last used counter so its replay is recognised.
                    let start = t.used.max(0) as u64;
                    verify_hotp(&secret, code, start, self.cfg.hotp_look_ahead + 1, params)
                }
                // Certificates and security keys have no code.
                _ => continue,
            };
            if let Some(step) = matched {
                found.push((
                    t.id.clone(),
                    i64::try_from(step).unwrap_or(i64::MAX),
                    t.used,
                ));
            }
        }
        Ok(found)
    }

    /// Checks `code` against the user's OATH tokens outside a login (admin verify) and uses
    /// it up when it matches.
    pub(super) async fn check_otp(&self, user: &UserRow, code: &str, now: i64) -> Result<OtpCheck> {
        let tokens = self.store.tokens_of(&user.name).await?;
        let mut replayed = false;
        for (id, step, used) in self.otp_matches(&tokens, code, now)? {
            if step > used && self.store.token_consume(&id, step, now).await? {
                return Ok(OtpCheck::Ok { token_id: id });
            }
            replayed = true;
        }
        Ok(if replayed {
            OtpCheck::Replayed
        } else {
            OtpCheck::Wrong
        })
    }

    /// HOTP resynchronisation with two consecutive codes.
    pub async fn hotp_resync(
        &self,
        token_id: &str,
        code1: &str,
        code2: &str,
    ) -> Result<Option<bool>> {
        let Some(t) = self.store.token_get(token_id).await? else {
            return Ok(None);
        };
        if t.kind != TokenKind::Hotp {
            return Err(EngineError::Invalid(
                "only HOTP tokens can be resynchronised".into(),
            ));
        }
        let secret = self.open_secret(&t)?;
        let params = OtpParams {
            algorithm: t.algorithm,
            digits: t.digits,
            period: t.period,
        };
        let next = (t.used + 1).max(0) as u64;
        let found = resync_hotp(
            &secret,
            code1,
            code2,
            next,
            self.cfg.hotp_resync_window,
            params,
        );
        let ok = match found {
            Some(c) => {
                self.store
                    .token_consume(&t.id, i64::try_from(c).unwrap_or(i64::MAX), now())
                    .await?
            }
            None => false,
        };
        self.audit(
            &Actor::Admin,
            "token.resync",
            Some(&t.user_name),
            None,
            if ok { "ok" } else { "fail" },
            format!("token {}", t.id),
        )
        .await;
        Ok(Some(ok))
    }
}

/// Whether the policy lets a user with these counts of OATH tokens, token apps, smartcards
/// and security keys use any method at all (what a login start would offer, by count).
fn has_usable_method(policy: &Policy, tokens: i64, apps: i64, cards: i64, keys: i64) -> bool {
    use latchkey_proto::Method;
    let allows = |m: Method| policy.methods.contains(&m);
    (tokens > 0 && allows(Method::Otp))
        || (apps > 0 && allows(Method::Push))
        || (cards > 0 && allows(Method::Smartcard))
        || (keys > 0 && allows(Method::Fido2))
}
