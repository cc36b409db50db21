//! A code's answer to a login transaction: what the code matches is computed here, the
//! limits and the verdict are one store transaction (`Store::tx_answer_otp`).

use super::*;

impl State {
    pub async fn login_otp(&self, machine_id: &str, tx_id: &str, code: &str) -> Result<StepAnswer> {
        let now = now();
        let open = match self
            .open_step(machine_id, tx_id, Method::Otp, "login.otp", now)
            .await?
        {
            Ok(open) => open,
            Err(denied) => {
                return Ok(StepAnswer {
                    result: denied,
                    bundle_user: None,
                });
            }
        };
        let bundle_user = Some((open.user.name.clone(), open.user_has_offline));
        let result = self.otp_answer(open, tx_id, code, now).await?;
        Ok(StepAnswer {
            result,
            bundle_user,
        })
    }

    /// A code's answer to an open transaction: what the code matches is computed here, the
    /// limits and the verdict in one store transaction.
    async fn otp_answer(
        &self,
        open: OpenStep<'_>,
        tx_id: &str,
        code: &str,
        now: i64,
    ) -> Result<LoginStepResult> {
        let OpenStep {
            ctx,
            user,
            policy,
            tokens,
            ..
        } = open;
        let matches = self.otp_matches(&tokens, code, now)?;
        let lock_policy = policy.clone();
        let verdict = self
            .store
            .tx_answer_otp(
                tx_id,
                &user.name,
                now,
                i64::from(policy.max_attempts),
                move |n| policy::lockout_secs(&lock_policy, n),
                matches,
            )
            .await?;
        let (attempt, failures, locked_until, replayed) = match verdict {
            OtpVerdict::Success { token_id } => {
                ctx.audit("ok", format!("code accepted (token {token_id})"))
                    .await;
                return Ok(LoginStepResult::Success {
                    message: "MFA verified".into(),
                });
            }
            OtpVerdict::Refused(why) => return ctx.unjudged(why, now).await,
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
            let reason = lock_message(locked_until, now);
            let why = format!("{why}; {failures} failures: locked out");
            return ctx.deny(false, &why, &reason).await;
        }
        let left = i64::from(policy.max_attempts) - attempt;
        if left <= 0 {
            let why = format!("{why}; no attempts left");
            return ctx
                .deny(
                    false,
                    &why,
                    "Code rejected: too many wrong codes, start again",
                )
                .await;
        }
        ctx.audit("fail", format!("{why}; {left} attempts left"))
            .await;
        let plural = if left == 1 { "" } else { "s" };
        let message = if replayed {
            format!("Code already used, wait for the next one ({left} attempt{plural} left)")
        } else {
            format!("Code rejected, {left} attempt{plural} left")
        };
        Ok(LoginStepResult::Retry {
            attempts_left: left as u32,
            message,
        })
    }
}
