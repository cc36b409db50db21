//! FIDO2 security keys: the login challenge, assertion checks with the clone rule, and the
//! registration ceremony. Cryptographic checks are `latchkey_crypto::webauthn` (shared with
//! the agent's offline verifier); this module decides and records.

use super::enrol::code_hash;
use super::login::{FailureOutcome, Limits, OpenStep, StepCtx};
use super::messages::{KeyRegistration, Said};
use super::{Actor, Engine, EngineError, Result, new_id, now};
use crate::policy;
use crate::store::{Fido2Row, StoreError, UserRow};
use latchkey_crypto::webauthn::{
    self, ALG_EDDSA, ALG_ES256, Assertion, Expect, ORIGIN_AGENT, WebauthnError, b64url,
    b64url_decode,
};
use latchkey_proto::Method;
use latchkey_proto::admin::Policy;
use latchkey_proto::fido2::{
    Fido2RegisterFinish, Fido2RegisterOptions, Fido2RegisterStart, Fido2Registered, Fido2Request,
    LoginFido2, UserVerification,
};
use latchkey_proto::login::LoginStepResult;
use latchkey_proto::offline::WithOffline;

/// The relying party of one ceremony: the rp id it is bound to, the origins whose client
/// data is accepted and whether user verification is required. The agent is the client of
/// the login screens (`latchkey:agent`, `fido2_rp_id`, the policy's verification); a browser
/// is the client of the self-service portal (`web_origin` only, `web_rp_id`, verification
/// always). Which one is decided by who asks: a transaction of the portal's pseudo-machine
/// ([`super::WEB_MACHINE`]) is a browser's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Party {
    pub(super) rp_id: String,
    pub(super) origins: Vec<String>,
    pub(super) require_uv: bool,
}

impl Party {
    fn expect<'a>(&'a self, origins: &'a [&'a str], challenge: &'a [u8]) -> Expect<'a> {
        Expect {
            rp_id: &self.rp_id,
            challenge,
            origins,
            require_uv: self.require_uv,
        }
    }

    fn origin_refs(&self) -> Vec<&str> {
        self.origins.iter().map(String::as_str).collect()
    }
}

fn refused(why: KeyRegistration) -> EngineError {
    EngineError::Fido2Refused(why)
}

fn random_challenge() -> Result<Vec<u8>> {
    latchkey_crypto::random_bytes(32).map_err(|e| EngineError::Invalid(e.to_string()))
}

/// What the portal says where a browser ceremony would need `web_rp_id`.
pub const NO_WEB_RP_ID: &str = "Security keys in the browser need web_rp_id, see docs/web.md";

/// The WebAuthn user handle of a user: stable, not secret, 32 bytes.
pub fn user_handle(user: &str) -> Vec<u8> {
    webauthn::sha256(format!("latchkey-user:{user}").as_bytes()).to_vec()
}

impl Engine {
    /// The agent's relying party: `fido2_rp_id`, origin `latchkey:agent`, the policy's
    /// user verification.
    pub(super) fn agent_party(&self, policy: &Policy) -> Party {
        Party {
            rp_id: self.cfg.fido2_rp_id.clone(),
            origins: vec![ORIGIN_AGENT.to_string()],
            require_uv: policy.fido2.user_verification == UserVerification::Required,
        }
    }

    /// The browser's relying party (`web_rp_id`, `web_origin`, verification required), or
    /// the refusal that says what to configure.
    pub(super) fn browser_party(&self) -> Result<Party> {
        match (&self.cfg.web_rp_id, &self.cfg.web_origin) {
            (Some(rp_id), Some(origin)) => Ok(Party {
                rp_id: rp_id.clone(),
                origins: vec![origin.clone()],
                require_uv: true,
            }),
            _ => Err(EngineError::Invalid(NO_WEB_RP_ID.into())),
        }
    }

    /// The relying party of a login transaction's ceremony, by the machine that opened it.
    fn party_of(&self, machine_id: &str, policy: &Policy) -> Result<Party> {
        if machine_id == super::WEB_MACHINE {
            self.browser_party()
        } else {
            Ok(self.agent_party(policy))
        }
    }

