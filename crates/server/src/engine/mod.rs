//! The authentication engine: every login decision is made here and every path ends in an
//! explicit allow, challenge, retry or deny. Store errors propagate as errors (the HTTP layer
//! answers 503), never as a grant.

use crate::policy;
use crate::state::{Actor, State, now};
use crate::store::{NewTx, OtpVerdict, Reserved, StoreError, TokenRow, TxView, Unjudged, UserRow};
use latchkey_proto::Method;
use latchkey_proto::admin::{Policy, UnknownUser};
use latchkey_proto::login::{LoginStart, LoginStartResult, LoginStepResult};

mod checks;
mod fido2;
mod otp;
mod validate;

pub use fido2::{REG_GONE, user_handle};
use validate::validate_opt;
pub use validate::{validate_client_id, validate_user_name};
pub mod smartcard;

/// Shown for unknown, disabled and token-less users alike, so the answer does not tell an
/// attacker which of these is true (the audit log records the real reason).
pub const GENERIC_DENY: &str = "Login refused: no MFA method is available for this account";
pub const TX_GONE: &str = "Login request expired or unknown: start again";
pub const NO_ATTEMPTS: &str = "Too many wrong answers for this login: start again";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "client_id {0:?} has no policy; create one with `latchkey policy set {0} mfa_required=true`"
    )]
    UnknownClient(String),
    #[error("stored policy is invalid: {0}")]
    BadPolicy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T> = std::result::Result<T, EngineError>;

fn lock_message(until: i64, now: i64) -> String {
    format!("Too many failures: try again in {} s", (until - now).max(1))
}

/// One answer to a login transaction being decided (a code, a security key, a smartcard):
/// what the audit lines and denials need.
struct StepCtx<'a> {
    st: &'a State,
    machine_id: &'a str,
    tx_id: &'a str,
    user: Option<String>,
    client_id: Option<String>,
    /// Audit action, e.g. `login.otp`.
    action: &'static str,
    /// (attempt of the transaction, failures of the user) this answer reserved before it
    /// was judged ([`crate::store::Store::tx_reserve_answer`]); (0, 0) before that.
    reserved: (i64, i64),
}

impl StepCtx<'_> {
    async fn audit(&self, result: &str, detail: impl Into<String>) {
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
    async fn unjudged(&self, why: Unjudged, now: i64) -> Result<LoginStepResult> {
        match why {
            Unjudged::TxGone => {
                self.deny(false, "transaction finished or expired meanwhile", TX_GONE)
                    .await
            }
            Unjudged::NoAttempts => {
                self.deny(false, "no attempts left: not judged", NO_ATTEMPTS)
                    .await
            }
            Unjudged::Locked { until } => {
                let reason = lock_message(until, now);
                self.deny(false, "user locked out: not judged", &reason)
                    .await
            }
        }
    }

    /// Denies: finishes the transaction when `finish`, audits `why`, tells the person `reason`.
    async fn deny(&self, finish: bool, why: &str, reason: &str) -> Result<LoginStepResult> {
        if finish {
            self.st.store.tx_finish(self.tx_id).await?;
        }
        self.audit("deny", why).await;
        Ok(LoginStepResult::Deny {
            reason: reason.to_string(),
        })
    }
}

/// An answer whose transaction passed the checks every method shares.
struct OpenStep<'a> {
    ctx: StepCtx<'a>,
    user: UserRow,
    policy: Policy,
    /// The user's tokens, read with the transaction for a code's answer (empty otherwise).
    tokens: Vec<TokenRow>,
    /// The user has something an offline bundle could carry (read with the transaction).
    user_has_offline: bool,
}

/// An answer to a login step, with what the offline-bundle decision after a success needs:
/// it was read with the transaction, so a success costs no further read.
pub struct StepAnswer {
    pub result: LoginStepResult,
    /// The transaction's user and whether it has anything a bundle could carry; None when the
    /// answer was decided before the user was read.
    pub bundle_user: Option<(String, bool)>,
}

