//! Identifiers that cross a boundary (PAM → agent → server → store), each with one validator.
//!
//! The rules are the ones latchkeyd enforced before these types existed; where the PAM module
//! and the server disagreed, the stricter rule that every existing caller meets won (see
//! docs/decisions.md, "One validator per identifier"). A value of these types has passed its
//! validator: construct them with `parse`, `FromStr` or `TryFrom`, or by deserializing, which
//! validates too.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid identifier; the message is one sentence for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidId {
    /// The identifier's field name (`user`, `client_id`, `tx`, `machine_id`).
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidId {
    InvalidId {
        field,
        message: message.into(),
    }
}

/// Letters, digits and the bytes in `extra`: identifiers that end up in paths, logs, PAM
/// stack lines and SQL parameters stay plain ASCII.
fn ascii_word(s: &str, extra: &[u8]) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The one validator of this identifier.
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                $check(s)?;
                Ok($name(s.to_string()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, InvalidId> {
                $check(&s)?;
                Ok($name(s))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidId;
            fn try_from(s: &str) -> Result<Self, InvalidId> {
                Self::parse(s)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// As the string's own `Debug`: a wire struct's `{:?}` reads the same as when the
        /// field was a `String`.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        /// Read-only: a `&UserName` is usable wherever a `&str` is (store queries, audit,
        /// messages), while the only ways in stay the validator.
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// Longest user name, in bytes.
pub const USER_NAME_MAX: usize = 256;
/// Longest client_id (access context), in bytes.
pub const CLIENT_ID_MAX: usize = 64;
/// Longest transaction or machine id, in bytes (the server issues 36 and 16).
pub const SERVER_ID_MAX: usize = 64;

identifier!(
    /// A user name as the OS gives it to PAM: 1 to 256 bytes, no whitespace, no `/`, no
    /// control character. Anything else a local account may be called (dots, `@`, `\`,
    /// non-ASCII letters) is accepted, because the server cannot know the OS's own rules.
    UserName,
    check_user_name
);

identifier!(
    /// An access context (`login`, `unlock`, `elevation`, `remote` or one an admin defines):
    /// 1 to 64 letters, digits, `.`, `_` or `-`, or `*`, the fallback policy.
    ClientId,
    check_client_id
);

identifier!(
    /// A login transaction id as the server issues it: 1 to 64 lowercase letters and digits
    /// (today 36 characters of base32hex: a millisecond time and 128 random bits).
    TxId,
    check_tx_id
);

identifier!(
    /// A machine id as the server issues it at join: 1 to 64 lowercase letters and digits
    /// (today 16 characters of base32).
    MachineId,
    check_machine_id
);

impl ClientId {
    /// The fallback policy every context without its own inherits from.
    pub const FALLBACK: &'static str = "*";

    pub fn is_fallback(&self) -> bool {
        self.0 == Self::FALLBACK
    }
}

fn check_user_name(s: &str) -> Result<(), InvalidId> {
    if s.is_empty() || s.len() > USER_NAME_MAX {
        return Err(invalid("user", "user must be 1 to 256 characters"));
    }
    if s.chars()
        .any(|c| c.is_control() || c == '/' || c.is_whitespace())
    {
        return Err(invalid(
            "user",
            "user contains a space, '/' or a control character",
        ));
    }
    Ok(())
}

fn check_client_id(s: &str) -> Result<(), InvalidId> {
    let ok = !s.is_empty()
        && s.len() <= CLIENT_ID_MAX
        && (s == ClientId::FALLBACK || ascii_word(s, b"._-"));
    if !ok {
        return Err(invalid(
            "client_id",
            "client_id must be 1 to 64 characters of letters, digits, '.', '_' or '-'",
        ));
    }
    Ok(())
}

fn server_id(field: &'static str, s: &str) -> Result<(), InvalidId> {
    let ok = !s.is_empty()
        && s.len() <= SERVER_ID_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok {
        return Err(invalid(
            field,
            format!("{field} must be 1 to 64 lowercase letters and digits"),
        ));
    }
    Ok(())
}

fn check_tx_id(s: &str) -> Result<(), InvalidId> {
    server_id("tx", s)
}

fn check_machine_id(s: &str) -> Result<(), InvalidId> {
    server_id("machine_id", s)
}

#[cfg(feature = "openapi")]
mod schema {
    use super::*;
    use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
    use std::borrow::Cow;

    macro_rules! string_schema {
        ($name:ident, $schema:expr) => {
            impl JsonSchema for $name {
                fn schema_name() -> Cow<'static, str> {
                    stringify!($name).into()
                }
                fn json_schema(_: &mut SchemaGenerator) -> Schema {
                    $schema
                }
            }
        };
    }

    // Patterns are anchored (JSON Schema matches anywhere otherwise) and avoid `\p{..}`, which
    // not every validator's regex engine knows (Python's `re` does not).
    string_schema!(
        UserName,
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": USER_NAME_MAX,
            "pattern": "^[^\\s/\\u0000-\\u001f\\u007f-\\u009f]+$",
            "description": "1 to 256 bytes; no whitespace, '/' or control character"
        })
    );
    string_schema!(
        ClientId,
        json_schema!({
            "type": "string",
            "pattern": "^(\\*|[A-Za-z0-9._-]{1,64})$",
            "description": "an access context, or `*` for the fallback policy"
        })
    );
    string_schema!(
        TxId,
        json_schema!({ "type": "string", "pattern": "^[a-z0-9]{1,64}$" })
    );
    string_schema!(
        MachineId,
        json_schema!({ "type": "string", "pattern": "^[a-z0-9]{1,64}$" })
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn user_names_the_server_always_took_still_parse() {
        for ok in [
            "alice",
            "bob.smith",
            "DOMAIN\\carol",
            "dave@corp",
            "élodie",
            "a",
        ] {
            assert!(UserName::parse(ok).is_ok(), "{ok:?} refused");
        }
        assert!(UserName::parse(&"x".repeat(256)).is_ok());
    }

    #[test]
    fn user_names_with_space_slash_control_or_bad_length_are_refused() {
        for bad in [
            "",
            "a b",
            "a/b",
            "../admin",
            "a\nb",
            "a\0",
            "tab\there",
            "\u{85}",
        ] {
            assert!(UserName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(UserName::parse(&"x".repeat(257)).is_err());
    }

    #[test]
    fn client_ids_are_a_word_or_the_fallback() {
        for ok in ["login", "vpn-2", "a.b_c", "*", &"c".repeat(64)] {
            assert!(ClientId::parse(ok).is_ok(), "{ok:?} refused");
        }
        for bad in [
            "",
            "a b",
            "x;rm",
            "a:b",
            "**",
            "login*",
            "é",
            &"c".repeat(65),
        ] {
            assert!(ClientId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ClientId::parse("*").unwrap().is_fallback());
    }

    #[test]
    fn server_ids_are_lowercase_words() {
        assert!(TxId::parse("01hq3v0k9f8g7e6d5c4b3a2s1r0p9o8n7m6l").is_ok());
        assert!(MachineId::parse("abcdefgh23456777").is_ok());
        for bad in ["", "ABC", "a-b", "%ff", &"a".repeat(65)] {
            assert!(TxId::parse(bad).is_err(), "{bad:?} accepted");
            assert!(MachineId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn deserializing_validates_and_serializing_is_the_plain_string() {
        let c: ClientId = serde_json::from_str("\"login\"").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"login\"");
        assert!(serde_json::from_str::<ClientId>("\"a b\"").is_err());
        assert!(serde_json::from_str::<UserName>("\"a/b\"").is_err());
        assert!(serde_json::from_str::<TxId>("\"\"").is_err());
        let e = serde_json::from_str::<UserName>("\"\"").unwrap_err();
        assert!(e.to_string().contains("1 to 256"), "{e}");
    }
}