    /// Draws and stores the single-use challenge of a login transaction.
    pub(super) async fn fido2_challenge(
        &self,
        tx_id: &str,
        creds: &[Fido2Row],
        policy: &Policy,
        expires_at: i64,
    ) -> Result<Fido2Request> {
        let challenge = b64url(&random_challenge()?);
        let rp_id = self.cfg.fido2_rp_id.clone();
        self.store
            .fido2_challenge_create(tx_id, &challenge, &rp_id, expires_at)
            .await?;
        Ok(Fido2Request {
            rp_id: rp_id.clone(),
            challenge,
            // Credentials registered under another rp id cannot answer this one.
            allow_credentials: creds
                .iter()
                .filter(|c| c.rp_id == rp_id)
                .map(|c| c.credential_id.clone())
                .collect(),
            user_verification: policy.fido2.user_verification,
        })
    }

    /// `POST /v1/login/{tx}/fido2`, with what the offline decision attaches to the answer.
    pub async fn login_fido2(
        &self,
        machine_id: &str,
        tx_id: &str,
        req: &LoginFido2,
    ) -> Result<WithOffline<LoginStepResult>> {
        let now = now();
        let (result, user) = match self
            .open_step(
                machine_id,
                tx_id,
                Method::Fido2,
                Limits::Reserve,
                "login.fido2",
                now,
            )
            .await?
        {
            Ok(open) => {
                let user = Some((open.user.name.clone(), open.user_has_offline));
                (self.fido2_answer(open, tx_id, req, now).await?, user)
            }
            Err(denied) => (denied, None),
        };
        Ok(self.with_offline(machine_id, result, user).await)
    }

    pub(super) async fn fido2_answer(
        &self,
        open: OpenStep<'_>,
        tx_id: &str,
        req: &LoginFido2,
        now: i64,
    ) -> Result<LoginStepResult> {
        let OpenStep {
            ctx, user, policy, ..
        } = open;
        let Some((challenge, rp_id)) = self.store.fido2_challenge_get(tx_id).await? else {
            return ctx
                .deny(
                    true,
                    "no FIDO2 challenge was issued for this transaction",
                    Said::NoMethod,
                )
                .await;
        };
        // The credential must be one of *this* user's: another user's key is a wrong answer.
        let cred = match self
            .store
            .fido2_by_credential_id(&req.credential_id)
            .await?
        {
            Some(c) if c.user_name == user.name => c,
            Some(_) => {
                let why = "credential of another user";
                return self
                    .fido2_failure(&ctx, &user, &policy, now, why, false)
                    .await;
            }
            None => {
                let why = "unknown credential";
                return self
                    .fido2_failure(&ctx, &user, &policy, now, why, false)
                    .await;
            }
        };
        let decode = |v: &str| b64url_decode(v).unwrap_or_default();
        let (ad, cd, sig) = (
            decode(&req.authenticator_data),
            decode(&req.client_data_json),
            decode(&req.signature),
        );
        let public_key = b64url_decode(&cred.public_key).ok_or_else(|| {
            StoreError::Corrupt(format!("fido2 credential {} key is not base64url", cred.id))
        })?;
        let challenge = b64url_decode(&challenge).unwrap_or_default();
        let stored = u32::try_from(cred.sign_count).unwrap_or(u32::MAX);
        // The rp id is the one the challenge was issued for; the origins and the
        // verification are the ceremony's.
        let party = Party {
            rp_id,
            ..self.party_of(ctx.machine_id, &policy)?
        };
        let origins = party.origin_refs();
        let verdict = webauthn::verify_assertion(
            &public_key,
            stored,
            &Assertion {
                authenticator_data: &ad,
                client_data_json: &cd,
                signature: &sig,
            },
            &party.expect(&origins, &challenge),
        );
        let v = match verdict {
            Ok(v) => v,
            Err(e @ WebauthnError::Counter { .. }) => {
                // Clone signal: two authenticators hold this key. Deny, whatever else. (A
                // portal answer's failure was counted when it was reserved.)
                if ctx.counter == super::login::Counter::Login {
                    self.count_failure(&user, &policy, now).await?;
                }
                let why = format!("security key {} ({}): {e}", cred.id, cred.label);
                return ctx.deny(true, &why, Said::KeyCloned).await;
            }
            Err(WebauthnError::NoUserVerification) => {
                let why = "user verification required by policy but not done";
                return self
                    .fido2_failure(&ctx, &user, &policy, now, why, true)
                    .await;
            }
            Err(e) => {
                let why = format!("assertion refused: {e}");
                return self
                    .fido2_failure(&ctx, &user, &policy, now, &why, false)
                    .await;
            }
        };
        if !self
            .store
            .fido2_advance(&cred.id, cred.sign_count, i64::from(v.sign_count), now)
            .await?
        {
            return ctx
                .deny(
                    true,
                    "sign counter changed by a concurrent login (replayed assertion or clone)",
                    Said::KeyAnswerReused,
                )
                .await;
        }
        if !self.store.tx_finish(tx_id).await? {
            return ctx
                .deny(false, "transaction finished concurrently", Said::TxGone)
                .await;
        }
        self.clear_reserved_of(ctx.counter, &user).await?;
        ctx.audit(
            "ok",
            format!(
                "security key {} accepted (counter {}, uv {})",
                cred.id, v.sign_count, v.user_verified
            ),
        )
        .await;
        Ok(Said::KeyVerified.success())
    }

