//! The stable codes of the API's refusals (`{"error": "<code>", "message": …}`, docs/api.md).
//!
//! Clients branch on these, never on the message: the agent, for one, treats
//! `unauthorized`/`forbidden` as "this machine is not accepted" and every 5xx as unreachable.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// A refusal's `error` field. New codes may appear in later servers: parse with
        /// [`ErrorCode::parse`] (which says `None`) rather than failing on an unknown one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $text)] $variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }
        }
    };
}

error_codes! {
    /// The body is not JSON.
    MalformedJson = "malformed_json",
    /// A field, a query parameter or a path segment is wrong (the message says which).
    InvalidRequest = "invalid_request",
    UnsupportedMediaType = "unsupported_media_type",
    PayloadTooLarge = "payload_too_large",
    /// 408: the body did not arrive in time.
    RequestTimeout = "request_timeout",
    LengthRequired = "length_required",
    UriTooLong = "uri_too_long",
    HeadersTooLarge = "headers_too_large",
    /// No policy for the `client_id` and no fallback that covers it.
    UnknownClientId = "unknown_client_id",
    BadSecret = "bad_secret",
    /// No credential, or one the server does not know.
    Unauthorized = "unauthorized",
    /// A valid credential of the wrong kind (an admin key on a machine route, …).
    Forbidden = "forbidden",
    NotFound = "not_found",
    MethodNotAllowed = "method_not_allowed",
    Conflict = "conflict",
    InvalidJoinToken = "invalid_join_token",
    InvalidEnrollCode = "invalid_enroll_code",
    InvalidRegistrationCode = "invalid_registration_code",
    Fido2RegistrationRefused = "fido2_registration_refused",
    RateLimited = "rate_limited",
    /// 503: the database failed; the agent goes to the next server or offline.
    StoreUnavailable = "store_unavailable",
    /// 503: a stored client policy is invalid; an admin must fix it.
    PolicyError = "policy_error",
    /// 503 from a handler's own failure (randomness, signing).
    Internal = "internal",
    /// A 5xx made by the HTTP framework rather than a handler.
    InternalError = "internal_error",
    /// A 503 made by the HTTP framework rather than a handler.
    Unavailable = "unavailable",
}

impl ErrorCode {
    /// The code for `s`, or `None` for one this build does not know.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl FromStr for ErrorCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::parse(s).ok_or_else(|| format!("unknown error code {s:?}"))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn serde_is_the_wire_string_and_parse_round_trips() {
        for &c in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
            assert_eq!(
                serde_json::from_str::<ErrorCode>(&format!("\"{c}\"")).unwrap(),
                c
            );
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }

    #[test]
    fn codes_are_unique() {
        let mut seen: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn the_codes_docs_api_lists_exist() {
        for s in [
            "malformed_json",
            "invalid_request",
            "unauthorized",
            "forbidden",
            "not_found",
            "rate_limited",
            "store_unavailable",
            "fido2_registration_refused",
        ] {
            assert!(ErrorCode::parse(s).is_some(), "{s}");
        }
    }
}
