//! A token app speaking the app API directly with its own keys, so tests can forge every kind
//! of bad answer (the `latchkey-token` CLI has its own end-to-end tests).

use crate::TestServer;
use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey};
use latchkey_client::{Client, Credential};
use latchkey_proto::app::*;
use latchkey_proto::{TxId, routes};

pub struct SoftApp {
    pub id: String,
    pub key: SigningKey,
    pub client: Client,
    pub registered: AppRegistered,
}

fn key32() -> Result<[u8; 32]> {
    latchkey_crypto::random_bytes(32)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("random bytes"))
}

impl SoftApp {
    /// Registers through an admin-made link, as `latchkey-token register` does.
    pub async fn register(srv: &TestServer, user: &str) -> Result<SoftApp> {
        let link: AppLinkCreated = srv
            .admin()?
            .post(&routes::admin_user_apps(user), &AppLinkCreate::default())
            .await?;
        let key = SigningKey::from_bytes(&key32()?);
        let x = x25519_dalek::StaticSecret::from(key32()?);
        let reg = AppRegister {
            code: link.code,
            device_name: "test phone".into(),
            x25519_public: B64.encode(x25519_dalek::PublicKey::from(&x).as_bytes()),
            ed25519_public: B64.encode(key.verifying_key().as_bytes()),
        };
        let registered: AppRegistered = srv.anonymous()?.post(routes::APP_REGISTER, &reg).await?;
        let client = srv.client(Credential::Bearer(registered.app_key.clone()))?;
        Ok(SoftApp {
            id: registered.app_id.clone(),
            key,
            client,
            registered,
        })
    }

    pub async fn pending(&self, wait: u64) -> Result<Vec<PushRequest>> {
        Ok(self
            .client
            .get(&format!("{}?wait={wait}", routes::APP_PENDING))
            .await?)
    }

    pub fn sign(&self, tx: &TxId, d: Decision, n: Option<u32>, nonce: &str) -> PushResponse {
        let sig = self.key.sign(&push_signing_bytes(tx, d, n, nonce));
        PushResponse {
            tx: tx.clone(),
            decision: d,
            number: n,
            nonce: nonce.into(),
            signature: B64.encode(sig.to_bytes()),
            reason: None,
        }
    }

    pub async fn respond(
        &self,
        r: &PushResponse,
    ) -> std::result::Result<PushVerdict, latchkey_client::Error> {
        self.client.post(routes::APP_RESPOND, r).await
    }

    /// Badges in or out now, signed as `latchkey-token badge` does.
    pub async fn badge(&self, state: BadgeState) -> Result<PushVerdict> {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let sig = self.key.sign(&badge_signing_bytes(&self.id, state, time));
        let b = Badge {
            state,
            time,
            signature: B64.encode(sig.to_bytes()),
        };
        Ok(self.client.post(routes::APP_BADGE, &b).await?)
    }

    pub async fn approve(
        &self,
        req: &PushRequest,
        number: u32,
    ) -> std::result::Result<PushVerdict, latchkey_client::Error> {
        self.respond(&self.sign(&req.tx, Decision::Approve, Some(number), &req.nonce))
            .await
    }
}
