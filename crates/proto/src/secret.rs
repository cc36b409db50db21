//! What a person types to prove who they are: one-time codes, PINs, offline answers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroize;

/// A code, PIN or answer typed by a person. Its memory is wiped when it is dropped, it never
/// prints (`Debug` and `Display` show `***`, so a `{:?}` of a request or a `tracing` field
/// cannot leak it), and it compares in constant time. On the wire it is a plain JSON string.
///
/// `expose` is the one way to read it; grep for it to audit every use.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in bytes, for size limits (a length tells nothing useful about a code).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Equality whose time depends on the lengths only, not on where the bytes differ: a
    /// code compared byte by byte with an early exit would tell an attacker how many
    /// leading digits were right.
    pub fn ct_eq(&self, other: &str) -> bool {
        ct_eq(self.0.as_bytes(), other.as_bytes())
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimiser from turning the fold back into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.ct_eq(&other.0)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

/// For command-line parsers (`clap` takes any `FromStr`); never fails.
impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret::from(s))
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(feature = "openapi")]
impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }
    // Not `writeOnly`: the one-time codes an admin hands to a person are in answers
    // (`AppLinkCreated`, `Fido2RegistrationCreated`, `SmartcardEnrollCode`), shown once, and
    // validators (schemathesis among them) refuse a `writeOnly` property in an answer.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "a code, PIN or answer typed by a person; never logged"
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::from("123456");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Req {
            code: Secret,
        }
        assert!(!format!("{:?}", Req { code: s.clone() }).contains("123456"));
    }

    #[test]
    fn is_a_plain_string_on_the_wire() {
        let s: Secret = serde_json::from_str("\"0042\"").unwrap();
        assert_eq!(s.expose(), "0042");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"0042\"");
        assert!(serde_json::from_str::<Secret>("42").is_err());
    }

    #[test]
    fn compares_by_value() {
        let s = Secret::from("123456");
        assert!(s.ct_eq("123456"));
        assert!(!s.ct_eq("123457"));
        assert!(!s.ct_eq("12345"));
        assert!(!s.ct_eq(""));
        assert_eq!(s, Secret::from("123456"));
        assert_ne!(s, Secret::from("654321"));
        assert!(Secret::default().ct_eq(""));
    }
}