    /// A wrong security-key answer counts like a wrong code: toward the user's lockout and
    /// the transaction's attempts. `uv_missing`: the key answered without the user
    /// verification the policy requires (the person is told so).
    async fn fido2_failure(
        &self,
        ctx: &StepCtx<'_>,
        user: &UserRow,
        policy: &Policy,
        now: i64,
        why: &str,
        uv_missing: bool,
    ) -> Result<LoginStepResult> {
        let said = |left| {
            if uv_missing {
                Said::KeyNeedsVerification { left }
            } else {
                Said::KeyNotRegistered { left }
            }
        };
        let left = match self
            .step_failure(ctx, user, policy, now, why, said(None))
            .await?
        {
            FailureOutcome::AttemptsLeft(left) => left,
            FailureOutcome::Denied(denied) => return Ok(denied),
        };
        Ok(said(Some(left)).retry(left))
    }

    /// `POST /v1/fido2/register/start`: checks the code and answers the makeCredential
    /// options with a fresh challenge. The code stays usable (a new start replaces the
    /// challenge) until a registration finishes or it expires.
    pub async fn fido2_register_start(
        &self,
        machine_id: &str,
        req: &Fido2RegisterStart,
    ) -> Result<Fido2RegisterOptions> {
        let actor = Actor::Machine(machine_id.to_string());
        let now = now();
        let challenge = b64url(&random_challenge()?);
        let hash = code_hash(req.code.expose());
        let reg = match self.store.fido2_reg_get(&hash, now).await? {
            Some(r) if r.user_name == req.user => r,
            _ => {
                self.audit(
                    &actor,
                    "fido2.register",
                    Some(&req.user),
                    None,
                    "deny",
                    "unknown, used, expired or other user's registration code",
                )
                .await;
                return Err(refused(KeyRegistration::CodeGone));
            }
        };
        let user = match self.store.user_get(&reg.user_name).await? {
            Some(u) if u.enabled => u,
            _ => return Err(refused(KeyRegistration::NoMethod)),
        };
        if self
            .store
            .fido2_reg_challenge(&hash, &challenge, now)
            .await?
            .is_none()
        {
            return Err(refused(KeyRegistration::CodeGone));
        }
        let policy = self
            .policy_for(policy::FALLBACK, &user.name, &user.groups)
            .await?;
        let existing = self.store.fido2_of(&user.name).await?;
        Ok(Fido2RegisterOptions {
            rp_id: self.cfg.fido2_rp_id.clone(),
            rp_name: self.cfg.issuer.clone(),
            user_id: b64url(&user_handle(&user.name)),
            user_name: user.name.clone(),
            user_display_name: user.display_name.clone(),
            challenge,
            algorithms: vec![ALG_ES256, ALG_EDDSA],
            exclude_credentials: existing.into_iter().map(|c| c.credential_id).collect(),
            user_verification: policy.fido2.user_verification,
        })
    }