/// What a counted failure leaves: attempts, or a denial already audited.
enum FailureOutcome {
    AttemptsLeft(i64),
    Denied(LoginStepResult),
}

/// Result of checking a code against a user's tokens.
enum OtpCheck {
    /// The code matched and was used up.
    Ok {
        token_id: String,
    },
    Wrong,
    Replayed,
}

impl OtpCheck {
    fn failure_words(&self) -> &'static str {
        match self {
            OtpCheck::Replayed => "code already used",
            _ => "wrong code",
        }
    }
}

impl State {
    /// The checks every answer to a transaction goes through, whatever the method: the
    /// transaction exists, is this machine's, is still open and unexpired; its user is still
    /// enabled and not locked out; the policy still allows `method`. `Err` is the denial to
    /// send, already audited.
    async fn open_step<'a>(
        &'a self,
        machine_id: &'a str,
        tx_id: &'a str,
        method: Method,
        action: &'static str,
        now: i64,
    ) -> Result<std::result::Result<OpenStep<'a>, LoginStepResult>> {
        let mut ctx = StepCtx {
            st: self,
            machine_id,
            tx_id,
            user: None,
            client_id: None,
            action,
            reserved: (0, 0),
        };
        // A code's answer reads the user's tokens in the same read.
        let with_tokens = method == Method::Otp;
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
                .deny(false, "unknown transaction", TX_GONE)
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
            return ctx.deny(false, why, TX_GONE).await.map(Err);
        }
        let user = match user {
            Some(u) if u.enabled => u,
            Some(_) => {
                return ctx
                    .deny(true, "user disabled during login", GENERIC_DENY)
                    .await
                    .map(Err);
            }
            None => {
                return ctx
                    .deny(true, "user removed during login", GENERIC_DENY)
                    .await
                    .map(Err);
            }
        };
        if user.locked_until > now {
            let reason = lock_message(user.locked_until, now);
            return ctx.deny(true, "user locked out", &reason).await.map(Err);
        }
        let policy = self
            .policy_for(&tx.client_id, &user.name, &user.groups)
            .await?;
        if !policy.methods.contains(&method) {
            let why = format!("policy does not allow {}", method.as_str());
            return ctx.deny(true, &why, GENERIC_DENY).await.map(Err);
        }
        // The limits are taken before the answer is judged, in one atomic step: however
        // many answers arrive together, no more than `max_attempts` per transaction and
        // `lockout_threshold` per user are ever judged. A code's answer does it together
        // with its verdict (Store::tx_answer_otp); the others reserve here.
        if method == Method::Otp {
            return Ok(Ok(OpenStep {
                ctx,
                user,
                policy,
                tokens,
                user_has_offline,
            }));
        }
        let lock_policy = policy.clone();
        let reserved = self
            .store
            .tx_reserve_answer(
                tx_id,
                &user.name,
                now,
                i64::from(policy.max_attempts),
                move |n| policy::lockout_secs(&lock_policy, n),
            )
            .await?;
        match reserved {
            Reserved::Judge { attempt, failures } => ctx.reserved = (attempt, failures),
            Reserved::Refused(why) => return ctx.unjudged(why, now).await.map(Err),
        }
        Ok(Ok(OpenStep {
            ctx,
            user,
            policy,
            tokens,
            user_has_offline,
        }))
    }

    /// A wrong answer (code, signature, credential): counts toward the user's lockout and the
    /// transaction's attempts. Denies with the lockout message, or with `exhausted` when no
    /// attempt is left; otherwise audits the failure and says how many attempts are left.
    async fn step_failure(
        &self,
        ctx: &StepCtx<'_>,
        user: &UserRow,
        policy: &Policy,
        now: i64,
        why: &str,
        exhausted: &str,
    ) -> Result<FailureOutcome> {
        // Both were counted when the answer was reserved (open_step).
        let (attempts, failures) = ctx.reserved;
        let lock = policy::lockout_secs(policy, failures);
        let locked_until = if lock > 0 { now + lock } else { 0 };
        if locked_until > 0 {
            self.store.user_lock_until(&user.name, locked_until).await?;
            let reason = lock_message(locked_until, now);
            let why = format!("{why}; {failures} failures: locked out");
            return ctx
                .deny(true, &why, &reason)
                .await
                .map(FailureOutcome::Denied);
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

    pub(crate) async fn policy_for(
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

    pub async fn login_start(
        &self,
        machine_id: &str,
        req: &LoginStart,
    ) -> Result<LoginStartResult> {
        validate_user_name(&req.user)?;
        validate_client_id(&req.client_id)?;
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
                    LoginStartResult::Allow {
                        message: "No MFA needed".into(),
                    }
                }
                UnknownUser::Deny => {
                    audit("deny", format!("unknown user{from}")).await;
                    LoginStartResult::Deny {
                        reason: GENERIC_DENY.into(),
                    }
                }
            });
        };
        if !user.enabled {
            audit("deny", format!("user disabled{from}")).await;
            return Ok(LoginStartResult::Deny {
                reason: GENERIC_DENY.into(),
            });
        }
        let now = now();
        if user.locked_until > now {
            audit(
                "deny",
                format!("user locked out until {}{from}", user.locked_until),
            )
            .await;
            return Ok(LoginStartResult::Deny {
                reason: lock_message(user.locked_until, now),
            });
        }
        if !policy.mfa_required {
            audit("ok", format!("policy does not require MFA{from}")).await;
            return Ok(LoginStartResult::Allow {
                message: "No MFA needed".into(),
            });
        }
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
            self.fido2_credentials(&user.name).await?
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
        if methods.is_empty() {
            audit(
                "deny",
                format!(
                    "no usable MFA method (tokens: {tokens}, policy allows: {:?}){from}",
                    policy.methods
                ),
            )
            .await;
            return Ok(LoginStartResult::Deny {
                reason: GENERIC_DENY.into(),
            });
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
            message: challenge_message(&user.name, &methods),
            methods,
            expires_in: policy.tx_ttl,
            fido2,
            smartcard,
        })
    }
}

