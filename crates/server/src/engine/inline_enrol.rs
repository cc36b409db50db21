//! Inline enrolment (docs/enrollment.md): a user with no token at all, whose first factor the
//! machine's shell vouched for (`LoginStart.enroll`), may enrol one at the prompt where the
//! policy allows it. The pending enrolment is a login transaction: its answers go through
//! the same checks (machine, expiry, user, lockout, attempts) as every other answer, and the
//! login it finishes is an MFA login. Audit actions: `enroll.start`, `enroll.done`,
//! `enroll.expired`, `enroll.fail`, `enroll.grace`.

use super::login::Limits;
use super::messages::Said;
use super::{Actor, Engine, EngineError, Result, new_id, new_tx_id, now};
use crate::store::{AppLink, Grace};
use crate::store::{EnrolRow, EnrolState, NewTx, Opened, TokenRow, UserRow};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::otp::{OtpParams, verify_totp};
use latchkey_crypto::otpauth::OtpAuthUri;
use latchkey_proto::admin::Policy;
use latchkey_proto::enroll::{EnrollBegin, EnrollBegun, EnrollMethod, EnrollWait};
use latchkey_proto::login::{LoginStart, LoginStartResult, LoginStepResult};
use latchkey_proto::offline::WithOffline;
use latchkey_proto::{Method, OtpAlgorithm, Secret, TokenKind};
use std::time::Duration;
use zeroize::Zeroizing;

/// Seed size of an enrolled authenticator: 160 bits (RFC 4226's recommendation, SHA1).
const SEED_BYTES: usize = 20;

/// What the policy lets this user enrol here, now: its `enroll.inline` methods that the
/// context's `methods` can also log in with (a token app logs in by push), none after
/// `enroll.until`, none without a TLS pin to hand a token app.
pub(super) fn offerable(policy: &Policy, now: i64, have_pin: bool) -> Vec<EnrollMethod> {
    if policy.enroll.until.is_some_and(|until| now >= until) {
        return vec![];
    }
    policy
        .enroll
        .inline
        .iter()
        .copied()
        .filter(|m| match m {
            EnrollMethod::Totp => policy.methods.contains(&Method::Otp),
            EnrollMethod::App => policy.methods.contains(&Method::Push) && have_pin,
            // The portal is served by latchkeyd itself: there is always a page to open.
            EnrollMethod::Link => true,
        })
        .collect()
}

/// A pending enrolment that may still be answered, or the denial to send.
enum Live {
    Open(EnrolRow),
    Denied(Said),
}

impl Engine {
    /// An audit line about the enrolment `row`, by the machine answering it.
    async fn enrol_audit(
        &self,
        machine_id: &str,
        row: &EnrolRow,
        action: &'static str,
        result: &'static str,
        detail: String,
    ) {
        let actor = Actor::Machine(machine_id.to_string());
        self.audit(
            &actor,
            action,
            Some(&row.user_name),
            Some(&row.client_id),
            result,
            detail,
        )
        .await;
    }