    /// `POST /v1/fido2/register/finish`: verifies the attestation and stores the credential.
    pub async fn fido2_register_finish(
        &self,
        machine_id: &str,
        req: &Fido2RegisterFinish,
    ) -> Result<Fido2Registered> {
        let actor = Actor::Machine(machine_id.to_string());
        let now = now();
        let hash = code_hash(req.code.expose());
        let reg = match self.store.fido2_reg_get(&hash, now).await? {
            Some(r) if r.user_name == req.user => r,
            _ => return Err(refused(KeyRegistration::CodeGone)),
        };
        let user = match self.store.user_get(&reg.user_name).await? {
            Some(u) if u.enabled => u,
            _ => return Err(refused(KeyRegistration::NoMethod)),
        };
        let policy = self
            .policy_for(policy::FALLBACK, &user.name, &user.groups)
            .await?;
        let party = self.agent_party(&policy);
        self.register_credential(
            &Ceremony {
                actor: &actor,
                code_hash: &hash,
                reg: &reg,
                party: &party,
            },
            &req.attestation_object,
            &req.client_data_json,
            now,
        )
        .await
    }

    /// The end of a registration, whoever the client (the agent, a browser): the attestation
    /// verified for the ceremony's relying party, the code spent once, the credential stored
    /// under that rp id.
    pub(super) async fn register_credential(
        &self,
        c: &Ceremony<'_>,
        attestation_object: &str,
        client_data_json: &str,
        now: i64,
    ) -> Result<Fido2Registered> {
        let Some(challenge_b64) = c.reg.challenge.clone() else {
            return Err(refused(KeyRegistration::NotStarted));
        };
        let user = &c.reg.user_name;
        let att = b64url_decode(attestation_object).unwrap_or_default();
        let cd = b64url_decode(client_data_json).unwrap_or_default();
        let challenge = b64url_decode(&challenge_b64).unwrap_or_default();
        let origins = c.party.origin_refs();
        let verified =
            webauthn::verify_registration(&att, &cd, &c.party.expect(&origins, &challenge));
        let v = match verified {
            Ok(v) => v,
            Err(e) => {
                self.audit(
                    c.actor,
                    "fido2.register",
                    Some(user),
                    None,
                    "deny",
                    format!("attestation refused: {e}"),
                )
                .await;
                return Err(refused(KeyRegistration::Attestation(e.to_string())));
            }
        };
        let credential_id = b64url(&v.credential_id);
        if self
            .store
            .fido2_by_credential_id(&credential_id)
            .await?
            .is_some()
        {
            return Err(refused(KeyRegistration::AlreadyRegistered));
        }
        if !self
            .store
            .fido2_reg_consume(c.code_hash, &challenge_b64, now)
            .await?
        {
            return Err(refused(KeyRegistration::CodeGone));
        }
        let row = Fido2Row {
            id: new_id(8)?,
            user_name: user.clone(),
            credential_id,
            public_key: b64url(&v.public_key_cose),
            alg: v.alg,
            sign_count: i64::from(v.sign_count),
            uv_registered: v.user_verified,
            aaguid: webauthn::aaguid_string(&v.aaguid),
            rp_id: c.party.rp_id.clone(),
            label: c.reg.label.clone(),
            created_at: now,
            last_used_at: None,
        };
        self.store.fido2_create(&row).await?;
        self.audit(
            c.actor,
            "fido2.register",
            Some(user),
            None,
            "ok",
            format!(
                "security key {} registered (aaguid {}, attestation {}, uv {}, rp id {})",
                row.id, row.aaguid, v.attestation, v.user_verified, row.rp_id
            ),
        )
        .await;
        Ok(Fido2Registered {
            token: super::tokens::fido2_view(&row),
            credential_id: row.credential_id.clone(),
            aaguid: row.aaguid.clone(),
            user_verified: row.uv_registered,
            attestation: v.attestation.to_string(),
        })
    }
}

/// One registration ceremony being finished: who answers it, its code (hashed) and row,
/// and its relying party.
pub(super) struct Ceremony<'a> {
    pub(super) actor: &'a Actor,
    pub(super) code_hash: &'a str,
    pub(super) reg: &'a crate::store::Fido2RegRow,
    pub(super) party: &'a Party,
}
