//! The registration link an admin hands out (`latchkey token add-app USER`):
//! `https://HOST:PORT[/prefix]/app/register?code=CODE&pin=sha256:HEX`.
//!
//! The pin travels with the link so the app trusts exactly the server that issued it, with no
//! CA to install (as a join token and `--pin` do for machines).

use crate::error::{Error, Result};
use latchkey_proto::Secret;
use url::Url;

const REGISTER_PATH: &str = "/app/register";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationLink {
    /// Server base URL without trailing `/`: `https://host:port[/prefix]`.
    pub server: String,
    /// Host name (or address) of the server, for the default account name.
    pub host: String,
    /// The one-time registration code (a credential: `Debug` shows `***`).
    pub code: Secret,
    /// `sha256:` + 64 lowercase hex digits.
    pub pin: String,
}

impl std::str::FromStr for RegistrationLink {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        parse(s)
    }
}

pub fn parse(text: &str) -> Result<RegistrationLink> {
    let bad = |m: &str| Error::Link(m.to_string());
    let url = Url::parse(text.trim()).map_err(|e| Error::Link(e.to_string()))?;
    if url.scheme() != "https" {
        return Err(bad("it must be an https:// link"));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("it has no host"))?
        .to_string();
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it must not carry a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(bad("it must not have a #fragment"));
    }
    let prefix = url
        .path()
        .trim_end_matches('/')
        .strip_suffix(REGISTER_PATH)
        .ok_or_else(|| bad("its path must end with /app/register"))?
        .to_string();
    let mut code = None;
    let mut pin = None;
    for (k, v) in url.query_pairs() {
        let slot = match k.as_ref() {
            "code" => &mut code,
            "pin" => &mut pin,
            _ => continue,
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(Error::Link(format!("{k} appears twice")));
        }
    }
    let code = code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("the code is missing"))?;
    if code.len() > 256 || !code.chars().all(|c| c.is_ascii_graphic()) {
        return Err(bad("the code has unexpected characters"));
    }
    let pin = normalize_pin(&pin.ok_or_else(|| bad("the pin is missing"))?)?;
    let mut base = url.clone();
    base.set_query(None);
    base.set_path(&prefix);
    let server = base.as_str().trim_end_matches('/').to_string();
    Ok(RegistrationLink {
        server,
        host,
        code: Secret::from(code),
        pin,
    })
}

/// `sha256:HEX` in lowercase, `:` between bytes allowed on input (the client's own rules).
fn normalize_pin(pin: &str) -> Result<String> {
    latchkey_client::normalize_pin(pin)
        .map_err(|_| Error::Link("the pin must be sha256: followed by 64 hex digits".into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pin() -> String {
        format!("sha256:{}", "0a".repeat(32))
    }

    #[test]
    fn a_good_link_gives_server_code_and_pin() {
        let l = parse(&format!(
            "https://mfa.example:8443/app/register?code=lkr_abc123&pin={}",
            pin()
        ))
        .unwrap();
        assert_eq!(l.server, "https://mfa.example:8443");
        assert_eq!(l.host, "mfa.example");
        assert_eq!(l.code.expose(), "lkr_abc123");
        assert_eq!(l.pin, pin());
    }

    #[test]
    fn links_are_read_leniently_where_it_is_safe() {
        // Upper-case pin with colons, percent-encoded pin, a path prefix, extra parameters.
        let upper = format!("SHA256:{}", ["0A"; 32].join(":"));
        let l = parse(&format!(
            "https://127.0.0.1:9/mfa/app/register/?pin={}&code=x&utm=1",
            upper.replace(':', "%3A")
        ))
        .unwrap();
        assert_eq!(l.server, "https://127.0.0.1:9/mfa");
        assert_eq!(l.pin, pin());
        assert_eq!(l.code.expose(), "x");
        let l = parse(&format!(
            "https://[::1]:9/app/register?code=x&pin={}",
            pin()
        ))
        .unwrap();
        assert_eq!(l.server, "https://[::1]:9");
        let l = parse(&format!("  https://h/app/register?code=x&pin={}\n", pin())).unwrap();
        assert_eq!(l.server, "https://h");
    }

    #[test]
    fn bad_links_are_refused_with_a_reason() {
        let p = pin();
        let cases = [
            ("not a link".to_string(), "relative URL"),
            (format!("http://h:1/app/register?code=x&pin={p}"), "https"),
            (
                format!("https://h:1/register?code=x&pin={p}"),
                "/app/register",
            ),
            (
                format!("https://h:1/app/register?pin={p}"),
                "code is missing",
            ),
            (
                format!("https://h:1/app/register?code=&pin={p}"),
                "code is missing",
            ),
            (
                "https://h:1/app/register?code=x".to_string(),
                "pin is missing",
            ),
            (
                "https://h:1/app/register?code=x&pin=sha256:abcd".to_string(),
                "64 hex",
            ),
            (
                format!(
                    "https://h:1/app/register?code=x&pin=md5:{}",
                    "0a".repeat(32)
                ),
                "64 hex",
            ),
            (
                format!("https://h:1/app/register?code=x&code=y&pin={p}"),
                "twice",
            ),
            (
                format!("https://u:pw@h:1/app/register?code=x&pin={p}"),
                "password",
            ),
            (
                format!("https://h:1/app/register?code=x&pin={p}#f"),
                "fragment",
            ),
            (
                format!("https://h:1/app/register?code=a%20b&pin={p}"),
                "unexpected",
            ),
        ];
        for (link, why) in cases {
            let e = parse(&link).unwrap_err();
            assert!(matches!(e, Error::Link(_)), "{link}: {e}");
            assert!(e.to_string().contains(why), "{link}: {e}");
            assert!(
                e.to_string().starts_with("invalid registration link"),
                "{e}"
            );
        }
    }
}
