//! Inline enrolment: a user without a token enrols one at the login prompt, after the first
//! factor was verified (docs/enrollment.md). `POST /v1/login/start` answers
//! [`crate::login::LoginStartResult::Enroll`] with a pending enrolment (its id is a login
//! transaction's); the agent then calls `POST /v1/login/{tx}/enroll` with the method the person
//! picked, `…/enroll/confirm` with the first code (`totp`), `…/enroll/wait` until the token
//! app registered (`app`, the login then finishes by push), or `…/enroll/skip` while grace
//! logins remain.

use crate::Secret;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What may be enrolled at the login prompt (policy `enroll.inline`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum EnrollMethod {
    /// Any authenticator app (Google or Microsoft Authenticator, Aegis, FreeOTP): an otpauth
    /// QR code and its secret; the first code confirms it.
    Totp,
    /// The latchkey token app: its registration QR code; the login finishes by push, and the
    /// app is ready for push and offline logins from then on.
    App,
    /// A one-time link to the self-service portal, opened on another device (a phone) to
    /// enrol there what a browser does better (a passkey or security key, an authenticator
    /// app); this login ends, and the next one uses what was enrolled.
    Link,
}

impl EnrollMethod {
    pub const ALL: [EnrollMethod; 3] = [EnrollMethod::Totp, EnrollMethod::App, EnrollMethod::Link];

    pub fn as_str(self) -> &'static str {
        match self {
            EnrollMethod::Totp => "totp",
            EnrollMethod::App => "app",
            EnrollMethod::Link => "link",
        }
    }

    /// What the person reads in a list of choices.
    pub fn describe(self) -> &'static str {
        match self {
            EnrollMethod::Totp => {
                "an authenticator app (Google/Microsoft Authenticator, Aegis, FreeOTP)"
            }
            EnrollMethod::App => "the latchkey token app (push approvals, offline logins)",
            EnrollMethod::Link => "a link to open on your phone (passkey, security key, app)",
        }
    }
}

impl fmt::Display for EnrollMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EnrollMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EnrollMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not totp, app or link"))
    }
}

/// `POST /v1/login/{tx}/enroll`: the method the person picked, one of the offer's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollBegin {
    pub method: EnrollMethod,
}

/// Answer to `POST /v1/login/{tx}/enroll`: what to show the person.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum EnrollBegun {
    /// Show `otpauth_uri` as a QR code and `secret` (base32) as text; confirm with the first
    /// code (`…/enroll/confirm`). The seed leaves the server only here.
    Totp {
        otpauth_uri: Secret,
        secret: Secret,
        message: String,
    },
    /// Show the token app's registration link as a QR code; wait (`…/enroll/wait`) until
    /// the app registered. The link is `{server}/app/register?code={code}&pin={pin}` with the
    /// server's base URL as the machine reaches it.
    App {
        code: Secret,
        /// The server's TLS certificate pin (`sha256:…`), so the app trusts exactly it.
        pin: String,
        message: String,
    },
    /// Show `url` (a one-time link to the self-service portal) as a QR code and as text
    /// under `message`; the pending enrolment has ended, and the login ends with `reason`
    /// once it is shown.
    Link {
        url: Secret,
        message: String,
        reason: String,
    },
    /// Refused (expired, not offered, taken elsewhere); `reason` is safe to show.
    Deny { reason: String },
}

/// Answer to `POST /v1/login/{tx}/enroll/wait` (a long poll).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum EnrollWait {
    /// Not registered yet: ask again.
    Pending { message: String },
    /// The token app registered: finish the login with a push on the same transaction.
    Registered { message: String },
    /// Refused or expired; `reason` is safe to show.
    Deny { reason: String },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_totp_answer_never_prints_its_seed() {
        let begun = EnrollBegun::Totp {
            otpauth_uri: Secret::from("otpauth://totp/x:alice?secret=JBSWY3DPEHPK3PXP"),
            secret: Secret::from("JBSWY3DPEHPK3PXP"),
            message: "Scan".into(),
        };
        let shown = format!("{begun:?}");
        assert!(!shown.contains("JBSWY3DP"), "{shown}");
        let text = serde_json::to_string(&begun).unwrap();
        assert!(text.contains(r#""method":"totp""#), "{text}");
        assert_eq!(serde_json::from_str::<EnrollBegun>(&text).unwrap(), begun);
    }

    #[test]
    fn methods_read_and_print_by_name() {
        for m in EnrollMethod::ALL {
            assert_eq!(m.as_str().parse::<EnrollMethod>().unwrap(), m);
        }
        assert!("sms".parse::<EnrollMethod>().is_err());
        assert!(serde_json::from_str::<EnrollBegin>(r#"{"method":"sms"}"#).is_err());
    }
}
