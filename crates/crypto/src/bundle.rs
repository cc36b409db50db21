//! Offline bundle signatures: Ed25519 over domain-separated bytes, so a bundle signature can
//! never be replayed as (or made from) any other signature the server key produces.

use crate::keys::{SigningKeyPair, ed25519_verify};

/// Prefix of every signed bundle message; the version is part of it.
pub const BUNDLE_DOMAIN: &[u8] = b"latchkey offline bundle v1\0";

fn message(payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(BUNDLE_DOMAIN.len() + payload.len());
    m.extend_from_slice(BUNDLE_DOMAIN);
    m.extend_from_slice(payload);
    m
}

/// Signs the exact payload bytes of a bundle.
pub fn sign(key: &SigningKeyPair, payload: &[u8]) -> [u8; 64] {
    key.sign(&message(payload))
}

/// Verifies a bundle signature with the pinned server public key.
pub fn verify(public: &[u8], payload: &[u8], signature: &[u8]) -> bool {
    ed25519_verify(public, &message(payload), signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_bound_to_the_domain_and_key() {
        let k = SigningKeyPair::generate().unwrap();
        let sig = sign(&k, b"{\"v\":1}");
        assert!(verify(&k.public_bytes(), b"{\"v\":1}", &sig));
        assert!(!verify(&k.public_bytes(), b"{\"v\":2}", &sig));
        // A plain signature over the same bytes is not a bundle signature.
        assert!(!verify(
            &k.public_bytes(),
            b"{\"v\":1}",
            &k.sign(b"{\"v\":1}")
        ));
        let other = SigningKeyPair::generate().unwrap();
        assert!(!verify(&other.public_bytes(), b"{\"v\":1}", &sig));
    }
}
