//! The Key Uri Format (`otpauth://`) understood by Google/Microsoft Authenticator, Aegis and
//! FreeOTP: `otpauth://TYPE/ISSUER:ACCOUNT?secret=B32&issuer=ISSUER&algorithm=&digits=&period=`.

use crate::{Error, Result, base32_decode, base32_encode};
use latchkey_proto::{OtpAlgorithm, TokenKind};
use url::Url;
use zeroize::Zeroizing;

#[derive(Clone, PartialEq, Eq)]
pub struct OtpAuthUri {
    pub kind: TokenKind,
    pub issuer: String,
    pub account: String,
    pub secret: Zeroizing<Vec<u8>>,
    pub algorithm: OtpAlgorithm,
    pub digits: u32,
    /// TOTP only.
    pub period: u32,
    /// HOTP only: the first counter.
    pub counter: u64,
}

impl std::fmt::Debug for OtpAuthUri {
    // The secret never appears in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpAuthUri")
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl OtpAuthUri {
    pub fn to_uri(&self) -> String {
        let mut uri = format!(
            "otpauth://{}/{}:{}?secret={}&issuer={}&algorithm={}&digits={}",
            // An app's seed is a TOTP seed.
            if self.kind == TokenKind::Hotp {
                "hotp"
            } else {
                "totp"
            },
            enc(&self.issuer),
            enc(&self.account),
            base32_encode(&self.secret),
            enc(&self.issuer),
            self.algorithm,
            self.digits
        );
        match self.kind {
            TokenKind::Hotp => uri.push_str(&format!("&counter={}", self.counter)),
            _ => uri.push_str(&format!("&period={}", self.period)),
        }
        uri
    }

    /// The shortest URI for a QR code at a login prompt: a TOTP token with the defaults
    /// every app assumes (SHA1, 6 digits, 30 s) leaves them out, so the code stays small
    /// enough for an 80×24 terminal. Anything else is [`OtpAuthUri::to_uri`].
    pub fn to_compact_uri(&self) -> String {
        let defaults = self.kind != TokenKind::Hotp
            && self.algorithm == OtpAlgorithm::Sha1
            && self.digits == 6
            && self.period == 30;
        if !defaults {
            return self.to_uri();
        }
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}",
            enc(&self.issuer),
            enc(&self.account),
            base32_encode(&self.secret),
            enc(&self.issuer),
        )
    }

    pub fn parse(text: &str) -> Result<Self> {
        let bad = |m: &str| Error::OtpAuth(m.to_string());
        let url = Url::parse(text).map_err(|e| Error::OtpAuth(e.to_string()))?;
        if url.scheme() != "otpauth" {
            return Err(bad("scheme is not otpauth"));
        }
        let kind = match url.host_str() {
            Some("totp") => TokenKind::Totp,
            Some("hotp") => TokenKind::Hotp,
            _ => return Err(bad("type must be totp or hotp")),
        };
        let label = url.path().trim_start_matches('/').to_string();
        let label = url::form_urlencoded::parse(format!("l={label}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let (label_issuer, account) = match label.split_once(':') {
            Some((i, a)) => (Some(i.trim().to_string()), a.trim().to_string()),
            None => (None, label.trim().to_string()),
        };
        let mut secret = None;
        let mut issuer = None;
        let mut algorithm = OtpAlgorithm::Sha1;
        let mut digits = 6;
        let mut period = 30;
        let mut counter = 0;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "secret" => secret = Some(Zeroizing::new(base32_decode(&v)?)),
                "issuer" => issuer = Some(v.into_owned()),
                "algorithm" => algorithm = v.parse().map_err(|e: String| Error::OtpAuth(e))?,
                "digits" => digits = v.parse().map_err(|_| bad("digits is not a number"))?,
                "period" => period = v.parse().map_err(|_| bad("period is not a number"))?,
                "counter" => counter = v.parse().map_err(|_| bad("counter is not a number"))?,
                _ => {}
            }
        }
        let secret = secret.ok_or_else(|| bad("secret is missing"))?;
        if !crate::otp::DIGITS_RANGE.contains(&digits) {
            return Err(bad("digits must be 6, 7 or 8"));
        }
        if period == 0 {
            return Err(bad("period must be positive"));
        }
        if kind == TokenKind::Hotp && !url.query_pairs().any(|(k, _)| k == "counter") {
            return Err(bad("counter is required for hotp"));
        }
        Ok(OtpAuthUri {
            kind,
            issuer: issuer.or(label_issuer).unwrap_or_default(),
            account,
            secret,
            algorithm,
            digits,
            period,
            counter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: TokenKind) -> OtpAuthUri {
        OtpAuthUri {
            kind,
            issuer: "latchkey example".into(),
            account: "alice@corp".into(),
            secret: Zeroizing::new(b"12345678901234567890".to_vec()),
            algorithm: OtpAlgorithm::Sha256,
            digits: 8,
            period: 60,
            counter: if kind == TokenKind::Hotp { 7 } else { 0 },
        }
    }

    #[test]
    fn a_compact_uri_leaves_out_only_the_defaults_and_reads_back_the_same() {
        let mut u = sample(TokenKind::Totp);
        assert_eq!(
            u.to_compact_uri(),
            u.to_uri(),
            "not the defaults: all of it"
        );
        u.algorithm = OtpAlgorithm::Sha1;
        u.digits = 6;
        u.period = 30;
        let short = u.to_compact_uri();
        assert!(
            !short.contains("digits") && !short.contains("period"),
            "{short}"
        );
        assert!(short.len() < u.to_uri().len());
        let back = OtpAuthUri::parse(&short).unwrap();
        assert_eq!(
            (back.algorithm, back.digits, back.period, back.secret),
            (u.algorithm, u.digits, u.period, u.secret)
        );
    }

    #[test]
    fn otpauth_uri_round_trip() {
        for kind in [TokenKind::Totp, TokenKind::Hotp] {
            let u = sample(kind);
            let text = u.to_uri();
            assert!(text.starts_with(&format!(
                "otpauth://{kind}/latchkey%20example:alice%40corp?"
            )));
            let back = OtpAuthUri::parse(&text).unwrap();
            assert_eq!(back.kind, u.kind);
            assert_eq!(back.issuer, u.issuer);
            assert_eq!(back.account, u.account);
            assert_eq!(*back.secret, *u.secret);
            assert_eq!(back.algorithm, u.algorithm);
            assert_eq!(back.digits, u.digits);
            if kind == TokenKind::Totp {
                assert_eq!(back.period, 60);
            } else {
                assert_eq!(back.counter, 7);
            }
        }
    }

    #[test]
    fn otpauth_google_style_defaults() {
        let u = OtpAuthUri::parse(
            "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example",
        )
        .unwrap();
        assert_eq!(u.algorithm, OtpAlgorithm::Sha1);
        assert_eq!(u.digits, 6);
        assert_eq!(u.period, 30);
        assert_eq!(u.account, "alice@google.com");
        assert_eq!(u.issuer, "Example");
    }

    #[test]
    fn otpauth_rejects_bad_input() {
        for bad in [
            "http://totp/x?secret=JBSWY3DP",
            "otpauth://motp/x?secret=JBSWY3DP",
            "otpauth://totp/x",
            "otpauth://totp/x?secret=!!",
            "otpauth://totp/x?secret=JBSWY3DP&digits=12",
            "otpauth://totp/x?secret=JBSWY3DP&period=0",
            "otpauth://hotp/x?secret=JBSWY3DP",
            "not a uri",
        ] {
            assert!(OtpAuthUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_secret() {
        let d = format!("{:?}", sample(TokenKind::Totp));
        assert!(!d.contains("secret"));
        assert!(!d.contains("GEZDG"));
    }
}
