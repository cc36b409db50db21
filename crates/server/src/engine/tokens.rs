//! Admin management of a user's second factors: OATH tokens (created here, also for a token
//! app's seed), the listing of every kind, removal, a code check and HOTP resynchronisation.

use super::admin_users::validate_text;
use super::messages::Said;
use super::otp::OtpCheck;
use super::{Actor, Engine, EngineError, Result, new_id, now};
use crate::policy;
use crate::store::{Fido2Row, SmartcardRow, TokenRow};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::otp::{OtpParams, resync_hotp};
use latchkey_crypto::otpauth::OtpAuthUri;
use latchkey_proto::admin::{OtpTokenCreate, TokenEnrolled, TokenInfo, VerifyResult};
use latchkey_proto::{OtpAlgorithm, TokenKind};
use zeroize::Zeroizing;

pub(super) fn token_view(t: &TokenRow) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        user: t.user_name.clone(),
        kind: t.kind,
        algorithm: t.algorithm,
        digits: t.digits,
        period: (t.kind == TokenKind::Totp).then_some(t.period),
        label: t.label.clone(),
        created_at: t.created_at,
        last_used_at: t.last_used_at,
        smartcard: None,
    }
}

pub(super) fn smartcard_view(t: &TokenRow, sc: &SmartcardRow) -> TokenInfo {
    let mut v = token_view(t);
    v.period = None;
    v.smartcard = Some(super::smartcard::info(sc));
    v
}

pub(super) fn fido2_view(c: &Fido2Row) -> TokenInfo {
    TokenInfo {
        id: c.id.clone(),
        user: c.user_name.clone(),
        kind: TokenKind::Fido2,
        algorithm: OtpAlgorithm::Sha1,
        digits: 0,
        period: None,
        label: c.label.clone(),
        created_at: c.created_at,
        last_used_at: c.last_used_at,
        smartcard: None,
    }
}

impl Engine {
    /// `POST /v1/admin/users/{name}/tokens`.
    pub async fn token_add(
        &self,
        actor: &Actor,
        name: &str,
        req: &OtpTokenCreate,
    ) -> Result<TokenEnrolled> {
        let user = self.existing_user(name).await?;
        let (row, uri) = self.create_oath_token(&user.name, req).await?;
        self.audit(
            actor,
            "token.add",
            Some(&user.name),
            None,
            "ok",
            format!(
                "{} token {} ({}, {} digits)",
                row.kind, row.id, row.algorithm, row.digits
            ),
        )
        .await;
        Ok(TokenEnrolled {
            token: token_view(&row),
            otpauth_uri: uri,
        })
    }

    /// Creates an OATH token for `user` (generated or imported seed, sealed at rest) and
    /// returns it with its otpauth URI — the only time the seed leaves the server.
    pub(super) async fn create_oath_token(
        &self,
        user: &str,
        req: &OtpTokenCreate,
    ) -> Result<(TokenRow, String)> {
        let invalid = |m: &str| EngineError::Invalid(m.to_string());
        let algorithm = req.algorithm.unwrap_or_default();
        let digits = req.digits.unwrap_or(6);
        if !latchkey_crypto::otp::DIGITS_RANGE.contains(&digits) {
            return Err(invalid("digits must be 6, 7 or 8"));
        }
        let period = match req.kind {
            TokenKind::Totp => req.period.unwrap_or(30),
            TokenKind::Hotp => 30,
            TokenKind::App => {
                return Err(invalid(
                    "token apps register themselves: create a link with `latchkey token add-app USER`",
                ));
            }
            TokenKind::Fido2 => {
                return Err(invalid(
                    "security keys register on the machine they are plugged into: `latchkey token add-fido2 USER`",
                ));
            }
            TokenKind::Smartcard => {
                return Err(invalid(
                    "register a smartcard with `latchkey token add-smartcard USER --cert FILE.pem`",
                ));
            }
        };
        if !(10..=300).contains(&period) {
            return Err(invalid("period must be between 10 and 300 seconds"));
        }
        let label = req.label.clone().unwrap_or_default();
        validate_text("label", &label, 64)?;
        // RFC 6238 §B key sizes: the hash's output length.
        let key_len = match algorithm {
            OtpAlgorithm::Sha1 => 20,
            OtpAlgorithm::Sha256 => 32,
            OtpAlgorithm::Sha512 => 64,
        };
        let internal = |e: latchkey_crypto::Error| EngineError::Internal(e.to_string());
        let secret = match req.secret.as_deref() {
            Some(b32) => {
                let bytes = latchkey_crypto::base32_decode(b32)
                    .map_err(|e| EngineError::BadSecret(format!("secret: {e}")))?;
                if !(10..=128).contains(&bytes.len()) {
                    return Err(EngineError::BadSecret(
                        "secret must decode to 10 to 128 bytes (80 bits at least)".into(),
                    ));
                }
                Zeroizing::new(bytes)
            }
            None => Zeroizing::new(latchkey_crypto::random_bytes(key_len).map_err(internal)?),
        };
        let id = new_id(8)?;
        let sealed = self.master.seal(&secret, id.as_bytes()).map_err(internal)?;
        let row = TokenRow {
            id,
            user_name: user.to_string(),
            kind: req.kind,
            algorithm,
            digits,
            period,
            secret_sealed: B64.encode(sealed),
            used: -1,
            label,
            created_at: now(),
            last_used_at: None,
        };
        self.store.token_create(&row).await?;
        let uri = OtpAuthUri {
            kind: req.kind,
            issuer: self.cfg.issuer.clone(),
            account: user.to_string(),
            secret,
            algorithm,
            digits,
            period,
            counter: 0,
        }
        .to_uri();
        Ok((row, uri))
    }

