//! Pure cryptographic functions of latchkey.
//!
//! Nothing here does I/O (except drawing randomness from the OS). Every comparison of a
//! secret value is constant time.

pub mod base45;
pub mod bundle;
pub mod challenge;
pub mod hpke;
pub mod keys;
pub mod otp;
pub mod otpauth;
pub mod seal;
pub mod webauthn;
pub mod x509;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid base32 secret: {0}")]
    Base32(String),
    #[error("invalid otpauth URI: {0}")]
    OtpAuth(String),
    #[error("sealed data could not be opened (wrong master key or corrupted)")]
    Unseal,
    #[error("invalid key material: {0}")]
    Key(String),
    #[error("invalid encoding: {0}")]
    Encoding(String),
    #[error("HPKE: {0}")]
    Hpke(String),
    #[error("the operating system's random generator failed")]
    Random,
}

pub type Result<T> = std::result::Result<T, Error>;

/// Fills a new buffer of `n` bytes from the OS CSPRNG.
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf).map_err(|_| Error::Random)?;
    Ok(buf)
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// RFC 4648 base32 without padding, upper case (the Key Uri Format's `secret=`).
pub fn base32_encode(data: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(data)
}

/// Lenient base32 decoding as authenticator apps do: case-insensitive, spaces, dashes and
/// trailing `=` ignored.
pub fn base32_decode(text: &str) -> Result<Vec<u8>> {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .trim_end_matches('=')
        .to_ascii_uppercase();
    if cleaned.is_empty() {
        return Err(Error::Base32("empty secret".into()));
    }
    data_encoding::BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map_err(|e| Error::Base32(e.to_string()))
}

/// Lowercase hex of SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trip_and_leniency() {
        let data = b"12345678901234567890";
        let enc = base32_encode(data);
        assert_eq!(enc, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(base32_decode(&enc).unwrap(), data);
        assert_eq!(
            base32_decode("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap(),
            data
        );
        assert_eq!(base32_decode("MFRGG===").unwrap(), b"abc");
    }

    #[test]
    fn base32_rejects_garbage() {
        assert!(base32_decode("").is_err());
        assert!(base32_decode("!!!!").is_err());
        assert!(base32_decode("A1").is_err());
    }

    #[test]
    fn ct_eq_behaves() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
