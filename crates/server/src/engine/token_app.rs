//! The token app: who it is (its key), its registration with a one-time code (which also
//! gives it a TOTP seed), and badging in and out. Push answers are in `push.rs`.

use super::enrol::code_hash;
use super::{Actor, Engine, EngineError, Result, Unauthorized, new_id, now};
use crate::store::{AppRow, NewApp};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::keys::hash_api_key;
use latchkey_proto::TokenKind;
use latchkey_proto::admin::OtpTokenCreate;
use latchkey_proto::app::{
    AppRegister, AppRegistered, Badge, BadgeState, PushVerdict, badge_signing_bytes,
};

fn public_key(field: &str, b64: &str) -> Result<String> {
    match B64.decode(b64) {
        Ok(k) if k.len() == 32 => Ok(B64.encode(k)),
        _ => Err(EngineError::Invalid(format!(
            "{field} must be a 32-byte key in base64"
        ))),
    }
}

impl Engine {
    /// The registered token app whose key this is. A revoked app's key matches nothing.
    pub async fn app_caller(&self, key: &str) -> Result<AppRow> {
        self.store
            .app_by_key_hash(&hash_api_key(key))
            .await?
            .ok_or(EngineError::Unauthorized(Unauthorized::AppKey))
    }

    /// `POST /v1/apps/register`: redeems a token-app code ([`super::CodeKind::TokenApp`]).
    pub async fn app_register(&self, req: &AppRegister) -> Result<AppRegistered> {
        let device = req.device_name.trim();
        if device.is_empty() || device.len() > 64 || device.chars().any(char::is_control) {
            return Err(EngineError::Invalid(
                "device_name must be 1 to 64 printable characters".into(),
            ));
        }
        let x25519 = public_key("x25519_public", &req.x25519_public)?;
        let ed25519 = public_key("ed25519_public", &req.ed25519_public)?;
        if req.code.len() > 200 {
            return Err(EngineError::Invalid("code is too long".into()));
        }
        let now = now();
        let Some(user) = self
            .store
            .app_link_consume(&code_hash(req.code.expose()), now)
            .await?
        else {
            self.audit(
                &Actor::Anonymous,
                "app.register",
                None,
                None,
                "deny",
                "unknown, used or expired code",
            )
            .await;
            return Err(EngineError::Unauthorized(Unauthorized::AppRegistrationCode));
        };
        let user: latchkey_proto::UserName = super::stored(user)?;
        let code_hash = code_hash(req.code.expose());
        let app_id = new_id(10)?;
        let app_key = Engine::new_secret("lkp")?;
        self.store
            .app_create(&NewApp {
                id: &app_id,
                user_name: &user,
                device_name: device,
                x25519_public: &x25519,
                ed25519_public: &ed25519,
                key_hash: &hash_api_key(&app_key),
                now,
            })
            .await?;
        let spec = OtpTokenCreate {
            kind: TokenKind::Totp,
            algorithm: None,
            digits: None,
            period: None,
            label: Some(format!("app:{device}").chars().take(64).collect()),
            secret: None,
        };
        let (token, otpauth_uri) = self.create_oath_token(&user, &spec).await?;
        self.store.token_set_app(&token.id, &app_id).await?;
        self.audit(
            &Actor::App(app_id.clone()),
            "app.register",
            Some(&user),
            None,
            "ok",
            format!("token app {device:?} registered"),
        )
        .await;
        // A login waiting on this registration (inline enrolment) goes on now.
        self.enrol_app_registered(&code_hash).await;
        Ok(AppRegistered {
            app_id,
            user,
            app_key,
            otpauth_uri,
        })
    }

    /// `POST /v1/apps/badge`: a signed badge-in or badge-out of the app's user.
    pub async fn app_badge(&self, app: &AppRow, req: &Badge) -> Result<PushVerdict> {
        let now = now();
        let public = B64.decode(&app.ed25519_public).unwrap_or_default();
        let sig = B64.decode(&req.signature).unwrap_or_default();
        if !latchkey_crypto::keys::ed25519_verify(
            &public,
            &badge_signing_bytes(&app.id, req.state, req.time),
            &sig,
        ) {
            return Ok(PushVerdict {
                ok: false,
                message: "The badge signature is not valid".into(),
            });
        }
        if (req.time - now).abs() > 300 {
            return Ok(PushVerdict {
                ok: false,
                message: "The badge time is more than 5 minutes off the server's clock".into(),
            });
        }
        let state = match req.state {
            BadgeState::In => "in",
            BadgeState::Out => "out",
        };
        self.store
            .badge_set(&app.user_name, state, req.time, &app.id)
            .await?;
        self.audit(
            &Actor::App(app.id.clone()),
            "badge",
            Some(&app.user_name),
            None,
            "ok",
            format!("badged {state}"),
        )
        .await;
        Ok(PushVerdict {
            ok: true,
            message: format!("Badged {state}"),
        })
    }
}
