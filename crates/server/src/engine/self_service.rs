//! The self-service portal's decisions (docs/web.md, "Self-service portal"): a signed-in user
//! acting on their own account. Every method takes the session's [`Me`]; a token or event id
//! of another user is [`EngineError::NotFound`], never acted on; what a session of
//! [`Strength::Invite`] may not do is refused here, not by the pages.
//!
//! Invite and Strong sessions may list, rename, add (an authenticator, the token app, a
//! security key) and test; removing a factor and reporting a login need a Strong session
//! (a passkey or security key with user verification, or a code plus a push approval).

use super::admin_users::validate_text;
use super::login::Limits;
use super::web_sessions::Strength;
use super::{Actor, CodeKind, Engine, EngineError, Forbidden, Result, new_id, now};
use crate::policy;
use crate::store::{OwnRemoved, PendingTotp, TokenRow};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::otp::{OtpParams, verify_totp};
use latchkey_crypto::otpauth::OtpAuthUri;
use latchkey_proto::admin::TokenInfo;
use latchkey_proto::login::LoginStepResult;
use latchkey_proto::{Method, OtpAlgorithm, Secret, TokenKind};
use zeroize::Zeroizing;

/// A pending authenticator lives 10 minutes and takes 5 wrong first codes.
const PENDING_TTL: i64 = 600;
const PENDING_ATTEMPTS: i64 = 5;
/// What an invite session hears when it asks for what needs the user's own sign-in.
pub const NEEDS_STRONG_SIGNIN: &str = "This needs your own sign-in (a security key or passkey, or a code and your phone's approval): sign out, then sign in again.";
/// Own recent logins listed.
pub const OWN_LOGINS: i64 = 50;

/// The signed-in user of a portal session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    pub name: String,
    pub strength: Strength,
}

impl Me {
    fn actor(&self) -> Actor {
        Actor::User(self.name.clone())
    }

    fn strong(&self) -> Result<()> {
        match self.strength {
            Strength::Strong => Ok(()),
            Strength::Invite => Err(EngineError::Forbidden(Forbidden::NeedsStrongSignin)),
        }
    }
}

/// An authenticator being enrolled: shown once, confirmed by its first code.
#[derive(Debug, Clone)]
pub struct OwnTotp {
    /// The pending enrolment's id (the confirm form names it).
    pub id: String,
    /// Base32, for typing in.
    pub secret: Secret,
    pub otpauth_uri: Secret,
    pub expires_at: i64,
}

/// What a first code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TotpConfirmed {
    Enrolled {
        token_id: String,
    },
    Wrong {
        left: i64,
    },
    /// Expired, unknown, confirmed already or out of attempts: start again.
    Gone,
}

/// A token app registration link for the user's own phone.
#[derive(Debug, Clone)]
pub struct OwnAppLink {
    pub url: Secret,
    pub expires_at: i64,
}

/// One of the user's own recent logins (an authentication event of an agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnLogin {
    pub id: String,
    pub time_ms: i64,
    pub machine: String,
    pub client_id: Option<String>,
    pub service: Option<String>,
    pub rhost: Option<String>,
    pub method: Option<String>,
    pub online: Option<bool>,
    pub success: bool,
    pub reason: Option<String>,
}

/// A token test's verdict, in one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tested {
    pub ok: bool,
    pub message: String,
}

impl Engine {
    /// The user's own tokens, every kind.
    pub async fn own_tokens(&self, me: &Me) -> Result<Vec<TokenInfo>> {
        self.token_list(&me.name).await
    }

    pub async fn own_token_rename(&self, me: &Me, id: &str, label: &str) -> Result<()> {
        let label = label.trim();
        validate_text("label", label, 64)?;
        if label.is_empty() {
            return Err(EngineError::Invalid("Give the token a name.".into()));
        }
        if !self.store.own_factor_rename(&me.name, id, label).await? {
            return Err(not_yours());
        }
        self.audit(
            &me.actor(),
            "token.rename",
            Some(&me.name),
            None,
            "ok",
            format!("token {id} renamed {label:?}"),
        )
        .await;
        Ok(())
    }

    /// Removes one of the user's factors, never the last (that needs an admin): one store
    /// transaction decides, so two removals at once cannot both pass.
    pub async fn own_token_remove(&self, me: &Me, id: &str) -> Result<()> {
        me.strong()?;
        let what = match self.store.own_factor_remove(&me.name, id).await? {
            OwnRemoved::NotFound => return Err(not_yours()),
            OwnRemoved::LastOne => {
                return Err(EngineError::Invalid(
                    "This is your last second factor: add another one first, or ask your administrator to remove it.".into(),
                ));
            }
            OwnRemoved::Token => "token",
            OwnRemoved::App => "token app",
            OwnRemoved::SecurityKey => "security key",
        };
        self.offline_revoke(&me.name, &format!("{what} removed by its user"))
            .await?;
        self.audit(
            &me.actor(),
            "token.remove",
            Some(&me.name),
            None,
            "ok",
            format!("{what} {id} removed in the self-service portal"),
        )
        .await;
        Ok(())
    }