    /// `GET /v1/admin/users/{name}/tokens`: OATH tokens and smartcards, token apps, security
    /// keys.
    pub async fn token_list(&self, name: &str) -> Result<Vec<TokenInfo>> {
        self.existing_user(name).await?;
        let mut out: Vec<TokenInfo> = self
            .store
            .tokens_of(name)
            .await?
            .iter()
            .map(token_view)
            .collect();
        if out.iter().any(|t| t.kind == TokenKind::Smartcard) {
            let cards = self.store.smartcards_of(name).await?;
            for t in out.iter_mut().filter(|t| t.kind == TokenKind::Smartcard) {
                t.period = None;
                t.smartcard = cards
                    .iter()
                    .find(|c| c.token_id == t.id)
                    .map(super::smartcard::info);
            }
        }
        out.extend(
            self.store
                .apps_of(name)
                .await?
                .into_iter()
                .map(|a| TokenInfo {
                    id: a.id,
                    user: a.user_name,
                    kind: TokenKind::App,
                    algorithm: OtpAlgorithm::Sha1,
                    digits: 0,
                    period: None,
                    label: a.device_name,
                    created_at: a.created_at,
                    last_used_at: a.last_seen_at,
                    smartcard: None,
                }),
        );
        out.extend(self.store.fido2_of(name).await?.iter().map(fido2_view));
        Ok(out)
    }

    /// Removes an OATH token or smartcard, revokes a token app (and the TOTP seed it
    /// received), or removes a security key.
    pub async fn token_remove(&self, actor: &Actor, id: &str) -> Result<()> {
        let (user, what) = match self.store.token_delete(id).await? {
            Some(user) => (user, "token"),
            None => match self.store.app_delete(id).await? {
                Some(user) => (user, "token app"),
                None => (
                    self.store
                        .fido2_delete(id)
                        .await?
                        .ok_or_else(|| EngineError::NotFound(format!("token {id:?} not found")))?,
                    "security key",
                ),
            },
        };
        // Bundles carry token apps, security keys and smartcard certificates: any removal
        // (an OATH token or smartcard too: which one it was is not known here) wipes them.
        let why = if what == "token app" {
            "token app revoked".to_string()
        } else {
            format!("{what} removed")
        };
        self.offline_revoke(&user, &why).await?;
        self.audit(
            actor,
            "token.remove",
            Some(&user),
            None,
            "ok",
            format!("{what} {id}"),
        )
        .await;
        Ok(())
    }

    /// Admin check of a code (`latchkey token verify`): same rules as a login, consumes the
    /// code and counts failures toward the lockout.
    pub async fn admin_verify(
        &self,
        actor: &Actor,
        user_name: &str,
        code: &str,
    ) -> Result<VerifyResult> {
        let user = self.existing_user(user_name).await?;
        let now = now();
        let verdict = |ok: bool, message: String| VerifyResult { ok, message };
        if !user.enabled {
            return Ok(verdict(false, "user is disabled".into()));
        }
        if user.locked_until > now {
            let said = Said::Locked {
                until: user.locked_until,
                now,
            };
            return Ok(verdict(false, said.text()));
        }
        let policy = self
            .policy_for(policy::FALLBACK, &user.name, &user.groups)
            .await?;
        let result = match self.check_otp(&user, code, now).await? {
            OtpCheck::Ok { token_id } => {
                self.clear_failures(&user).await?;
                verdict(true, format!("code accepted (token {token_id})"))
            }
            check => {
                let why = check.failure_words();
                let (_, until) = self.count_failure(&user, &policy, now).await?;
                if until > 0 {
                    let said = Said::Locked { until, now };
                    verdict(false, format!("{why}; {}", said.text()))
                } else {
                    verdict(false, why.to_string())
                }
            }
        };
        self.audit(
            actor,
            "token.verify",
            Some(user_name),
            None,
            if result.ok { "ok" } else { "fail" },
            &result.message,
        )
        .await;
        Ok(result)
    }

    /// HOTP resynchronisation with two consecutive codes.
    pub async fn hotp_resync(
        &self,
        actor: &Actor,
        token_id: &str,
        code1: &str,
        code2: &str,
    ) -> Result<VerifyResult> {
        let Some(t) = self.store.token_get(token_id).await? else {
            return Err(EngineError::NotFound(format!(
                "token {token_id:?} not found"
            )));
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
            actor,
            "token.resync",
            Some(&t.user_name),
            None,
            if ok { "ok" } else { "fail" },
            format!("token {}", t.id),
        )
        .await;
        let message = if ok {
            "token resynchronised"
        } else {
            "the two codes were not found in the resynchronisation window"
        };
        Ok(VerifyResult {
            ok,
            message: message.into(),
        })
    }
}