/// The prompt the login screen shows for a challenge: it names only the methods offered.
/// With a security key, Enter uses the key (the agent's convention, docs/fido2.md).
fn challenge_message(user: &str, methods: &[Method]) -> String {
    if methods.contains(&Method::Fido2) {
        let otp = methods.contains(&Method::Otp);
        let push = methods.contains(&Method::Push);
        return match (otp, push) {
            (true, true) => format!(
                "Press Enter to use your security key, type \"push\" for a push, or type a one-time code for {user}:"
            ),
            (true, false) => {
                format!("Press Enter to use your security key, or type a one-time code for {user}:")
            }
            (false, true) => format!(
                "Press Enter to use your security key, or type \"push\" for a push to {user}'s latchkey app:"
            ),
            (false, false) => format!("Press Enter to use your security key for {user}:"),
        };
    }
    match (
        methods.contains(&Method::Otp),
        methods.contains(&Method::Push),
    ) {
        (true, true) => format!("Press Enter to send a push, or type a one-time code for {user}:"),
        (false, true) => format!("Press Enter to send a push to {user}'s latchkey app:"),
        (false, false) if methods.contains(&Method::Smartcard) => {
            format!("Smartcard for {user}:")
        }
        _ => format!("One-time code for {user}:"),
    }
}

fn method_list(m: &[Method]) -> String {
    m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
}

/// A new login transaction's id ([`crate::store::tx_id`]): the current time, then 16
/// random bytes that make it unguessable.
pub fn new_tx_id() -> std::result::Result<String, StoreError> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let random =
        latchkey_crypto::random_bytes(16).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(crate::store::tx_id(ms, &random))
}

/// A random identifier: `bytes` random bytes, lowercase base32.
pub fn new_id(bytes: usize) -> std::result::Result<String, StoreError> {
    let raw =
        latchkey_crypto::random_bytes(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(latchkey_crypto::base32_encode(&raw).to_ascii_lowercase())
}
