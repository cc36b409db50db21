//! The engine called directly (not through HTTP), against a real SQLite store in a temp
//! directory: each test builds what it needs through the engine's own admin calls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{CodeKind, Engine, EngineParts, now};
use crate::audit::Auditor;
use crate::config::ServerConfig;
use crate::store::Store;
use crate::{bootstrap, policy};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::keys::SigningKeyPair;
use latchkey_proto::admin::{JoinTokenCreate, OtpTokenCreate, PolicyUpdate, UserCreate};
use latchkey_proto::app::AppRegister;
use latchkey_proto::login::{LoginStart, LoginStartResult};
use latchkey_proto::machine::JoinRequest;
use latchkey_proto::{OtpAlgorithm, TokenKind};

mod admin_lockout;
mod admins;
mod enrol;
mod inline_enrol;
mod invites;
mod login;
mod offline;
mod push;
mod self_service;
mod web;
mod web_signin;

/// An engine over a fresh data directory, with one joined machine.
pub(crate) struct Fx {
    pub e: Engine,
    pub machine: String,
    _dir: tempfile::TempDir,
}

impl Fx {
    /// The engine and the directory holding its data (kept for as long as the engine).
    pub(crate) fn into_parts(self) -> (Engine, tempfile::TempDir) {
        (self.e, self._dir)
    }
}

/// The seed every test token gets: 20 bytes, RFC 6238's SHA-1 test key.
pub(super) const SEED: &[u8] = b"12345678901234567890";

pub(crate) async fn fx() -> Fx {
    fx_with(|_| {}).await
}

/// [`fx`] with a configuration changed by `tune` first.
pub(crate) async fn fx_with(tune: impl FnOnce(&mut ServerConfig)) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new(dir.path().join("data"));
    tune(&mut cfg);
    bootstrap::ensure_data_dir(&cfg.data_dir).unwrap();
    let store = Store::open(&cfg.database_spec()).await.unwrap();
    let keys = bootstrap::keys(&cfg.data_dir, &store, now()).await.unwrap();
    for id in policy::BUILT_IN {
        store
            .policy_insert_if_missing(id, &Default::default(), now())
            .await
            .unwrap();
    }
    let (auditor, _task) = Auditor::start(store.clone());
    let e = Engine::new(EngineParts {
        cfg,
        store,
        master: keys.master,
        signing: keys.signing,
        tls_fingerprint: String::new(),
        auditor,
        smartcard_ca: None,
    });
    let join = e
        .join_token_create(
            &crate::engine::Actor::Admin,
            &JoinTokenCreate {
                expires_in: 60,
                note: None,
            },
        )
        .await
        .unwrap();
    let joined = e
        .machine_join(
            "127.0.0.1",
            &JoinRequest {
                join_token: join.join_token,
                hostname: "ws1".into(),
                client_cert_sha256: None,
            },
        )
        .await
        .unwrap();
    Fx {
        e,
        machine: joined.machine_id.into_string(),
        _dir: dir,
    }
}

impl Fx {
    pub async fn user(&self, name: &str) {
        self.e
            .user_add(
                &crate::engine::Actor::Admin,
                UserCreate {
                    name: name.into(),
                    display_name: None,
                    groups: vec![],
                },
            )
            .await
            .unwrap();
    }

    /// A user with one TOTP token seeded with [`SEED`].
    pub async fn user_with_totp(&self, name: &str) {
        self.user(name).await;
        self.e
            .token_add(
                &crate::engine::Actor::Admin,
                name,
                &OtpTokenCreate {
                    kind: TokenKind::Totp,
                    algorithm: None,
                    digits: None,
                    period: None,
                    label: None,
                    secret: Some(latchkey_crypto::base32_encode(SEED)),
                },
            )
            .await
            .unwrap();
    }

    /// Registers a token app for `user` with a one-time code; returns its key (the bearer
    /// credential) and its signing key.
    pub async fn app(&self, user: &str) -> (String, SigningKeyPair) {
        let issued = self
            .e
            .enrolment_code(&crate::engine::Actor::Admin, user, CodeKind::TokenApp, None)
            .await
            .unwrap();
        let key = SigningKeyPair::generate().unwrap();
        let registered = self
            .e
            .app_register(&AppRegister {
                code: issued.code,
                device_name: "phone".into(),
                x25519_public: B64.encode([9u8; 32]),
                ed25519_public: B64.encode(key.public_bytes()),
            })
            .await
            .unwrap();
        (registered.app_key, key)
    }

    pub async fn set(&self, client_id: &str, settings: &[(&str, &str)]) {
        let req = PolicyUpdate {
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        self.e
            .policy_set(&crate::engine::Actor::Admin, client_id, &req)
            .await
            .unwrap();
    }

    pub async fn start(&self, user: &str) -> LoginStartResult {
        let req = LoginStart {
            user: user.parse().unwrap(),
            client_id: "login".parse().unwrap(),
            rhost: None,
            tty: None,
            enroll: false,
        };
        self.e.login_start(&self.machine, &req).await.unwrap().inner
    }

    /// A login start that must be a challenge: its transaction id.
    pub async fn challenge(&self, user: &str) -> String {
        match self.start(user).await {
            LoginStartResult::Challenge { tx, .. } => tx.into_string(),
            other => panic!("expected a challenge, got {other:?}"),
        }
    }
}

/// The current TOTP code of [`SEED`].
pub(super) fn code_now() -> String {
    latchkey_crypto::otp::totp(SEED, now() as u64, 30, OtpAlgorithm::Sha1, 6)
}

/// A six-digit code that is not the seed's in the accepted window.
pub(super) fn wrong_code() -> String {
    let t = now() as u64;
    let near: Vec<String> = [t - 30, t, t + 30]
        .iter()
        .map(|&s| latchkey_crypto::otp::totp(SEED, s, 30, OtpAlgorithm::Sha1, 6))
        .collect();
    (0..1000u32)
        .map(|n| format!("{:06}", 100_000 + n * 7))
        .find(|c| !near.contains(c))
        .unwrap()
}
