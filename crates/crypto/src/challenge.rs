//! The offline QR challenge: a code sealed with HPKE to a token app's X25519 key, with the
//! login context as readable, authenticated data; its text form is `LK1:` + base45.

use crate::{Error, Result, base45, hpke};
use latchkey_proto::offline::{
    CHALLENGE_INFO, CHALLENGE_PREFIX, Challenge, code_from_plaintext, code_plaintext,
};
use sha2::Digest;
use zeroize::Zeroizing;

/// Which app key a challenge is for: the first 4 bytes of SHA-256 of the public key.
pub fn key_id(public: &[u8; 32]) -> [u8; 4] {
    let d = sha2::Sha256::digest(public);
    [d[0], d[1], d[2], d[3]]
}

/// What the challenge says in the clear.
pub struct Context<'a> {
    pub user: &'a str,
    pub host: &'a str,
    pub client_id: &'a str,
    pub expires_at: u32,
    pub nonce: [u8; 8],
}

/// Seals `code` (of `digits` digits) to `app_public`, with a fresh HPKE ephemeral key.
pub fn seal(app_public: &[u8; 32], ctx: &Context<'_>, digits: u8, code: u32) -> Result<Challenge> {
    seal_by(app_public, ctx, digits, code, |aad, pt| {
        hpke::seal(app_public, CHALLENGE_INFO, aad, pt)
    })
}

/// [`seal`] with a given HPKE ephemeral secret: the same inputs give the same challenge. For
/// test vectors only (`crates/token/tests/token-app-vectors.json`): a real challenge must
/// come from [`seal`], as an ephemeral key used twice with one app key gives one HPKE key
/// and nonce to two plaintexts.
pub fn seal_with_ephemeral(
    app_public: &[u8; 32],
    ctx: &Context<'_>,
    digits: u8,
    code: u32,
    ephemeral_secret: &[u8; 32],
) -> Result<Challenge> {
    seal_by(app_public, ctx, digits, code, |aad, pt| {
        hpke::seal_with_ephemeral(app_public, ephemeral_secret, CHALLENGE_INFO, aad, pt)
    })
}

type Sealed = ([u8; 32], Vec<u8>);

fn seal_by(
    app_public: &[u8; 32],
    ctx: &Context<'_>,
    digits: u8,
    code: u32,
    hpke_seal: impl FnOnce(&[u8], &[u8]) -> Result<Sealed>,
) -> Result<Challenge> {
    let mut c = Challenge {
        key_id: key_id(app_public),
        expires_at: ctx.expires_at,
        nonce: ctx.nonce,
        user: ctx.user.to_string(),
        host: ctx.host.to_string(),
        client_id: ctx.client_id.to_string(),
        enc: [0; 32],
        ciphertext: vec![],
    };
    let aad = c.header().map_err(|e| Error::Encoding(e.0))?;
    let pt = Zeroizing::new(code_plaintext(digits, code));
    let (enc, ct) = hpke_seal(&aad, &*pt)?;
    c.enc = enc;
    c.ciphertext = ct;
    Ok(c)
}

/// Opens a challenge with the app's X25519 secret: the code as the person types it.
pub fn open(secret: &[u8; 32], c: &Challenge) -> Result<Zeroizing<String>> {
    let aad = c.header().map_err(|e| Error::Encoding(e.0))?;
    let pt = hpke::open(secret, &c.enc, CHALLENGE_INFO, &aad, &c.ciphertext)?;
    code_from_plaintext(&pt)
        .map(Zeroizing::new)
        .map_err(|e| Error::Encoding(e.0))
}

/// Text form shown beside the QR code and inside it (QR alphanumeric mode).
pub fn to_text(c: &Challenge) -> Result<String> {
    let bytes = c.to_bytes().map_err(|e| Error::Encoding(e.0))?;
    Ok(format!("{CHALLENGE_PREFIX}{}", base45::encode(&bytes)))
}

/// Parses the text form (surrounding whitespace and line breaks from copying are ignored;
/// spaces inside are part of base45).
pub fn from_text(text: &str) -> Result<Challenge> {
    let text = text.trim_matches(|c: char| c == '\n' || c == '\r' || c == '\t');
    let text = text.trim_start();
    let body = text.strip_prefix(CHALLENGE_PREFIX).ok_or_else(|| {
        Error::Encoding(format!(
            "not a latchkey challenge (no {CHALLENGE_PREFIX} prefix)"
        ))
    })?;
    if body.len() > 1024 {
        return Err(Error::Encoding("challenge text is too long".into()));
    }
    let bytes = base45::decode(body)?;
    Challenge::from_bytes(&bytes).map_err(|e| Error::Encoding(e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_text_parse_open() {
        let sk = [3u8; 32];
        let pk = hpke::public_key(&sk);
        let ctx = Context {
            user: "alice",
            host: "test-host",
            client_id: "login",
            expires_at: 1_800_000_000,
            nonce: [1; 8],
        };
        let c = seal(&pk, &ctx, 8, 1234).unwrap();
        let text = to_text(&c).unwrap();
        assert!(text.starts_with("LK1:"));
        // Fits a version 5 QR code at EC level L (154 alphanumeric characters).
        assert!(text.len() <= 154, "{} characters", text.len());
        let back = from_text(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(open(&sk, &back).unwrap().as_str(), "00001234");
        assert!(open(&[4u8; 32], &back).is_err());
        let mut other = back.clone();
        other.client_id = "elevation".into();
        assert!(open(&sk, &other).is_err(), "the context is authenticated");
        assert!(from_text("LK2:AAA").is_err());
        // Deterministic with a given ephemeral secret, and it opens the same way.
        let a = seal_with_ephemeral(&pk, &ctx, 8, 1234, &[5; 32]).unwrap();
        assert_eq!(
            a,
            seal_with_ephemeral(&pk, &ctx, 8, 1234, &[5; 32]).unwrap()
        );
        assert_eq!(a.enc, hpke::public_key(&[5; 32]));
        assert_eq!(open(&sk, &a).unwrap().as_str(), "00001234");
        assert_ne!(
            c.enc,
            seal(&pk, &ctx, 8, 1234).unwrap().enc,
            "fresh ephemeral keys"
        );
        assert!(from_text("LK1:").is_err());
    }
}
