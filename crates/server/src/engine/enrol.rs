//! One-time enrolment codes: an admin (later the user themself, or an inline enrolment at
//! login) gets a code for one user; whoever holds it may register one thing for that user
//! once: a token app, a security key, a smartcard. Issued, shown once and stored hashed
//! here, for every kind; each kind redeems it in its own ceremony.

use super::admin_users::validate_text;
use super::{Actor, Engine, EngineError, Result, now};
use latchkey_crypto::keys::hash_api_key;
use latchkey_proto::{Secret, UserName};

/// Default lifetime of a code: 15 minutes.
const DEFAULT_TTL: u64 = 900;
/// Longest lifetime of a code: 7 days.
const MAX_TTL: u64 = 7 * 86_400;

/// What a one-time code lets its holder register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeKind {
    /// A token app (`lkr_…`): registration and its TOTP seed.
    TokenApp,
    /// A security key (`lkf_…`), registered under `label` (default "security key").
    SecurityKey { label: Option<String> },
    /// A smartcard certificate (`lks_…`), enrolled by a joined machine.
    Smartcard,
}

impl CodeKind {
    fn prefix(&self) -> &'static str {
        match self {
            CodeKind::TokenApp => "lkr",
            CodeKind::SecurityKey { .. } => "lkf",
            CodeKind::Smartcard => "lks",
        }
    }
}

/// A code just issued: shown to the admin once, never stored in clear.
#[derive(Debug, Clone)]
pub struct IssuedCode {
    pub user: UserName,
    pub code: Secret,
    pub expires_at: i64,
}

/// The stored form of a code.
pub(super) fn code_hash(code: &str) -> String {
    hash_api_key(code)
}

impl Engine {
    /// Issues a one-time code of `kind` for the existing user `user`, valid `expires_in`
    /// seconds (15 minutes unless asked, at most 7 days).
    pub async fn enrolment_code(
        &self,
        actor: &Actor,
        user: &str,
        kind: CodeKind,
        expires_in: Option<u64>,
    ) -> Result<IssuedCode> {
        let user: UserName = super::stored(self.existing_user(user).await?.name)?;
        let ttl = expires_in.unwrap_or(DEFAULT_TTL);
        if !(1..=MAX_TTL).contains(&ttl) {
            return Err(EngineError::Invalid(
                "expires_in must be between 1 second and 7 days".into(),
            ));
        }
        if let CodeKind::SecurityKey { label: Some(label) } = &kind {
            validate_text("label", label, 64)?;
        }
        let code = Engine::new_secret(kind.prefix())?;
        let hash = code_hash(&code);
        let now = now();
        let expires_at = now + ttl as i64;
        let (action, detail) = match &kind {
            CodeKind::TokenApp => {
                self.store
                    .app_link_create(&hash, &user, now, expires_at)
                    .await?;
                ("app.link", format!("registration link valid {ttl} s"))
            }
            CodeKind::SecurityKey { label } => {
                let label = label.as_deref().unwrap_or("security key");
                self.store
                    .fido2_reg_create(&hash, &user, label, now, expires_at)
                    .await?;
                (
                    "fido2.register",
                    format!("registration code issued, valid {ttl} s"),
                )
            }
            CodeKind::Smartcard => {
                self.store
                    .smartcard_code_create(&hash, &user, now, expires_at)
                    .await?;
                ("smartcard.code", format!("enrollment code valid {ttl} s"))
            }
        };
        self.audit(actor, action, Some(&user), None, "ok", detail)
            .await;
        Ok(IssuedCode {
            user,
            code: Secret::from(code),
            expires_at,
        })
    }
}
