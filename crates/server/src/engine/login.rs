//! Starting a login, and the checks every answer to a login transaction shares whatever
//! the method: the transaction, the user, the policy and the limits.

use super::messages::Said;
use super::offline::Answered;
use super::validate::validate_opt;
use super::{Actor, Engine, EngineError, Result, new_tx_id, now};
use crate::policy;
use crate::store::{Lockout, NewTx, Reserved, TokenRow, TxView, Unjudged, UserRow};
use latchkey_proto::Method;
use latchkey_proto::admin::{Policy, UnknownUser};
use latchkey_proto::login::{LoginStart, LoginStartResult, LoginStepResult};
use latchkey_proto::offline::WithOffline;

/// One answer to a login transaction being decided (a code, a security key, a smartcard):
/// what the audit lines and denials need.
pub(super) struct StepCtx<'a> {
    pub(super) st: &'a Engine,
    pub(super) machine_id: &'a str,
    pub(super) tx_id: &'a str,
    pub(super) user: Option<String>,
    pub(super) client_id: Option<String>,
    /// Audit action, e.g. `login.otp`.
    pub(super) action: &'static str,
    /// (attempt of the transaction, failures of the user) this answer reserved before it
    /// was judged ([`crate::store::Store::tx_reserve_answer`]); (0, 0) before that.
    pub(super) reserved: (i64, i64),
    /// Which lockout the answer's failures count toward.
    pub(super) counter: Counter,
}

/// Which lockout a step's failures count toward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Counter {
    /// A login screen's answer, a token test: the user's login lockout (the policy's
    /// `lockout_threshold`).
    Login,
    /// A portal sign-in: its own per-user lockout ([`super::web_signin::PORTAL_MAX_FAILURES`]
    /// in a row, [`super::web_signin::PORTAL_LOCK_SECS`]), so that anyone who types a name
    /// cannot lock that user out of machine logins. A login lock still refuses it.
    Portal,
}

impl Counter {
    /// The store's rule for this counter under `policy`.
    pub(super) fn lockout(self, policy: &Policy) -> Lockout<impl Fn(i64) -> i64 + Send + 'static> {
        let policy = policy.clone();
        match self {
            Counter::Login => Lockout::Login(move |n| policy::lockout_secs(&policy, n)),
            Counter::Portal => Lockout::Portal {
                max_failures: super::web_signin::PORTAL_MAX_FAILURES,
                lock_secs: super::web_signin::PORTAL_LOCK_SECS,
            },
        }
    }
}

impl StepCtx<'_> {
    pub(super) async fn audit(&self, result: &str, detail: impl Into<String>) {
        let actor = Actor::Machine(self.machine_id.to_string());
        self.st
            .audit(
                &actor,
                self.action,
                self.user.as_deref(),
                self.client_id.as_deref(),
                result,
                detail,
            )
            .await;
    }

    /// Denies an answer the limits refused before it was judged (the store finished the
    /// transaction already).
    pub(super) async fn unjudged(&self, why: Unjudged, now: i64) -> Result<LoginStepResult> {
        match why {
            Unjudged::TxGone => {
                self.deny(
                    false,
                    "transaction finished or expired meanwhile",
                    Said::TxGone,
                )
                .await
            }
            Unjudged::NoAttempts => {
                self.deny(false, "no attempts left: not judged", Said::NoAttempts)
                    .await
            }
            Unjudged::Locked { until } => {
                self.deny(
                    false,
                    "user locked out: not judged",
                    Said::Locked { until, now },
                )
                .await
            }
        }
    }

    /// Denies: finishes the transaction when `finish`, audits `why`, tells the person `said`.
    pub(super) async fn deny(
        &self,
        finish: bool,
        why: &str,
        said: Said,
    ) -> Result<LoginStepResult> {
        if finish {
            self.st.store.tx_finish(self.tx_id).await?;
        }
        self.audit("deny", why).await;
        Ok(said.deny())
    }
}

/// An answer whose transaction passed the checks every method shares.
pub(super) struct OpenStep<'a> {
    pub(super) ctx: StepCtx<'a>,
    pub(super) user: UserRow,
    pub(super) policy: Policy,
    /// The user's tokens, read with the transaction for a code's answer (empty otherwise).
    pub(super) tokens: Vec<TokenRow>,
    /// The user has something an offline bundle could carry (read with the transaction).
    pub(super) user_has_offline: bool,
}

