//! Long-lived keys: the server's Ed25519 signing key and random API credentials.

use crate::{Error, Result, random_bytes, sha256_hex};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use zeroize::Zeroizing;

/// The server's Ed25519 key that signs offline bundles.
pub struct SigningKeyPair(SigningKey);

impl std::fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKeyPair(public={})",
            data_encoding::HEXLOWER.encode(&self.public_bytes())
        )
    }
}

impl SigningKeyPair {
    pub fn generate() -> Result<Self> {
        let seed = Zeroizing::new(random_bytes(32)?);
        Self::from_seed(&seed)
    }

    pub fn from_seed(seed: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = seed
            .try_into()
            .map_err(|_| Error::Key("Ed25519 seed must be 32 bytes".into()))?;
        Ok(SigningKeyPair(SigningKey::from_bytes(&arr)))
    }

    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    pub fn public_bytes(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

/// Verifies an Ed25519 signature with a raw 32-byte public key.
pub fn ed25519_verify(public: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(pk_arr) = <[u8; 32]>::try_from(public) else {
        return false;
    };
    let Ok(sig_arr) = <[u8; 64]>::try_from(sig) else {
        return false;
    };
    let Ok(pk) = VerifyingKey::from_bytes(&pk_arr) else {
        return false;
    };
    pk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig_arr))
        .is_ok()
        && pk
            .verify(msg, &ed25519_dalek::Signature::from_bytes(&sig_arr))
            .is_ok()
}

/// A random bearer credential `PREFIX_<base32>` (160 bits of entropy). Because it is random
/// and long, a plain SHA-256 is a sufficient at-rest hash (no password stretching needed).
pub fn generate_api_key(prefix: &str) -> Result<String> {
    let raw = random_bytes(20)?;
    Ok(format!(
        "{prefix}_{}",
        data_encoding::BASE32_NOPAD
            .encode(&raw)
            .to_ascii_lowercase()
    ))
}

/// At-rest form of an API key.
pub fn hash_api_key(key: &str) -> String {
    sha256_hex(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let k = SigningKeyPair::generate().unwrap();
        let sig = k.sign(b"bundle");
        assert!(ed25519_verify(&k.public_bytes(), b"bundle", &sig));
        assert!(!ed25519_verify(&k.public_bytes(), b"bundlf", &sig));
        let again = SigningKeyPair::from_seed(&*k.seed()).unwrap();
        assert_eq!(again.public_bytes(), k.public_bytes());
        assert!(!ed25519_verify(&[0u8; 3], b"x", &sig));
    }

    #[test]
    fn api_keys_are_random_and_hash_stably() {
        let a = generate_api_key("lkm").unwrap();
        let b = generate_api_key("lkm").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("lkm_"));
        assert_eq!(hash_api_key(&a), hash_api_key(&a));
        assert_eq!(hash_api_key(&a).len(), 64);
    }
}
