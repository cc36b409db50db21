//! The agent's one door to the servers: the server list with its selection policy and
//! circuit breaker. Every call returns a definite answer (with what rode along it),
//! `Unreachable` or `Refused`; it carries and decides nothing. The login engine turns
//! `Unreachable` into the offline path and applies offline attachments, in one place.

use crate::config::{AgentConfig, MACHINE_KEY_FILE};
use crate::engine::server::Server;
use crate::error::{AgentError, Result};
use latchkey_client::{BreakerConfig, ClientConfig, Credential, Method, ServerList, Trust};
use latchkey_proto::agent::ServerStatus;
use latchkey_proto::app::PushStartResult;
use latchkey_proto::enroll::{EnrollBegin, EnrollBegun, EnrollMethod, EnrollWait};
use latchkey_proto::login::{
    AccountCheck, AccountStatus, LoginOtp, LoginStart, LoginStartResult, LoginStepResult,
};
use latchkey_proto::offline::WithOffline;
use latchkey_proto::routes;
use latchkey_proto::{ClientId, Secret, UserName};
use serde::de::DeserializeOwned;
use std::path::Path;

pub use crate::engine::server::{Answered, LOCAL_ERROR, Outcome, Reply};

pub struct Upstream {
    servers: ServerList,
    /// Seconds the server may hold a push long poll: below the request timeout.
    push_poll_secs: u64,
}

impl Upstream {
    pub fn new(cfg: &AgentConfig, config_dir: &Path) -> Result<Upstream> {
        let bad = |msg: String| AgentError::Config(msg);
        let first = cfg
            .servers
            .first()
            .ok_or_else(|| bad("no server configured".into()))?;
        let mut cc = ClientConfig::parse(first).map_err(|e| bad(format!("servers: {e}")))?;
        cc = cc
            .with_connect_timeout(cfg.connect_timeout)
            .with_request_timeout(cfg.timeout);
        if let Some(pin) = &cfg.pin {
            cc = cc.with_trust(Trust::Pin(pin.clone()));
        } else if let Some(ca) = &cfg.ca_cert {
            cc = cc.with_trust(Trust::WebPkiCaFile(ca.clone()));
        }
        if let Some(proxy) = &cfg.proxy {
            cc = cc.with_proxy(
                latchkey_client::Url::parse(proxy).map_err(|e| bad(format!("proxy: {e}")))?,
            );
        }
        cc = match (&cfg.client_cert, &cfg.client_key) {
            (Some(cert), Some(key)) => cc.with_credential(Credential::ClientCert {
                cert_pem: cert.clone(),
                key_pem: key.clone(),
            }),
            _ => {
                let path = config_dir.join(MACHINE_KEY_FILE);
                let key = std::fs::read_to_string(&path).map_err(|e| AgentError::file(&path, e))?;
                cc.with_credential(Credential::Bearer(key.trim().to_string()))
            }
        };
        let push_poll_secs = cfg.timeout.as_secs().saturating_sub(2).clamp(1, 25);
        let selection = cfg
            .selection
            .parse()
            .map_err(|e| bad(format!("selection: {e}")))?;
        let mut breaker = BreakerConfig::default();
        if let Some(v) = cfg.breaker_base {
            breaker.base = v;
        }
        if let Some(v) = cfg.breaker_max {
            breaker.max = v;
        }
        let servers = ServerList::new(&cfg.servers, selection, breaker, cc)
            .map_err(|e| bad(format!("servers: {e}")))?;
        Ok(Upstream {
            servers,
            push_poll_secs,
        })
    }

