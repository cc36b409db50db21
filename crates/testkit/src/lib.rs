//! Starts real latchkey servers in-process on free loopback ports, with their data in a
//! temporary directory, and gives tests ready-made clients. Nothing is mocked: the server is
//! the same library `latchkeyd` runs, reached over real TLS.

use anyhow::{Context, Result};
use latchkey_client::{Client, ClientConfig, Credential, Trust};
use latchkey_crypto::otpauth::OtpAuthUri;
use latchkey_proto::TokenKind;
use latchkey_proto::admin::{
    AuditEntry, JoinTokenCreate, JoinTokenCreated, OtpTokenCreate, Policy, PolicyUpdate,
    TokenEnrolled, User, UserCreate,
};
use latchkey_proto::machine::{JoinRequest, JoinResponse};
use latchkey_proto::routes;
use latchkey_server::{RunningServer, ServerConfig, ServerInfo};
use std::path::PathBuf;
use tempfile::TempDir;

pub use latchkey_server;

pub mod agent;
pub mod agent_process;
pub mod browser;
pub mod camera;
pub mod local;
pub mod pam_harness;
pub mod proxy;
pub mod raw_http;
pub mod scripted_agent;
pub mod softhsm;
pub mod softkey;
pub mod token_app;
pub mod token_cli;

pub struct TestServer {
    running: Option<RunningServer>,
    pub info: ServerInfo,
    pub cfg: ServerConfig,
    pub admin_token: String,
    _dir: TempDir,
}

