//! Account management (may this user log in at all, whatever authenticated them) and the
//! user's run of failures.

use super::messages::Said;
use super::offline::Answered;
use super::{Actor, Engine, Result, now};
use crate::policy;
use crate::store::UserRow;
use latchkey_proto::admin::{Policy, UnknownUser};
use latchkey_proto::login::AccountStatus;
use latchkey_proto::offline::WithOffline;
use latchkey_proto::{ClientId, Method, UserName};

impl Engine {
    /// `POST /v1/account/check`: a disabled or locked-out user may not log in, whatever
    /// authenticated them (e.g. an SSH key that skipped PAM authentication).
    pub async fn account_check(
        &self,
        machine_id: &str,
        user: &UserName,
        client_id: &ClientId,
    ) -> Result<WithOffline<AccountStatus>> {
        let (allowed, message) = self.account_usable(machine_id, user, client_id).await?;
        let attach = Answered::Account { allowed }.attach();
        let offline = self.attachment(machine_id, user, attach).await;
        Ok(WithOffline {
            inner: AccountStatus { allowed, message },
            offline,
        })
    }

    async fn account_usable(
        &self,
        machine_id: &str,
        user: &UserName,
        client_id: &ClientId,
    ) -> Result<(bool, String)> {
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
        let generic = || (false, Said::NoMethod.text());
        let ((allowed, message), why) = match found {
            None if policy.unknown_user == UnknownUser::Allow => {
                ((true, String::new()), "unknown user allowed by policy")
            }
            None => (generic(), "unknown user"),
            Some((u, ..)) if !u.enabled => (generic(), "user disabled"),
            Some((u, ..)) if u.locked_until > now => (
                (
                    false,
                    Said::Locked {
                        until: u.locked_until,
                        now,
                    }
                    .text(),
                ),
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

    /// A success ends the run of failures. Skipped when there is none: a write per login
    /// would serialize every login on the database's write lock.
    pub(super) async fn clear_failures(&self, user: &UserRow) -> Result<()> {
        if user.failures != 0 || user.locked_until != 0 {
            self.store.user_reset_failures(&user.name).await?;
        }
        Ok(())
    }

    /// A success of an answer that reserved a failure (open_step): the run ends, including
    /// the reservation itself, whatever the snapshot read before it said.
    pub(super) async fn clear_reserved(&self, user: &UserRow) -> Result<()> {
        Ok(self.store.user_reset_failures(&user.name).await?)
    }

    /// [`Engine::clear_reserved`] for the lockout the step counted toward: a portal
    /// sign-in's success ends the portal's run and leaves the login's alone.
    pub(super) async fn clear_reserved_of(
        &self,
        counter: super::login::Counter,
        user: &UserRow,
    ) -> Result<()> {
        match counter {
            super::login::Counter::Login => self.clear_reserved(user).await,
            super::login::Counter::Portal => {
                Ok(self.store.portal_failures_reset(&user.name).await?)
            }
        }
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
}

/// Whether the policy lets a user with these counts of OATH tokens, token apps, smartcards
/// and security keys use any method at all (what a login start would offer, by count).
fn has_usable_method(policy: &Policy, tokens: i64, apps: i64, cards: i64, keys: i64) -> bool {
    let allows = |m: Method| policy.methods.contains(&m);
    (tokens > 0 && allows(Method::Otp))
        || (apps > 0 && allows(Method::Push))
        || (cards > 0 && allows(Method::Smartcard))
        || (keys > 0 && allows(Method::Fido2))
}
