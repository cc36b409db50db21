//! Smartcard logins and registration. The server holds only certificates; at login it derives
//! a challenge for the transaction, the agent has the card sign it, and the signature is
//! verified here with the registered certificate's key. Validity dates and, when
//! `smartcard_ca` is set, the issuing CA are checked at registration and again at every login
//! (a certificate that expired or a CA that changed since registration refuses the login).

use super::enrol::code_hash;
use super::login::{FailureOutcome, Limits, OpenStep, StepCtx};
use super::messages::{CardCert, Said, date};
use super::tokens::smartcard_view;
use super::{Actor, Engine, EngineError, Result, Unauthorized, new_id, now};
use crate::store::{SmartcardRow, StoreError, TokenRow, UserRow};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::x509::{CertError, Certificate, SigMechanism, login_challenge};
use latchkey_proto::admin::{Policy, TokenInfo};
use latchkey_proto::login::LoginStepResult;
use latchkey_proto::offline::WithOffline;
use latchkey_proto::smartcard::{
    LoginSmartcard, SmartcardAdd, SmartcardEnroll, SmartcardInfo, SmartcardRequest,
};
use latchkey_proto::{Method, OtpAlgorithm, TokenKind};
use std::path::Path;

/// Loads `smartcard_ca` at start: a server with an unreadable or invalid CA does not start.
pub fn load_ca(path: Option<&Path>) -> std::result::Result<Option<Certificate>, String> {
    let Some(path) = path else { return Ok(None) };
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Certificate::from_pem_or_der(&data)
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// What the person is told when a certificate is refused at login.
fn refusal(e: &CertError) -> Said {
    Said::CardCert(match e {
        CertError::Expired(t) => CardCert::Expired(*t),
        CertError::NotYetValid(t) => CardCert::NotYetValid(*t),
        CertError::UntrustedIssuer => CardCert::UntrustedIssuer,
        _ => CardCert::Unusable,
    })
}

pub fn info(row: &SmartcardRow) -> SmartcardInfo {
    SmartcardInfo {
        fingerprint: row.fingerprint.clone(),
        subject: row.subject.clone(),
        issuer: row.issuer.clone(),
        not_before: row.not_before,
        not_after: row.not_after,
    }
}

impl Engine {
    /// Parses a certificate offered for registration and applies the login checks to it.
    fn acceptable_cert(&self, der: &[u8], now: i64) -> Result<Certificate> {
        let cert = Certificate::from_pem_or_der(der)
            .map_err(|e| EngineError::Invalid(format!("certificate: {e}")))?;
        if SigMechanism::for_key(&cert.key).is_none() {
            return Err(EngineError::Invalid(
                "certificate: unsupported public key (expected RSA 2048+ or EC P-256)".into(),
            ));
        }
        let dates = cert.check_validity(now);
        let issuer = match &self.smartcard_ca {
            Some(ca) => cert.check_issued_by(ca, now),
            None => Ok(()),
        };
        if let Err(e) = dates.and(issuer) {
            let why = match e {
                CertError::Expired(t) => format!("expired on {}", date(t)),
                CertError::NotYetValid(t) => format!("is valid only from {}", date(t)),
                CertError::UntrustedIssuer => {
                    "was not issued by the trusted CA (smartcard_ca)".to_string()
                }
                other => other.to_string(),
            };
            return Err(EngineError::Invalid(format!(
                "certificate {} {why}",
                cert.subject
            )));
        }
        Ok(cert)
    }

    /// `POST /v1/admin/users/{name}/smartcards`: an admin registers a certificate.
    pub async fn smartcard_add(
        &self,
        actor: &Actor,
        name: &str,
        req: &SmartcardAdd,
    ) -> Result<TokenInfo> {
        let user = self.existing_user(name).await?;
        let (t, sc) = self
            .smartcard_register(
                actor,
                &user.name,
                req.cert_pem.as_bytes(),
                req.label.as_deref(),
            )
            .await?;
        Ok(smartcard_view(&t, &sc))
    }

    /// Registers a smartcard certificate (PEM or DER) as a `smartcard` token of `user`.
    async fn smartcard_register(
        &self,
        actor: &Actor,
        user: &str,
        cert: &[u8],
        label: Option<&str>,
    ) -> Result<(TokenRow, SmartcardRow)> {
        let now = now();
        let label = label.unwrap_or_default().trim();
        if label.len() > 64 || label.chars().any(char::is_control) {
            return Err(EngineError::Invalid(
                "label must be at most 64 printable characters".into(),
            ));
        }
        let cert = self.acceptable_cert(cert, now)?;
        let id = new_id(8)?;
        let token = TokenRow {
            id: id.clone(),
            user_name: user.to_string(),
            kind: TokenKind::Smartcard,
            algorithm: OtpAlgorithm::Sha256,
            digits: 0,
            period: 0,
            secret_sealed: String::new(),
            used: -1,
            label: label.to_string(),
            created_at: now,
            last_used_at: None,
        };
        let row = SmartcardRow {
            token_id: id,
            user_name: user.to_string(),
            fingerprint: cert.fingerprint.clone(),
            cert_der: cert.der.clone(),
            subject: cert.subject.clone(),
            issuer: cert.issuer.clone(),
            not_before: cert.not_before,
            not_after: cert.not_after,
        };
        self.store.smartcard_create(&token, &row).await?;
        self.audit(
            actor,
            "token.add",
            Some(user),
            None,
            "ok",
            format!(
                "smartcard token {} ({}, sha256 {})",
                row.token_id, row.subject, row.fingerprint
            ),
        )
        .await;
        Ok((token, row))
    }

    /// `POST /v1/smartcards/enroll`: a machine registers a card's certificate with a
    /// one-time code for that user ([`super::CodeKind::Smartcard`]).
    pub async fn smartcard_enroll(
        &self,
        machine_id: &str,
        req: &SmartcardEnroll,
    ) -> Result<TokenInfo> {
        let der = B64
            .decode(req.cert.trim())
            .map_err(|_| EngineError::Invalid("cert must be base64 DER".into()))?;
        let actor = Actor::Machine(machine_id.to_string());
        // Check the certificate before spending the code: a refused card can be retried.
        self.acceptable_cert(&der, now())?;
        if !self
            .store
            .smartcard_code_consume(&code_hash(req.code.expose()), &req.user, now())
            .await?
        {
            self.audit(
                &actor,
                "smartcard.enroll",
                Some(&req.user),
                None,
                "deny",
                "unknown, used or expired enrollment code",
            )
            .await;
            return Err(EngineError::Unauthorized(Unauthorized::SmartcardEnrollCode));
        }
        let (t, sc) = self
            .smartcard_register(&actor, &req.user, &der, req.label.as_deref())
            .await?;
        Ok(smartcard_view(&t, &sc))
    }

    /// The user's certificates a login may use, when the policy allows smartcards (`count`:
    /// the user's smartcard tokens, so users without one cost no query). Expired ones are
    /// offered too, so the person hears "expired" rather than "no method".
    pub(super) async fn smartcards_offered(
        &self,
        user: &str,
        policy: &Policy,
        count: i64,
    ) -> Result<Vec<SmartcardRow>> {
        if count == 0 || !policy.methods.contains(&Method::Smartcard) {
            return Ok(Vec::new());
        }
        Ok(self.store.smartcards_of(user).await?)
    }

    pub(super) fn smartcard_request(
        &self,
        tx_id: &str,
        cards: &[SmartcardRow],
    ) -> Result<Option<SmartcardRequest>> {
        if cards.is_empty() {
            return Ok(None);
        }
        let challenge = login_challenge(self.master.as_bytes(), tx_id)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(SmartcardRequest {
            challenge: B64.encode(challenge),
            fingerprints: cards.iter().map(|c| c.fingerprint.clone()).collect(),
        }))
    }

    /// `POST /v1/login/{tx}/smartcard`, with what the offline decision attaches to the
    /// answer.
    pub async fn login_smartcard(
        &self,
        machine_id: &str,
        tx_id: &str,
        req: &LoginSmartcard,
    ) -> Result<WithOffline<LoginStepResult>> {
        let mechanism = SigMechanism::parse(&req.mechanism).ok_or_else(|| {
            EngineError::Invalid("mechanism must be rsa-pkcs1-sha256 or ecdsa-p256-sha256".into())
        })?;
        let signature = B64
            .decode(req.signature.trim())
            .map_err(|_| EngineError::Invalid("signature must be base64".into()))?;
        let now = now();
        let (result, user) = match self
            .open_step(
                machine_id,
                tx_id,
                Method::Smartcard,
                Limits::Reserve,
                "login.smartcard",
                now,
            )
            .await?
        {
            Ok(open) => {
                let user = Some((open.user.name.clone(), open.user_has_offline));
                let answer = self.smartcard_answer(open, tx_id, mechanism, &signature, req, now);
                (answer.await?, user)
            }
            Err(denied) => (denied, None),
        };
        Ok(self.with_offline(machine_id, result, user).await)
    }

    async fn smartcard_answer(
        &self,
        open: OpenStep<'_>,
        tx_id: &str,
        mechanism: SigMechanism,
        signature: &[u8],
        req: &LoginSmartcard,
        now: i64,
    ) -> Result<LoginStepResult> {
        let OpenStep {
            ctx, user, policy, ..
        } = open;
        let fingerprint = req.fingerprint.trim().to_ascii_lowercase();
        let cards = self.store.smartcards_of(&user.name).await?;
        let card = cards.iter().find(|c| c.fingerprint == fingerprint);
        let verified = match card {
            None => Err("certificate not registered to this user".to_string()),
            Some(card) => {
                let cert = Certificate::from_der(&card.cert_der).map_err(|e| {
                    StoreError::Corrupt(format!("smartcard {}: {e}", card.token_id))
                })?;
                let challenge = login_challenge(self.master.as_bytes(), tx_id)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                match cert.verify_signature(mechanism, &challenge, signature) {
                    Ok(()) => Ok((card, cert)),
                    Err(_) => Err(format!("bad signature (token {})", card.token_id)),
                }
            }
        };
        let (card, cert) = match verified {
            Ok(v) => v,
            Err(why) => {
                return self
                    .smartcard_failure(&ctx, &user, &policy, &why, now)
                    .await;
            }
        };
        // The card holder proved possession; now the certificate itself must still be good.
        let dates = cert.check_validity(now);
        let issuer = match &self.smartcard_ca {
            Some(ca) => cert.check_issued_by(ca, now),
            None => Ok(()),
        };
        if let Err(e) = dates.and(issuer) {
            let why = format!("certificate of token {} refused: {e}", card.token_id);
            return ctx.deny(true, &why, refusal(&e)).await;
        }
        if !self.store.tx_finish(tx_id).await? {
            return ctx
                .deny(false, "transaction finished concurrently", Said::TxGone)
                .await;
        }
        self.clear_reserved(&user).await?;
        self.store.smartcard_touch(&card.token_id, now).await?;
        ctx.audit(
            "ok",
            format!("smartcard signature verified (token {})", card.token_id),
        )
        .await;
        Ok(Said::CardVerified.success())
    }

    /// A wrong signature or unknown certificate: counts toward the lockout and the
    /// transaction's attempts, as a wrong code does.
    async fn smartcard_failure(
        &self,
        ctx: &StepCtx<'_>,
        user: &UserRow,
        policy: &Policy,
        why: &str,
        now: i64,
    ) -> Result<LoginStepResult> {
        let left = match self
            .step_failure(ctx, user, policy, now, why, Said::CardsExhausted)
            .await?
        {
            FailureOutcome::AttemptsLeft(left) => left,
            FailureOutcome::Denied(denied) => return Ok(denied),
        };
        Ok(Said::CardRejected { left }.retry(left))
    }
}