impl TestServer {
    pub async fn start() -> Result<TestServer> {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `tweak` adjusts its configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Result<TestServer> {
        let dir = tempfile::tempdir()?;
        let mut cfg = ServerConfig::new(dir.path().join("data"));
        cfg.listen = "127.0.0.1:0".parse()?;
        // Tests run many logins from one machine; the limit itself has its own test.
        cfg.machine_rate = 10_000;
        cfg.machine_burst = 10_000;
        tweak(&mut cfg);
        let running = latchkey_server::start(cfg.clone())
            .await
            .context("starting latchkeyd")?;
        let admin_token = std::fs::read_to_string(cfg.data_dir.join("admin.token"))?
            .trim()
            .to_string();
        Ok(TestServer {
            info: running.info.clone(),
            running: Some(running),
            cfg,
            admin_token,
            _dir: dir,
        })
    }

    /// Another instance over the same data directory (same database, keys and certificate),
    /// as several latchkeyd behind one server list share one store.
    pub async fn start_sharing(other: &TestServer) -> Result<TestServer> {
        let dir = tempfile::tempdir()?;
        let mut cfg = other.cfg.clone();
        cfg.listen = "127.0.0.1:0".parse()?;
        let running = latchkey_server::start(cfg.clone())
            .await
            .context("starting latchkeyd")?;
        Ok(TestServer {
            info: running.info.clone(),
            running: Some(running),
            cfg,
            admin_token: other.admin_token.clone(),
            _dir: dir,
        })
    }

    /// Login decisions this instance made (from its own /metrics), e.g. `("start", "challenge")`.
    pub async fn login_count(&self, step: &str, result: &str) -> Result<u64> {
        self.metric(&format!(
            "latchkey_logins_total{{step=\"{step}\",result=\"{result}\"}}"
        ))
        .await
    }

    /// The value of one series of this instance's /metrics, named with its labels as the
    /// text format writes them (`latchkey_events_total{result="stored"}`); 0 while absent.
    pub async fn metric(&self, series: &str) -> Result<u64> {
        let (_, body) = self
            .anonymous()?
            .request(latchkey_client::Method::GET, "/metrics", None)
            .await?;
        let text = String::from_utf8_lossy(&body);
        let key = format!("{series} ");
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
    }

    pub fn url(&self) -> String {
        self.info.url()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.cfg.data_dir.clone()
    }

    pub fn db_path(&self) -> PathBuf {
        self.cfg.data_dir.join("latchkey.db")
    }

    /// Client settings that trust this server by its certificate pin.
    pub fn client_config(&self) -> Result<ClientConfig> {
        let cfg = ClientConfig::parse(&self.url())?;
        Ok(if self.info.tls_fingerprint.is_empty() {
            cfg
        } else {
            cfg.with_trust(Trust::Pin(self.info.tls_fingerprint.clone()))
        })
    }

    pub fn client(&self, credential: Credential) -> Result<Client> {
        Ok(Client::new(
            self.client_config()?.with_credential(credential),
        )?)
    }

    pub fn admin(&self) -> Result<Client> {
        self.client(Credential::Bearer(self.admin_token.clone()))
    }

    pub fn anonymous(&self) -> Result<Client> {
        self.client(Credential::None)
    }

    pub async fn join_token(&self) -> Result<String> {
        let created: JoinTokenCreated = self
            .admin()?
            .post(
                routes::ADMIN_JOIN_TOKENS,
                &JoinTokenCreate {
                    expires_in: 600,
                    note: None,
                },
            )
            .await?;
        Ok(created.join_token)
    }

    /// Joins a machine with an API key; returns the join answer and a client using its key.
    pub async fn join_machine(&self, hostname: &str) -> Result<(JoinResponse, Client)> {
        let req = JoinRequest {
            join_token: self.join_token().await?,
            hostname: hostname.into(),
            client_cert_sha256: None,
        };
        let resp: JoinResponse = self.anonymous()?.post(routes::MACHINE_JOIN, &req).await?;
        let client = self.client(Credential::Bearer(resp.api_key.clone()))?;
        Ok((resp, client))
    }

    pub async fn add_user(&self, name: &str, groups: &[&str]) -> Result<User> {
        let req = UserCreate {
            name: name.into(),
            display_name: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        Ok(self.admin()?.post(routes::ADMIN_USERS, &req).await?)
    }

    /// Enrols a token and returns the parsed otpauth URI (what a phone would scan).
    pub async fn add_token(
        &self,
        user: &str,
        kind: TokenKind,
    ) -> Result<(TokenEnrolled, OtpAuthUri)> {
        let req = OtpTokenCreate {
            kind,
            algorithm: None,
            digits: None,
            period: None,
            label: None,
            secret: None,
        };
        let enrolled: TokenEnrolled = self
            .admin()?
            .post(&routes::admin_user_tokens(user), &req)
            .await?;
        let uri = OtpAuthUri::parse(&enrolled.otpauth_uri)?;
        Ok((enrolled, uri))
    }

    /// A new user with one token of `kind`: the set-up most login tests start from.
    pub async fn add_user_with_token(&self, name: &str, kind: TokenKind) -> Result<OtpAuthUri> {
        self.add_user(name, &[]).await?;
        Ok(self.add_token(name, kind).await?.1)
    }

    /// Up to 10,000 audit entries about `user`, newest first.
    pub async fn audit(&self, user: &str) -> Result<Vec<AuditEntry>> {
        Ok(self
            .admin()?
            .get(&format!("{}?user={user}&limit=10000", routes::ADMIN_AUDIT))
            .await?)
    }

    pub async fn set_policy(&self, client_id: &str, settings: &[(&str, &str)]) -> Result<Policy> {
        let req = PolicyUpdate {
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        Ok(self
            .admin()?
            .patch(&routes::admin_policy(client_id), &req)
            .await?)
    }

    /// Stops the server gracefully (data directory kept).
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// Starts the server again on the same address with the same data.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await;
        let mut cfg = self.cfg.clone();
        cfg.listen = self.info.addr;
        let running = latchkey_server::start(cfg)
            .await
            .context("restarting latchkeyd")?;
        self.info = running.info.clone();
        self.running = Some(running);
        Ok(())
    }
}

/// The code an authenticator app would show now.
pub fn totp_now(uri: &OtpAuthUri) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    latchkey_crypto::otp::totp(&uri.secret, now, uri.period, uri.algorithm, uri.digits)
}

/// The HOTP code for `counter`.
pub fn hotp_at(uri: &OtpAuthUri, counter: u64) -> String {
    latchkey_crypto::otp::hotp(&uri.secret, counter, uri.algorithm, uri.digits)
}

/// Path of a binary of this workspace (built by `cargo test`/`nextest` before tests run):
/// next to the `deps` directory holding the running test executable.
pub fn workspace_bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .context("test binary has no parent")?;
    let path = dir.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first",
        path.display()
    );
    Ok(path)
}