    /// Starts enrolling an authenticator app: a fresh seed, kept (sealed) until its first
    /// code confirms it. A new start replaces the user's pending one.
    pub async fn own_totp_start(&self, me: &Me) -> Result<OwnTotp> {
        let internal = |e: latchkey_crypto::Error| EngineError::Internal(e.to_string());
        let seed = Zeroizing::new(latchkey_crypto::random_bytes(20).map_err(internal)?);
        let id = new_id(10)?;
        let sealed = self.master.seal(&seed, id.as_bytes()).map_err(internal)?;
        let now = now();
        let pending = PendingTotp {
            user_name: me.name.clone(),
            id: id.clone(),
            secret_sealed: B64.encode(sealed),
            label: "authenticator app".into(),
            attempts: 0,
            expires_at: now + PENDING_TTL,
        };
        self.store.pending_totp_put(&pending, now).await?;
        Ok(self.own_totp_view(me, &pending, &seed))
    }

    /// The user's pending authenticator `id` again (to show its QR code once more after a
    /// wrong first code), or None when it ended.
    pub async fn own_totp_pending(&self, me: &Me, id: &str) -> Result<Option<OwnTotp>> {
        let Some(p) = self.store.pending_totp_get(&me.name, id, now()).await? else {
            return Ok(None);
        };
        let seed = self.pending_seed(&p)?;
        Ok(Some(self.own_totp_view(me, &p, &seed)))
    }

    fn pending_seed(&self, p: &PendingTotp) -> Result<Zeroizing<Vec<u8>>> {
        let sealed = B64
            .decode(&p.secret_sealed)
            .map_err(|_| EngineError::Internal(format!("pending token {}: not base64", p.id)))?;
        self.master
            .open(&sealed, p.id.as_bytes())
            .map_err(|_| EngineError::Internal(format!("pending token {}: does not open", p.id)))
    }

    fn own_totp_view(&self, me: &Me, p: &PendingTotp, seed: &[u8]) -> OwnTotp {
        let uri = OtpAuthUri {
            kind: TokenKind::Totp,
            issuer: self.cfg.issuer.clone(),
            account: me.name.clone(),
            secret: Zeroizing::new(seed.to_vec()),
            algorithm: OtpAlgorithm::Sha1,
            digits: 6,
            period: 30,
            counter: 0,
        };
        OwnTotp {
            id: p.id.clone(),
            secret: Secret::from(latchkey_crypto::base32_encode(seed)),
            otpauth_uri: Secret::from(uri.to_compact_uri()),
            expires_at: p.expires_at,
        }
    }

    /// The pending authenticator's first code: right, the token is stored (that code used
    /// up); wrong, one of its attempts is spent (taken before the code is judged).
    pub async fn own_totp_confirm(&self, me: &Me, id: &str, code: &str) -> Result<TotpConfirmed> {
        let now = now();
        let Some(p) = self
            .store
            .pending_totp_attempt(&me.name, id, PENDING_ATTEMPTS, now)
            .await?
        else {
            return Ok(TotpConfirmed::Gone);
        };
        let seed = self.pending_seed(&p)?;
        let params = OtpParams {
            algorithm: OtpAlgorithm::Sha1,
            digits: 6,
            period: 30,
        };
        let step = verify_totp(
            &seed,
            code.trim(),
            now.max(0) as u64,
            params,
            self.cfg.totp_window,
            None,
        );
        let Some(step) = step else {
            let left = PENDING_ATTEMPTS - p.attempts;
            if left <= 0 {
                self.store.pending_totp_drop(&me.name, id).await?;
                return Ok(TotpConfirmed::Gone);
            }
            return Ok(TotpConfirmed::Wrong { left });
        };
        let internal = |e: latchkey_crypto::Error| EngineError::Internal(e.to_string());
        let token_id = new_id(8)?;
        let token = TokenRow {
            secret_sealed: B64.encode(
                self.master
                    .seal(&seed, token_id.as_bytes())
                    .map_err(internal)?,
            ),
            id: token_id.clone(),
            user_name: me.name.clone(),
            kind: TokenKind::Totp,
            algorithm: OtpAlgorithm::Sha1,
            digits: 6,
            period: 30,
            used: i64::try_from(step).unwrap_or(i64::MAX),
            label: p.label.clone(),
            created_at: now,
            last_used_at: Some(now),
        };
        if !self.store.pending_totp_confirm(&me.name, id, token).await? {
            return Ok(TotpConfirmed::Gone);
        }
        self.audit(
            &me.actor(),
            "token.add",
            Some(&me.name),
            None,
            "ok",
            format!("authenticator app enrolled in the self-service portal (token {token_id})"),
        )
        .await;
        Ok(TotpConfirmed::Enrolled { token_id })
    }