    /// Called by a login start for an enabled user with no token of any kind whose policy
    /// requires MFA: the enrolment offer, a refusal, or `None` (not offered: the usual
    /// refusal follows).
    pub(super) async fn inline_offer(
        &self,
        machine_id: &str,
        req: &LoginStart,
        user: &UserRow,
        policy: &Policy,
        now: i64,
    ) -> Result<Option<LoginStartResult>> {
        if !req.enroll {
            return Ok(None);
        }
        let methods = offerable(policy, now, !self.tls_fingerprint.is_empty());
        if methods.is_empty() {
            return Ok(None);
        }
        let actor = Actor::Machine(machine_id.to_string());
        let cid = Some(req.client_id.as_str());
        let tx_id = new_tx_id()?;
        let expires_at = now + policy.enroll.ttl as i64;
        let opened = self
            .store
            .enrol_open(
                &NewTx {
                    id: &tx_id,
                    user_name: &user.name,
                    client_id: &req.client_id,
                    machine_id,
                    rhost: req.rhost.as_deref(),
                    tty: req.tty.as_deref(),
                    now,
                    expires_at,
                },
                &methods,
            )
            .await?;
        let (expired, opened) = match opened {
            Opened::Opened { expired } => (expired, true),
            Opened::Busy { expired } => (expired, false),
        };
        for old in expired {
            self.audit(
                &actor,
                "enroll.expired",
                Some(&user.name),
                cid,
                "deny",
                format!("pending enrolment {old} expired unfinished"),
            )
            .await;
        }
        if !opened {
            self.audit(
                &actor,
                "enroll.start",
                Some(&user.name),
                cid,
                "deny",
                "another enrolment of this user is in progress",
            )
            .await;
            return Ok(Some(Said::EnrolBusy.start_deny()));
        }
        let used = self.store.grace_used(&user.name).await?;
        let grace_left = (i64::from(policy.enroll.grace_logins) - used).max(0);
        let from = req
            .rhost
            .as_deref()
            .map(|r| format!(" from {r}"))
            .unwrap_or_default();
        self.audit(
            &actor,
            "enroll.start",
            Some(&user.name),
            cid,
            "ok",
            format!(
                "inline enrolment offered ({}; {grace_left} grace logins left){from}",
                methods
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .await;
        Ok(Some(LoginStartResult::Enroll {
            pending_id: tx_id,
            methods,
            message: Said::EnrolOffered.text(),
            expires_in: policy.enroll.ttl,
            grace_left: u32::try_from(grace_left).unwrap_or(0),
        }))
    }

    /// The pending enrolment `tx_id` of this machine, open and unexpired; one found expired
    /// is ended and audited here.
    async fn live_enrolment(&self, machine_id: &str, tx_id: &str, now: i64) -> Result<Live> {
        let Some(row) = self.store.enrol_get(tx_id).await? else {
            return Ok(Live::Denied(Said::EnrolGone));
        };
        if row.machine_id != machine_id || row.state != EnrolState::Open {
            return Ok(Live::Denied(Said::EnrolGone));
        }
        if row.expires_at <= now {
            if self.store.enrol_end(tx_id, EnrolState::Expired).await? {
                self.enrol_audit(
                    machine_id,
                    &row,
                    "enroll.expired",
                    "deny",
                    "pending enrolment expired unfinished".into(),
                )
                .await;
            }
            return Ok(Live::Denied(Said::EnrolGone));
        }
        Ok(Live::Open(row))
    }

    /// `POST /v1/login/{tx}/enroll`: the method picked, once per enrolment.
    /// `host`: how the machine reached the server (the base of a `link`, unless
    /// `web_origin` is set).
    pub async fn enroll_begin(
        &self,
        machine_id: &str,
        tx_id: &str,
        req: &EnrollBegin,
        host: Option<&str>,
    ) -> Result<EnrollBegun> {
        let now = now();
        let row = match self.live_enrolment(machine_id, tx_id, now).await? {
            Live::Open(row) => row,
            Live::Denied(said) => {
                return Ok(EnrollBegun::Deny {
                    reason: said.text(),
                });
            }
        };
        if !row.methods.contains(&req.method) || row.method.is_some() {
            let why = if row.method.is_some() {
                "method already chosen"
            } else {
                "method not offered"
            };
            self.enrol_audit(machine_id, &row, "enroll.start", "deny", why.into())
                .await;
            return Ok(EnrollBegun::Deny {
                reason: Said::EnrolGone.text(),
            });
        }
        let internal = |e: latchkey_crypto::Error| EngineError::Internal(e.to_string());
        let begun = match req.method {
            EnrollMethod::Totp => {
                let seed =
                    Zeroizing::new(latchkey_crypto::random_bytes(SEED_BYTES).map_err(internal)?);
                let sealed = B64.encode(
                    self.master
                        .seal(&seed, tx_id.as_bytes())
                        .map_err(internal)?,
                );
                if !self
                    .store
                    .enrol_choose(tx_id, req.method, Some(&sealed), None, now)
                    .await?
                {
                    return Ok(EnrollBegun::Deny {
                        reason: Said::EnrolGone.text(),
                    });
                }
                let uri = OtpAuthUri {
                    kind: TokenKind::Totp,
                    issuer: self.cfg.issuer.clone(),
                    account: row.user_name.clone(),
                    secret: seed.clone(),
                    algorithm: OtpAlgorithm::Sha1,
                    digits: 6,
                    period: 30,
                    counter: 0,
                };
                EnrollBegun::Totp {
                    otpauth_uri: Secret::from(uri.to_compact_uri()),
                    secret: Secret::from(latchkey_crypto::base32_encode(&seed)),
                    message: Said::EnrolScanTotp.text(),
                }
            }
            EnrollMethod::App => {
                let code = Engine::new_secret("lkr")?;
                let hash = super::enrol::code_hash(&code);
                let link = AppLink {
                    code_hash: &hash,
                    expires_at: row.expires_at,
                };
                if !self
                    .store
                    .enrol_choose(tx_id, req.method, None, Some(link), now)
                    .await?
                {
                    return Ok(EnrollBegun::Deny {
                        reason: Said::EnrolGone.text(),
                    });
                }
                EnrollBegun::App {
                    code: Secret::from(code),
                    pin: self.tls_fingerprint.clone(),
                    message: Said::EnrolScanApp.text(),
                }
            }
            EnrollMethod::Link => return self.enrol_link(machine_id, &row, host, now).await,
        };
        self.enrol_audit(
            machine_id,
            &row,
            "enroll.start",
            "ok",
            format!("{} chosen", req.method),
        )
        .await;
        Ok(begun)
    }

    /// `POST /v1/login/{tx}/enroll/confirm`: the new authenticator's first code. Right, the
    /// token is stored and the login passes as an MFA login; wrong codes count toward the
    /// transaction's attempts and the user's lockout like any other.
    pub async fn enroll_confirm(
        &self,
        machine_id: &str,
        tx_id: &str,
        code: &str,
    ) -> Result<WithOffline<LoginStepResult>> {
        let now = now();
        let result = self.confirm(machine_id, tx_id, code, now).await?;
        let user = if matches!(result, LoginStepResult::Success { .. }) {
            self.store.tx_user_offline_candidate(tx_id).await?
        } else {
            None
        };
        Ok(self.with_offline(machine_id, result, user).await)
    }

    async fn confirm(
        &self,
        machine_id: &str,
        tx_id: &str,
        code: &str,
        now: i64,
    ) -> Result<LoginStepResult> {
        let row = match self.live_enrolment(machine_id, tx_id, now).await? {
            Live::Open(row) if row.method == Some(EnrollMethod::Totp) => row,
            Live::Open(_) => return Ok(Said::EnrolGone.deny()),
            Live::Denied(said) => return Ok(said.deny()),
        };
        let open = match self
            .open_step(
                machine_id,
                tx_id,
                Method::Otp,
                Limits::Reserve,
                "enroll.confirm",
                now,
            )
            .await?
        {
            Ok(open) => open,
            Err(denied) => {
                self.store.enrol_end(tx_id, EnrolState::Failed).await?;
                return Ok(denied);
            }
        };
        let sealed = row
            .secret_sealed
            .as_deref()
            .and_then(|s| B64.decode(s).ok())
            .ok_or_else(|| EngineError::Internal(format!("enrolment {tx_id} has no seed")))?;
        let seed = self
            .master
            .open(&sealed, tx_id.as_bytes())
            .map_err(|_| EngineError::Internal(format!("enrolment {tx_id}: seed does not open")))?;
        let params = OtpParams {
            algorithm: OtpAlgorithm::Sha1,
            digits: 6,
            period: 30,
        };
        let Some(step) = verify_totp(
            &seed,
            code,
            now.max(0) as u64,
            params,
            self.cfg.totp_window,
            None,
        ) else {
            let outcome = self
                .step_failure(
                    &open.ctx,
                    &open.user,
                    &open.policy,
                    now,
                    "wrong first code",
                    Said::CodesExhausted,
                )
                .await?;
            return Ok(match outcome {
                super::login::FailureOutcome::AttemptsLeft(left) => {
                    Said::CodeRejected { left }.retry(left)
                }
                super::login::FailureOutcome::Denied(denied) => {
                    self.store.enrol_end(tx_id, EnrolState::Failed).await?;
                    self.enrol_audit(
                        machine_id,
                        &row,
                        "enroll.fail",
                        "deny",
                        "no attempts left".into(),
                    )
                    .await;
                    denied
                }
            });
        };
        let id = new_id(8)?;
        let internal = |e: latchkey_crypto::Error| EngineError::Internal(e.to_string());
        let token = TokenRow {
            secret_sealed: B64.encode(self.master.seal(&seed, id.as_bytes()).map_err(internal)?),
            id,
            user_name: row.user_name.clone(),
            kind: TokenKind::Totp,
            algorithm: OtpAlgorithm::Sha1,
            digits: 6,
            period: 30,
            // The confirming code is used: it cannot log in again.
            used: i64::try_from(step).unwrap_or(i64::MAX),
            label: "enrolled at login".into(),
            created_at: now,
            last_used_at: Some(now),
        };
        let token_id = token.id.clone();
        if !self.store.enrol_finish(tx_id, Some(token), now).await? {
            return Ok(Said::EnrolGone.deny());
        }
        open.ctx
            .audit("ok", format!("first code accepted (token {token_id})"))
            .await;
        self.enrol_audit(
            machine_id,
            &row,
            "enroll.done",
            "ok",
            format!("authenticator app enrolled at login (token {token_id})"),
        )
        .await;
        Ok(Said::EnrolDone.success())
    }

    /// `POST /v1/login/{tx}/enroll/wait`: long-polls until the token app handed the
    /// registration code of this enrolment registered (`app_register`).
    pub async fn enroll_wait(
        &self,
        machine_id: &str,
        tx_id: &str,
        wait: Duration,
    ) -> Result<EnrollWait> {
        let now = now();
        let row = match self.live_enrolment(machine_id, tx_id, now).await? {
            Live::Open(row) if row.method == Some(EnrollMethod::App) => row,
            Live::Open(_) => {
                return Ok(EnrollWait::Deny {
                    reason: Said::EnrolGone.text(),
                });
            }
            Live::Denied(said) => {
                return Ok(EnrollWait::Deny {
                    reason: said.text(),
                });
            }
        };
        let Some(hash) = row.app_code_hash.clone() else {
            return Err(EngineError::Internal(format!(
                "enrolment {tx_id} has no code"
            )));
        };
        let store = self.store.clone();
        let wait = wait
            .min(Duration::from_secs(super::MAX_WAIT))
            .min(Duration::from_secs((row.expires_at - now).max(0) as u64));
        let registered = super::push::long_poll(self.hub.tx(tx_id), wait, || {
            let (store, hash) = (store.clone(), hash.clone());
            async move { Ok(store.app_link_used(&hash).await?.then_some(())) }
        })
        .await?;
        if registered.is_none() {
            return Ok(EnrollWait::Pending {
                message: Said::EnrolAppWaiting.text(),
            });
        }
        if !self.store.enrol_finish(tx_id, None, super::now()).await? {
            return Ok(EnrollWait::Deny {
                reason: Said::EnrolGone.text(),
            });
        }
        self.enrol_audit(
            machine_id,
            &row,
            "enroll.done",
            "ok",
            "token app registered at login: the login finishes by push".into(),
        )
        .await;
        Ok(EnrollWait::Registered {
            message: Said::EnrolAppRegistered.text(),
        })
    }

    /// A token app redeemed a registration code: wakes the login waiting on it, if an
    /// inline enrolment handed it out.
    pub(super) async fn enrol_app_registered(&self, code_hash: &str) {
        match self.store.enrol_by_app_code(code_hash).await {
            Ok(Some(tx)) => self.hub.tx(&tx).notify_waiters(),
            Ok(None) => {}
            // The waiting login still finds it when it reads the store again.
            Err(e) => {
                tracing::warn!(error = %e, "could not look up the enrolment of a registration")
            }
        }
    }

    /// `POST /v1/login/{tx}/enroll/skip`: finishes the login without a second factor on one
    /// of the user's grace logins (`enroll.grace_logins`). Never an offline bundle.
    pub async fn enroll_skip(
        &self,
        machine_id: &str,
        tx_id: &str,
    ) -> Result<WithOffline<LoginStepResult>> {
        let result = self.skip(machine_id, tx_id).await?;
        Ok(WithOffline {
            inner: result,
            offline: Default::default(),
        })
    }

    async fn skip(&self, machine_id: &str, tx_id: &str) -> Result<LoginStepResult> {
        let now = now();
        let row = match self.live_enrolment(machine_id, tx_id, now).await? {
            Live::Open(row) => row,
            Live::Denied(said) => return Ok(said.deny()),
        };
        let Some(user) = self
            .store
            .user_get(&row.user_name)
            .await?
            .filter(|u| u.enabled)
        else {
            self.store.enrol_end(tx_id, EnrolState::Failed).await?;
            return Ok(Said::NoMethod.deny());
        };
        let policy = self
            .policy_for(&row.client_id, &user.name, &user.groups)
            .await?;
        let max = i64::from(policy.enroll.grace_logins);
        match self.store.grace_take(tx_id, &user.name, max, now).await? {
            Grace::Spent { used } => {
                self.enrol_audit(
                    machine_id,
                    &row,
                    "enroll.grace",
                    "ok",
                    format!("grace login {used} of {max}: logged in without a second factor"),
                )
                .await;
                Ok(Said::EnrolSkipped { left: max - used }.success())
            }
            Grace::NoneLeft => {
                self.store.enrol_end(tx_id, EnrolState::Failed).await?;
                self.store.tx_finish(tx_id).await?;
                self.enrol_audit(
                    machine_id,
                    &row,
                    "enroll.grace",
                    "deny",
                    format!("no grace logins left ({max} allowed)"),
                )
                .await;
                Ok(Said::EnrolNoGrace.deny())
            }
            Grace::Gone => Ok(Said::EnrolGone.deny()),
        }
    }
}
