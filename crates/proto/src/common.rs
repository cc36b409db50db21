//! Types used by several parts of the API.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The body of every 4xx/5xx answer: a stable machine-readable code and one clear sentence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ApiError {
    pub error: String,
    pub message: String,
}

/// Hash function of an OATH token (RFC 4226 / RFC 6238 / Key Uri Format `algorithm=`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum OtpAlgorithm {
    #[default]
    Sha1,
    Sha256,
    Sha512,
}

impl OtpAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            OtpAlgorithm::Sha1 => "SHA1",
            OtpAlgorithm::Sha256 => "SHA256",
            OtpAlgorithm::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for OtpAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OtpAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Ok(OtpAlgorithm::Sha1),
            "SHA256" => Ok(OtpAlgorithm::Sha256),
            "SHA512" => Ok(OtpAlgorithm::Sha512),
            _ => Err(format!(
                "unknown OTP algorithm {s:?} (expected SHA1, SHA256 or SHA512)"
            )),
        }
    }
}

/// Kind of a registered token.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Totp,
    Hotp,
    /// A registered token app (push approvals, offline keys).
    App,
    /// A FIDO2 security key (its credential lives in its own table).
    Fido2,
    /// A smartcard certificate (PKCS#11): no secret on the server, only the certificate.
    Smartcard,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Totp => "totp",
            TokenKind::Hotp => "hotp",
            TokenKind::App => "app",
            TokenKind::Fido2 => "fido2",
            TokenKind::Smartcard => "smartcard",
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "totp" => Ok(TokenKind::Totp),
            "hotp" => Ok(TokenKind::Hotp),
            "app" => Ok(TokenKind::App),
            "fido2" => Ok(TokenKind::Fido2),
            "smartcard" => Ok(TokenKind::Smartcard),
            _ => Err(format!("unknown token kind {s:?}")),
        }
    }
}

/// An authentication method a client policy may allow. Methods other than `otp` are
/// recognised now so policies can name them; later issues implement them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Otp,
    Push,
    Fido2,
    Smartcard,
}

impl Method {
    pub const ALL: [Method; 4] = [Method::Otp, Method::Push, Method::Fido2, Method::Smartcard];
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Otp => "otp",
            Method::Push => "push",
            Method::Fido2 => "fido2",
            Method::Smartcard => "smartcard",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown method {s:?} (expected otp, push, fido2 or smartcard)"))
    }
}

/// Query of the long polls (`GET /v1/apps/pending`, `POST /v1/login/{tx}/push/wait`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct WaitQuery {
    /// Seconds to hold the request until something happens (at most 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<u64>,
}