/// What [`Engine::open_step_as`] opens: the method, how its limits are taken, the audit
/// action and the lockout its failures count toward.
struct Step {
    method: Method,
    limits: Limits,
    action: &'static str,
    counter: Counter,
}

/// How the limits of an answer (attempts of the transaction, failures of the user) are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limits {
    /// Together with the verdict, in one store transaction: a code against the user's
    /// tokens (`Store::tx_answer_otp`). The user's tokens are read with the transaction.
    WithVerdict,
    /// Reserved before the answer is judged (`Store::tx_reserve_answer`).
    Reserve,
}

/// What a counted failure leaves: attempts, or a denial already audited.
pub(super) enum FailureOutcome {
    AttemptsLeft(i64),
    Denied(LoginStepResult),
}

impl Engine {
    /// The checks every answer to a transaction goes through, whatever the method: the
    /// transaction exists, is this machine's, is still open and unexpired; its user is still
    /// enabled and not locked out; the policy still allows `method`. `Err` is the denial to
    /// send, already audited.
    pub(super) async fn open_step<'a>(
        &'a self,
        machine_id: &'a str,
        tx_id: &'a str,
        method: Method,
        limits: Limits,
        action: &'static str,
        now: i64,
    ) -> Result<std::result::Result<OpenStep<'a>, LoginStepResult>> {
        let step = Step {
            method,
            limits,
            action,
            counter: Counter::Login,
        };
        self.open_step_as(machine_id, tx_id, step, now).await
    }

    /// [`Engine::open_step`] for a portal sign-in (machine `web`): its failures count
    /// toward the portal's own lockout, never the login's.
    pub(super) async fn open_portal_step<'a>(
        &'a self,
        tx_id: &'a str,
        method: Method,
        limits: Limits,
        action: &'static str,
        now: i64,
    ) -> Result<std::result::Result<OpenStep<'a>, LoginStepResult>> {
        let step = Step {
            method,
            limits,
            action,
            counter: Counter::Portal,
        };
        self.open_step_as(super::WEB_MACHINE, tx_id, step, now)
            .await
    }

    async fn open_step_as<'a>(
        &'a self,
        machine_id: &'a str,
        tx_id: &'a str,
        step: Step,
        now: i64,
    ) -> Result<std::result::Result<OpenStep<'a>, LoginStepResult>> {
        let Step {
            method,
            limits,
            action,
            counter,
        } = step;
        let mut ctx = StepCtx {
            st: self,
            machine_id,
            tx_id,
            user: None,
            client_id: None,
            action,
            reserved: (0, 0),
            counter,
        };
        // A code's answer reads the user's tokens in the same read.
        let with_tokens = limits == Limits::WithVerdict;
        let Some(TxView {
            tx,
            user,
            user_has_offline,
            tokens,
        }) = self
            .store
            .tx_get_with_user_tokens(tx_id, with_tokens)
            .await?
        else {
            return ctx
                .deny(false, "unknown transaction", Said::TxGone)
                .await
                .map(Err);
        };
        ctx.user = Some(tx.user_name.clone());
        ctx.client_id = Some(tx.client_id.clone());
        let gone = if tx.machine_id != machine_id {
            Some("transaction belongs to another machine")
        } else if tx.done {
            Some("transaction already finished")
        } else if tx.expires_at <= now {
            Some("transaction expired")
        } else {
            None
        };
        if let Some(why) = gone {
            return ctx.deny(false, why, Said::TxGone).await.map(Err);
        }
        let user = match user {
            Some(u) if u.enabled => u,
            Some(_) => {
                return ctx
                    .deny(true, "user disabled during login", Said::NoMethod)
                    .await
                    .map(Err);
            }
            None => {
                // The portal opens a transaction for any name typed (so that every name
                // costs the same): there, a missing user is usually one that never was.
                let why = match counter {
                    Counter::Login => "user removed during login",
                    Counter::Portal => "no such user (or removed during sign-in)",
                };
                return ctx.deny(true, why, Said::NoMethod).await.map(Err);
            }
        };
        if user.locked_until > now {
            let said = Said::Locked {
                until: user.locked_until,
                now,
            };
            return ctx.deny(true, "user locked out", said).await.map(Err);
        }
        let policy = self
            .policy_for(&tx.client_id, &user.name, &user.groups)
            .await?;
        if !policy.methods.contains(&method) {
            let why = format!("policy does not allow {}", method.as_str());
            return ctx.deny(true, &why, Said::NoMethod).await.map(Err);
        }
        // The limits are taken before the answer is judged, in one atomic step: however
        // many answers arrive together, no more than `max_attempts` per transaction and
        // `lockout_threshold` per user are ever judged. A code's answer does it together
        // with its verdict (Store::tx_answer_otp); the others reserve here.
        if limits == Limits::Reserve {
            let reserved = self
                .store
                .tx_reserve_answer(
                    tx_id,
                    &user.name,
                    now,
                    i64::from(policy.max_attempts),
                    counter.lockout(&policy),
                )
                .await?;
            match reserved {
                Reserved::Judge { attempt, failures } => ctx.reserved = (attempt, failures),
                Reserved::Refused(why) => return ctx.unjudged(why, now).await.map(Err),
            }
        }
        Ok(Ok(OpenStep {
            ctx,
            user,
            policy,
            tokens,
            user_has_offline,
        }))
    }

    /// A wrong answer (signature, credential): counts toward the user's lockout and the
    /// transaction's attempts. Denies with the lockout message, or with `exhausted` when no
    /// attempt is left; otherwise audits the failure and says how many attempts are left.
    pub(super) async fn step_failure(
        &self,
        ctx: &StepCtx<'_>,
        user: &UserRow,
        policy: &Policy,
        now: i64,
        why: &str,
        exhausted: Said,
    ) -> Result<FailureOutcome> {
        // Both were counted when the answer was reserved (open_step); the portal's
        // statement also set its lock.
        let (attempts, failures) = ctx.reserved;
        let lock = match ctx.counter {
            Counter::Login => policy::lockout_secs(policy, failures),
            Counter::Portal if failures >= super::web_signin::PORTAL_MAX_FAILURES => {
                super::web_signin::PORTAL_LOCK_SECS
            }
            Counter::Portal => 0,
        };
        let locked_until = if lock > 0 { now + lock } else { 0 };
        if locked_until > 0 {
            if ctx.counter == Counter::Login {
                self.store.user_lock_until(&user.name, locked_until).await?;
            }
            let said = Said::Locked {
                until: locked_until,
                now,
            };
            let why = format!("{why}; {failures} failures: locked out");
            return ctx.deny(true, &why, said).await.map(FailureOutcome::Denied);
        }
        let left = i64::from(policy.max_attempts) - attempts;
        if left <= 0 {
            let why = format!("{why}; no attempts left");
            return ctx
                .deny(true, &why, exhausted)
                .await
                .map(FailureOutcome::Denied);
        }
        ctx.audit("fail", format!("{why}; {left} attempts left"))
            .await;
        Ok(FailureOutcome::AttemptsLeft(left))
    }

    pub(super) async fn policy_for(
        &self,
        client_id: &str,
        user: &str,
        groups: &[String],
    ) -> Result<Policy> {
        let own = self
            .policy_settings(client_id)
            .await?
            .ok_or_else(|| EngineError::UnknownClient(client_id.to_string()))?;
        let star = if client_id == policy::FALLBACK {
            None
        } else {
            self.policy_settings(policy::FALLBACK).await?
        };
        policy::for_login(client_id, star.as_ref(), &own, user, groups)
            .map_err(EngineError::BadPolicy)
    }

    /// `POST /v1/login/start`, with what the offline decision attaches to the answer.
    pub async fn login_start(
        &self,
        machine_id: &str,
        req: &LoginStart,
    ) -> Result<WithOffline<LoginStartResult>> {
        let res = self.start(machine_id, req).await?;
        let attach = Answered::Start {
            denied: matches!(res, LoginStartResult::Deny { .. }),
        }
        .attach();
        let offline = self.attachment(machine_id, &req.user, attach).await;
        Ok(WithOffline {
            inner: res,
            offline,
        })
    }

    async fn start(&self, machine_id: &str, req: &LoginStart) -> Result<LoginStartResult> {
        // `user` and `client_id` passed their validators when the body was read.
        validate_opt("rhost", &req.rhost)?;
        validate_opt("tty", &req.tty)?;
        let actor = Actor::Machine(machine_id.to_string());
        // One statement: the user with the number of OATH tokens, apps, smartcards and
        // security keys it has.
        let found = self.store.user_get_with_counts(&req.user).await?;
        let (tokens, apps, cards, keys) = found
            .as_ref()
            .map(|(_, t, a, c, k)| (*t, *a, *c, *k))
            .unwrap_or((0, 0, 0, 0));
        let user_row = found.map(|(u, _, _, _, _)| u);
        let groups = user_row
            .as_ref()
            .map(|u| u.groups.clone())
            .unwrap_or_default();
        let policy = self.policy_for(&req.client_id, &req.user, &groups).await?;
        let cid = Some(req.client_id.as_str());
        let from = req
            .rhost
            .as_deref()
            .map(|r| format!(" from {r}"))
            .unwrap_or_default();
        let audit = |result: &'static str, detail: String| async move {
            self.audit(&actor, "login.start", Some(&req.user), cid, result, detail)
                .await;
        };

        let Some(user) = user_row else {
            return Ok(match policy.unknown_user {
                UnknownUser::Allow => {
                    audit(
                        "ok",
                        format!("unknown user allowed by policy unknown_user=allow{from}"),
                    )
                    .await;
                    Said::NoMfaNeeded.start_allow()
                }
                UnknownUser::Deny => {
                    audit("deny", format!("unknown user{from}")).await;
                    Said::NoMethod.start_deny()
                }
            });
        };
        if !user.enabled {
            audit("deny", format!("user disabled{from}")).await;
            return Ok(Said::NoMethod.start_deny());
        }
        let now = now();
        if user.locked_until > now {
            audit(
                "deny",
                format!("user locked out until {}{from}", user.locked_until),
            )
            .await;
            return Ok(Said::Locked {
                until: user.locked_until,
                now,
            }
            .start_deny());
        }
        if !policy.mfa_required {
            audit("ok", format!("policy does not require MFA{from}")).await;
            return Ok(Said::NoMfaNeeded.start_allow());
        }
        let owned = tokens + apps + cards + keys;
        let apps = if policy.methods.contains(&Method::Push) {
            apps
        } else {
            0
        };
        let mut methods = Vec::new();
        if tokens > 0 && policy.methods.contains(&Method::Otp) {
            methods.push(Method::Otp);
        }
        if apps > 0 {
            methods.push(Method::Push);
        }
        // The credential list is read only when there is one to offer.
        let fido2_creds = if keys > 0 && policy.methods.contains(&Method::Fido2) {
            self.store.fido2_of(&user.name).await?
        } else {
            Vec::new()
        };
        if !fido2_creds.is_empty() {
            methods.push(Method::Fido2);
        }
        let cards = self.smartcards_offered(&user.name, &policy, cards).await?;
        if !cards.is_empty() {
            methods.push(Method::Smartcard);
        }
        // Inline enrolment only for a user with no token of any kind: a user who has one
        // (even one this context does not take) never gets an offer.
        if methods.is_empty()
            && owned == 0
            && let Some(answer) = self
                .inline_offer(machine_id, req, &user, &policy, now)
                .await?
        {
            return Ok(answer);
        }
        if methods.is_empty() {
            audit(
                "deny",
                format!(
                    "no usable MFA method (tokens: {tokens}, policy allows: {:?}){from}",
                    policy.methods
                ),
            )
            .await;
            return Ok(Said::NoMethod.start_deny());
        }
        let tx_id = new_tx_id()?;
        self.store
            .tx_create(&NewTx {
                id: &tx_id,
                user_name: &user.name,
                client_id: &req.client_id,
                machine_id,
                rhost: req.rhost.as_deref(),
                tty: req.tty.as_deref(),
                now,
                expires_at: now + policy.tx_ttl as i64,
            })
            .await?;
        let fido2 = if fido2_creds.is_empty() {
            None
        } else {
            let expires_at = now + policy.tx_ttl as i64;
            Some(
                self.fido2_challenge(&tx_id, &fido2_creds, &policy, expires_at)
                    .await?,
            )
        };
        audit(
            "challenge",
            format!("challenge sent ({}){from}", method_list(&methods)),
        )
        .await;
        let smartcard = self.smartcard_request(&tx_id, &cards)?;
        Ok(LoginStartResult::Challenge {
            tx: tx_id,
            message: super::messages::challenge(&user.name, &methods),
            methods,
            expires_in: policy.tx_ttl,
            fido2,
            smartcard,
        })
    }
}

fn method_list(m: &[Method]) -> String {
    m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
}
