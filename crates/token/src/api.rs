//! The server's token-app API, as this app calls it (JSON over HTTPS, the server trusted by
//! the pin from the registration link).

use crate::account::Account;
use crate::error::{Error, Result};
use crate::link::RegistrationLink;
use latchkey_client::{Client, ClientConfig, Credential, StatusCode, Trust};
use latchkey_proto::ErrorCode;
use latchkey_proto::app::{
    AppRegister, AppRegistered, Badge, PushRequest, PushResponse, PushVerdict,
};
use latchkey_proto::routes;
use std::time::Duration;

/// Seconds one long poll asks the server to hold the request (the server caps it at 30).
pub const LONG_POLL_SECS: u64 = 25;
/// Head room over a long poll before the client gives up on the answer.
const REQUEST_MARGIN: Duration = Duration::from_secs(15);
/// Connecting is bounded separately: a phone on a bad network should learn quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn client(server: &str, pin: &str, credential: Credential) -> Result<Client> {
    let cfg = ClientConfig::parse(server)?
        .with_trust(Trust::Pin(pin.to_string()))
        .with_credential(credential)
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_request_timeout(Duration::from_secs(LONG_POLL_SECS) + REQUEST_MARGIN);
    Ok(Client::new(cfg)?)
}

/// `POST /v1/apps/register`: the code in the link is the only credential.
pub async fn register(link: &RegistrationLink, req: &AppRegister) -> Result<AppRegistered> {
    let c = client(&link.server, &link.pin, Credential::None)?;
    c.post(routes::APP_REGISTER, req).await.map_err(|e| {
        let refused = e.error_code() == Some(ErrorCode::InvalidRegistrationCode)
            || matches!(
                e.status(),
                Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::GONE)
            );
        if refused {
            Error::LinkRefused
        } else {
            Error::Server(e)
        }
    })
}

/// The calls a registered app makes with its app key.
#[derive(Debug, Clone)]
pub struct AppApi {
    client: Client,
}

impl AppApi {
    pub fn new(account: &Account) -> Result<AppApi> {
        let credential = Credential::Bearer(account.app_key.expose().to_string());
        Ok(AppApi {
            client: client(&account.server, &account.pin, credential)?,
        })
    }

    /// `GET /v1/apps/pending?wait=SECS`: the requests waiting now, or after up to `wait`
    /// seconds the first that arrives; `[]` if none did.
    pub async fn pending(&self, wait: u64) -> Result<Vec<PushRequest>> {
        let path = format!("{}?wait={}", routes::APP_PENDING, wait.min(30));
        self.client.get(&path).await.map_err(|e| self.map(e))
    }

    /// `POST /v1/apps/respond`: a signed approval or denial.
    pub async fn respond(&self, r: &PushResponse) -> Result<PushVerdict> {
        self.client
            .post(routes::APP_RESPOND, r)
            .await
            .map_err(|e| self.map(e))
    }

    /// `POST /v1/apps/badge`: signed presence.
    pub async fn badge(&self, b: &Badge) -> Result<PushVerdict> {
        self.client
            .post(routes::APP_BADGE, b)
            .await
            .map_err(|e| self.map(e))
    }

    fn map(&self, e: latchkey_client::Error) -> Error {
        if e.status() == Some(StatusCode::UNAUTHORIZED) {
            Error::Revoked {
                server: self.client.base_url().to_string(),
            }
        } else {
            Error::Server(e)
        }
    }
}
