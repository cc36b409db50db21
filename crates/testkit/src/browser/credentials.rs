//! What the browser holds for a site: WebAuthn authenticators (Chromium's virtual ones,
//! through the driver's DevTools session) and cookies.

use super::Browser;
use anyhow::{Context, Result};
use serde_json::json;

/// A virtual WebAuthn authenticator: a USB security key by default, with a PIN (user
/// verification) and room for discoverable credentials (passkeys).
#[derive(Debug, Clone)]
pub struct VirtualAuthenticator {
    /// "usb", "nfc", "ble" or "internal" (a platform authenticator).
    pub transport: &'static str,
    pub resident_key: bool,
    pub user_verification: bool,
}

impl Default for VirtualAuthenticator {
    fn default() -> Self {
        VirtualAuthenticator {
            transport: "usb",
            resident_key: true,
            user_verification: true,
        }
    }
}

/// One credential a virtual authenticator holds.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct HeldCredential {
    pub credential_id: String,
    pub rp_id: Option<String>,
    pub resident: bool,
    pub sign_count: u64,
}

/// A browser cookie, in Playwright's shape.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub domain: String,
    pub path: String,
    #[serde(default)]
    pub expires: f64,
    #[serde(default)]
    pub http_only: bool,
    #[serde(default)]
    pub secure: bool,
    #[serde(default)]
    pub same_site: Option<String>,
}

impl Browser {
    /// Adds a virtual authenticator (Chromium's DevTools WebAuthn domain): the page's
    /// `navigator.credentials` calls reach it as they would a security key, presence and
    /// user verification answered at once. Returns its id.
    pub async fn add_authenticator(&mut self, a: VirtualAuthenticator) -> Result<String> {
        let v = self
            .call(
                "webauthn_add",
                json!({
                    "protocol": "ctap2",
                    "transport": a.transport,
                    "resident_key": a.resident_key,
                    "user_verification": a.user_verification,
                    "user_verified": a.user_verification,
                }),
            )
            .await?;
        v.as_str()
            .map(str::to_string)
            .context("webauthn_add answered no authenticator id")
    }

    /// The credentials a virtual authenticator holds.
    pub async fn authenticator_credentials(&mut self, id: &str) -> Result<Vec<HeldCredential>> {
        let v = self
            .call("webauthn_credentials", json!({ "authenticator": id }))
            .await?;
        Ok(serde_json::from_value(v)?)
    }

    /// Unplugs a virtual authenticator.
    pub async fn remove_authenticator(&mut self, id: &str) -> Result<()> {
        self.call("webauthn_remove", json!({ "authenticator": id }))
            .await
            .map(drop)
    }

    /// The browser's cookies (HttpOnly ones included), as Playwright describes them.
    pub async fn cookies(&mut self) -> Result<Vec<Cookie>> {
        let v = self.call("cookies", json!({})).await?;
        Ok(serde_json::from_value(v)?)
    }

    /// Replaces every cookie of the browser with `cookies`.
    pub async fn replace_cookies(&mut self, cookies: &[Cookie]) -> Result<()> {
        self.call(
            "set_cookies",
            json!({ "clear": true, "cookies": serde_json::to_value(cookies)? }),
        )
        .await
        .map(drop)
    }
}
