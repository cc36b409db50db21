//! One-time codes: what a code matches is computed here; at login the limits and the verdict
//! are one store transaction (`Store::tx_answer_otp`), outside a login (admin verify) the
//! code is used up here.

use super::login::{Limits, OpenStep};
use super::messages::Said;
use super::{Engine, EngineError, Result, now};

use crate::store::{OtpRules, OtpVerdict, StoreError, TokenRow, UserRow};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::otp::{OtpParams, verify_hotp, verify_totp};
use latchkey_proto::login::LoginStepResult;
use latchkey_proto::offline::WithOffline;
use latchkey_proto::{Method, TokenKind};

/// Result of checking a code against a user's tokens outside a login.
pub(super) enum OtpCheck {
    /// The code matched and was used up.
    Ok {
        token_id: String,
    },
    Wrong,
    Replayed,
}

impl OtpCheck {
    pub(super) fn failure_words(&self) -> &'static str {
        match self {
            OtpCheck::Replayed => "code already used",
            _ => "wrong code",
        }
    }
}

/// Whether a token app's TOTP seed may answer ([`OtpRules::app_seeds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AppSeeds {
    /// A login screen, a token test: the seed is a code token like any other.
    Take,
    /// The portal's code + push sign-in: the seed is on the phone that approves the push.
    Refuse,
}

/// A code's answer: the login step's result, or (with [`AppSeeds::Refuse`]) a right code
/// of a token app's seed, neither used up nor counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OtpJudged {
    Step(LoginStepResult),
    AppSeed,
}

impl Engine {
    /// `POST /v1/login/{tx}/otp`, with what the offline decision attaches to the answer.
    pub async fn login_otp(
        &self,
        machine_id: &str,
        tx_id: &str,
        code: &str,
    ) -> Result<WithOffline<LoginStepResult>> {
        let now = now();
        let (result, user) = match self
            .open_step(
                machine_id,
                tx_id,
                Method::Otp,
                Limits::WithVerdict,
                "login.otp",
                now,
            )
            .await?
        {
            Ok(open) => {
                let user = Some((open.user.name.clone(), open.user_has_offline));
                (self.otp_answer(open, tx_id, code, now).await?, user)
            }
            Err(denied) => (denied, None),
        };
        Ok(self.with_offline(machine_id, result, user).await)
    }

    /// A code's answer to an open transaction, any OATH token (an app's seed too).
    pub(super) async fn otp_answer(
        &self,
        open: OpenStep<'_>,
        tx_id: &str,
        code: &str,
        now: i64,
    ) -> Result<LoginStepResult> {
        match self
            .otp_judge(open, tx_id, code, now, AppSeeds::Take)
            .await?
        {
            OtpJudged::Step(r) => Ok(r),
            // Not asked for: every seed is taken.
            OtpJudged::AppSeed => Ok(Said::CodeRejected { left: 0 }.deny()),
        }
    }

    /// A code's answer to an open transaction: what the code matches is computed here, the
    /// limits and the verdict (with `seeds`) in one store transaction.
    pub(super) async fn otp_judge(
        &self,
        open: OpenStep<'_>,
        tx_id: &str,
        code: &str,
        now: i64,
        seeds: AppSeeds,
    ) -> Result<OtpJudged> {
        let OpenStep {
            ctx,
            user,
            policy,
            tokens,
            ..
        } = open;
        let matches = self.otp_matches(&tokens, code, now)?;
        let verdict = self
            .store
            .tx_answer_otp(
                tx_id,
                &user.name,
                now,
                OtpRules {
                    max_attempts: i64::from(policy.max_attempts),
                    lockout: ctx.counter.lockout(&policy),
                    app_seeds: seeds == AppSeeds::Take,
                },
                matches,
            )
            .await?;
        let (attempt, failures, locked_until, replayed) = match verdict {
            OtpVerdict::Success { token_id } => {
                ctx.audit("ok", format!("code accepted (token {token_id})"))
                    .await;
                return Ok(OtpJudged::Step(Said::CodeVerified.success()));
            }
            OtpVerdict::Refused(why) => return ctx.unjudged(why, now).await.map(OtpJudged::Step),
            OtpVerdict::AppSeed => {
                ctx.audit(
                    "deny",
                    "code of a token app's seed: not a second device for the app's push",
                )
                .await;
                return Ok(OtpJudged::AppSeed);
            }
            OtpVerdict::Failed {
                attempt,
                failures,
                locked_until,
                replayed,
            } => (attempt, failures, locked_until, replayed),
        };
        let why = if replayed {
            "code already used"
        } else {
            "wrong code"
        };
        // The store finished the transaction already when the answer locked the user or
        // used the last attempt.
        if locked_until > 0 {
            let said = Said::Locked {
                until: locked_until,
                now,
            };
            let why = format!("{why}; {failures} failures: locked out");
            return ctx.deny(false, &why, said).await.map(OtpJudged::Step);
        }
        let left = i64::from(policy.max_attempts) - attempt;
        if left <= 0 {
            let why = format!("{why}; no attempts left");
            return ctx
                .deny(false, &why, Said::CodesExhausted)
                .await
                .map(OtpJudged::Step);
        }
        ctx.audit("fail", format!("{why}; {left} attempts left"))
            .await;
        let said = if replayed {
            Said::CodeReplayed { left }
        } else {
            Said::CodeRejected { left }
        };
        Ok(OtpJudged::Step(said.retry(left)))
    }

    pub(super) fn open_secret(&self, t: &TokenRow) -> Result<zeroize::Zeroizing<Vec<u8>>> {
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
}
