//! Security keys and passkeys registered in a browser (docs/web.md, "Security keys in the
//! browser"): the portal's WebAuthn `create`, bound to `web_rp_id` and `web_origin`, with
//! user verification required (the key will sign in to the portal, where verification is
//! required). The challenge is single use and lives 2 minutes; the registration is the
//! agent's ceremony (`fido2_registrations`, `register_credential`) with the browser's party.

use super::fido2::{Ceremony, user_handle};
use super::self_service::Me;
use super::{Engine, EngineError, Result, now};
use latchkey_crypto::webauthn::{ALG_EDDSA, ALG_ES256, b64url};
use latchkey_proto::admin::TokenInfo;

/// A browser registration's challenge lives 2 minutes.
const REG_TTL: i64 = 120;

/// The options of a WebAuthn `create` for the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCreate {
    /// Names the registration in the finishing form (only the user it was made for can
    /// finish it).
    pub ceremony: String,
    pub rp_id: String,
    pub rp_name: String,
    /// base64url user handle.
    pub user_id: String,
    pub user_name: String,
    pub user_display_name: String,
    /// base64url
    pub challenge: String,
    pub algorithms: Vec<i64>,
    /// base64url ids of the user's credentials: the authenticator refuses to register twice.
    pub exclude_credentials: Vec<String>,
    pub timeout_ms: u64,
}

impl Engine {
    /// Starts registering a key for the signed-in user, under `label`.
    pub async fn own_key_start(&self, me: &Me, label: &str) -> Result<KeyCreate> {
        // (The label may also come with the answer: own_key_finish.)
        let party = self.browser_party()?;
        let label = label.trim();
        let label = if label.is_empty() {
            "security key"
        } else {
            label
        };
        super::admin_users::validate_text("label", label, 64)?;
        let user = self.existing_user(&me.name).await?;
        let ceremony = super::new_id(32)?;
        let hash = super::enrol::code_hash(&ceremony);
        let now = now();
        let raw =
            latchkey_crypto::random_bytes(32).map_err(|e| EngineError::Internal(e.to_string()))?;
        let challenge = b64url(&raw);
        self.store
            .fido2_reg_create(&hash, &user.name, label, now, now + REG_TTL)
            .await?;
        if self
            .store
            .fido2_reg_challenge(&hash, &challenge, now)
            .await?
            .is_none()
        {
            return Err(EngineError::Internal("registration vanished".into()));
        }
        let exclude = self
            .store
            .fido2_of(&user.name)
            .await?
            .into_iter()
            .map(|c| c.credential_id)
            .collect();
        Ok(KeyCreate {
            ceremony,
            rp_id: party.rp_id,
            rp_name: self.cfg.issuer.clone(),
            user_id: b64url(&user_handle(&user.name)),
            user_name: user.name.clone(),
            user_display_name: user.display_name.clone(),
            challenge,
            algorithms: vec![ALG_ES256, ALG_EDDSA],
            exclude_credentials: exclude,
            timeout_ms: (REG_TTL as u64) * 1000,
        })
    }

    /// Finishes the registration `ceremony` of the signed-in user with the browser's
    /// answer (base64url attestation object and client data), under `label` when one is
    /// given now (the page asks for it beside the button).
    pub async fn own_key_finish(
        &self,
        me: &Me,
        ceremony: &str,
        label: Option<&str>,
        attestation_object: &str,
        client_data_json: &str,
    ) -> Result<TokenInfo> {
        let party = self.browser_party()?;
        let label = label.map(str::trim).filter(|l| !l.is_empty());
        if let Some(l) = label {
            super::admin_users::validate_text("label", l, 64)?;
        }
        let now = now();
        let hash = super::enrol::code_hash(ceremony);
        let mut reg = match self.store.fido2_reg_get(&hash, now).await? {
            // Another user's ceremony is none.
            Some(r) if r.user_name == me.name => r,
            _ => {
                return Err(EngineError::Fido2Refused(
                    super::messages::KeyRegistration::CodeGone,
                ));
            }
        };
        if let Some(l) = label {
            reg.label = l.to_string();
        }
        let actor = super::Actor::User(me.name.clone());
        let done = self
            .register_credential(
                &Ceremony {
                    actor: &actor,
                    code_hash: &hash,
                    reg: &reg,
                    party: &party,
                },
                attestation_object,
                client_data_json,
                now,
            )
            .await?;
        Ok(done.token)
    }
}