    async fn call<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        user: &str,
    ) -> Reply<T> {
        let body = match serde_json::to_value(body) {
            Ok(v) => v,
            Err(e) => {
                return Outcome::Refused {
                    code: "encode".into(),
                    message: e.to_string(),
                };
            }
        };
        match self
            .servers
            .call_dated::<WithOffline<T>>(Method::POST, path, Some(body), Some(user))
            .await
        {
            Ok(latchkey_client::Dated { value, server_time }) => Outcome::Answer(Answered {
                value: value.inner,
                offline: value.offline,
                server_time,
            }),
            Err(e) if e.is_unreachable() => Outcome::Unreachable(e.to_string()),
            // This machine could not even try (no descriptor, no memory): not "unreachable",
            // or a local process exhausting the agent could push logins offline.
            Err(latchkey_client::Error::Local { reason, .. }) => Outcome::Refused {
                code: LOCAL_ERROR.into(),
                message: reason,
            },
            Err(e) => Outcome::Refused {
                code: e.api_code().unwrap_or("error").to_string(),
                message: match &e {
                    latchkey_client::Error::Api { message, .. } => message.clone(),
                    other => other.to_string(),
                },
            },
        }
    }

    /// Registers a security key (`latchkey-agent fido2 enroll`: no offline store involved).
    pub async fn fido2_register_start(
        &self,
        req: &latchkey_proto::fido2::Fido2RegisterStart,
    ) -> Outcome<latchkey_proto::fido2::Fido2RegisterOptions> {
        self.call(routes::FIDO2_REGISTER_START, req, &req.user)
            .await
            .map(|a| a.value)
    }

    pub async fn fido2_register_finish(
        &self,
        req: &latchkey_proto::fido2::Fido2RegisterFinish,
    ) -> Outcome<latchkey_proto::fido2::Fido2Registered> {
        self.call(routes::FIDO2_REGISTER_FINISH, req, &req.user)
            .await
            .map(|a| a.value)
    }

    pub async fn smartcard_enroll(
        &self,
        req: &latchkey_proto::smartcard::SmartcardEnroll,
    ) -> Outcome<latchkey_proto::admin::TokenInfo> {
        self.call(routes::SMARTCARD_ENROLL, req, &req.user)
            .await
            .map(|a| a.value)
    }

    /// Uploads a batch of events (`key` only picks the server under `consistent`).
    pub async fn upload_events(
        &self,
        batch: &latchkey_proto::events::EventBatch,
        key: &str,
    ) -> Reply<latchkey_proto::events::EventsAccepted> {
        self.call(routes::EVENTS, batch, key).await
    }

    /// Asks whether local sessions must be locked.
    pub async fn session_state(
        &self,
        req: &latchkey_proto::events::SessionStateRequest,
        key: &str,
    ) -> Reply<latchkey_proto::events::SessionStateResponse> {
        self.call(routes::SESSIONS_STATE, req, key).await
    }

    pub fn status(&self) -> Vec<ServerStatus> {
        self.servers.status()
    }
}

impl Server for Upstream {
    async fn login_start(&self, req: &LoginStart) -> Reply<LoginStartResult> {
        self.call(routes::LOGIN_START, req, &req.user).await
    }

    async fn login_otp(&self, tx: &str, user: &str, code: &str) -> Reply<LoginStepResult> {
        let path = routes::login_otp(tx);
        self.call(
            &path,
            &LoginOtp {
                code: Secret::from(code),
            },
            user,
        )
        .await
    }

    async fn push_start(&self, tx: &str, user: &str) -> Reply<PushStartResult> {
        let path = routes::login_push(tx);
        self.call(&path, &serde_json::json!({}), user).await
    }

    async fn push_wait(&self, tx: &str, user: &str) -> Reply<LoginStepResult> {
        let path = format!(
            "{}?wait={}",
            routes::login_push_wait(tx),
            self.push_poll_secs
        );
        self.call(&path, &serde_json::json!({}), user).await
    }

    async fn login_fido2(
        &self,
        tx: &str,
        user: &str,
        answer: &latchkey_proto::fido2::LoginFido2,
    ) -> Reply<LoginStepResult> {
        let path = routes::login_fido2(tx);
        self.call(&path, answer, user).await
    }

    async fn login_smartcard(
        &self,
        tx: &str,
        user: &str,
        req: &latchkey_proto::smartcard::LoginSmartcard,
    ) -> Reply<LoginStepResult> {
        let path = routes::login_smartcard(tx);
        self.call(&path, req, user).await
    }

    async fn account_check(&self, user: &UserName, client_id: &ClientId) -> Reply<AccountStatus> {
        self.call(
            routes::ACCOUNT_CHECK,
            &AccountCheck {
                user: user.clone(),
                client_id: client_id.clone(),
            },
            user,
        )
        .await
    }

    async fn enroll_begin(&self, tx: &str, user: &str, method: EnrollMethod) -> Reply<EnrollBegun> {
        let path = routes::login_enroll(tx);
        self.call(&path, &EnrollBegin { method }, user).await
    }

    async fn enroll_confirm(&self, tx: &str, user: &str, code: &str) -> Reply<LoginStepResult> {
        let path = routes::login_enroll_confirm(tx);
        let body = LoginOtp {
            code: Secret::from(code),
        };
        self.call(&path, &body, user).await
    }

    async fn enroll_wait(&self, tx: &str, user: &str) -> Reply<EnrollWait> {
        let path = format!(
            "{}?wait={}",
            routes::login_enroll_wait(tx),
            self.push_poll_secs
        );
        self.call(&path, &serde_json::json!({}), user).await
    }

    async fn enroll_skip(&self, tx: &str, user: &str) -> Reply<LoginStepResult> {
        let path = routes::login_enroll_skip(tx);
        self.call(&path, &serde_json::json!({}), user).await
    }

    fn registration_base(&self) -> String {
        self.servers
            .urls()
            .first()
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_default()
    }
}