    /// A token-app registration link for the user's own phone (15 minutes, one use).
    pub async fn own_app_link(&self, me: &Me, host: Option<&str>) -> Result<OwnAppLink> {
        let issued = self
            .enrolment_code(&me.actor(), &me.name, CodeKind::TokenApp, None)
            .await?;
        let url = format!(
            "{}/app/register?code={}&pin={}",
            self.public_base(host),
            issued.code.expose(),
            self.tls_fingerprint
        );
        Ok(OwnAppLink {
            url: Secret::from(url),
            expires_at: issued.expires_at,
        })
    }

    /// Checks a code of one of the user's own code tokens as a login would (replay floor,
    /// attempts, the code used up when right), without a login: a transaction of the
    /// portal's pseudo-machine carries it through the login checks, its failures counted
    /// toward the portal's lockout (as a portal sign-in's), never the login screens'.
    pub async fn own_token_test(&self, me: &Me, id: &str, code: &str, ip: &str) -> Result<Tested> {
        let Some(token) = self
            .store
            .token_get(id)
            .await?
            .filter(|t| t.user_name == me.name)
        else {
            return Err(not_yours());
        };
        if !matches!(token.kind, TokenKind::Totp | TokenKind::Hotp) {
            return Err(EngineError::Invalid(
                "Only tokens that show a code can be tested here.".into(),
            ));
        }
        let now = now();
        let tx = self.web_tx(&me.name, ip, now).await?;
        // The portal's own counter: a holder of an invite session testing wrong codes
        // locks the portal, never the user's logins at machines.
        let open = match self
            .open_portal_step(&tx, Method::Otp, Limits::WithVerdict, "token.test", now)
            .await?
        {
            Ok(open) => open,
            Err(denied) => return Ok(tested(denied)),
        };
        let mut open = open;
        open.tokens.retain(|t| t.id == token.id);
        let result = self.otp_answer(open, &tx, code.trim(), now).await?;
        self.store.tx_finish(&tx).await?;
        Ok(tested(result))
    }

    /// The user's newest logins (authentication events from the agents).
    pub async fn own_logins(&self, me: &Me) -> Result<Vec<OwnLogin>> {
        let events = self.store.events_auth_of(&me.name, OWN_LOGINS).await?;
        Ok(events
            .into_iter()
            .map(|e| OwnLogin {
                success: e.event.kind == latchkey_proto::events::EventKind::AuthSuccess,
                id: e.event.id,
                time_ms: e.event.time_ms,
                machine: e.hostname,
                client_id: e.event.client_id,
                service: e.event.service,
                rhost: e.event.rhost,
                method: e.event.method,
                online: e.event.online,
                reason: e.event.reason,
            })
            .collect())
    }

    /// "This wasn't me" on one of the user's logins: audited (`user.report`) for the
    /// admins, and the user disabled when the policy of that login's context says
    /// `report_locks_user`. Returns whether the user was disabled.
    pub async fn own_login_report(&self, me: &Me, event_id: &str) -> Result<bool> {
        me.strong()?;
        let Some(e) = self.store.event_of(&me.name, event_id).await? else {
            return Err(EngineError::NotFound(
                "There is no such login of yours.".into(),
            ));
        };
        let user = self.existing_user(&me.name).await?;
        let cid = e.event.client_id.clone();
        let context = match &cid {
            Some(c) if self.policy_settings(c).await?.is_some() => c.clone(),
            _ => policy::FALLBACK.to_string(),
        };
        let policy = self.policy_for(&context, &user.name, &user.groups).await?;
        let what = format!(
            "login {} on {} at {} ({}{}) reported as not theirs",
            e.event.id,
            e.hostname,
            e.event.time_ms / 1000,
            cid.as_deref().unwrap_or("-"),
            e.event
                .rhost
                .as_deref()
                .map(|r| format!(", from {r}"))
                .unwrap_or_default(),
        );
        let lock = policy.report_locks_user;
        if lock {
            self.store
                .user_update(&me.name, None, None, Some(false))
                .await?;
            self.offline_revoke(&me.name, "the user reported a login as not theirs")
                .await?;
        }
        let detail = if lock {
            format!("{what}; user disabled (report_locks_user of {context})")
        } else {
            what
        };
        self.audit(
            &me.actor(),
            "user.report",
            Some(&me.name),
            cid.as_deref(),
            if lock { "deny" } else { "ok" },
            detail,
        )
        .await;
        Ok(lock)
    }
}

fn not_yours() -> EngineError {
    EngineError::NotFound("You have no token with this id.".into())
}

fn tested(r: LoginStepResult) -> Tested {
    match r {
        LoginStepResult::Success { .. } => Tested {
            ok: true,
            message: "The code is right: this token works.".into(),
        },
        LoginStepResult::Retry { .. } => Tested {
            ok: false,
            message: "That code is not right, or it was used already: wait for the next one and try again.".into(),
        },
        LoginStepResult::Deny { reason } => Tested {
            ok: false,
            message: reason,
        },
        LoginStepResult::Pending { message } => Tested { ok: false, message },
    }
}
