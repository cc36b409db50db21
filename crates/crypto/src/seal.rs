//! Sealing secrets at rest (OTP seeds in the database) with a master key kept outside the
//! database.
//!
//! Format: `0x01 ‖ nonce (24) ‖ XChaCha20-Poly1305(ciphertext ‖ tag)`. The caller passes
//! associated data binding the secret to its row (e.g. the token id), so a sealed seed copied
//! onto another token does not open.

use crate::{Error, Result, random_bytes};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
pub const KEY_LEN: usize = 32;

pub struct MasterKey([u8; KEY_LEN]);

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn generate() -> Result<Self> {
        let bytes = random_bytes(KEY_LEN)?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| Error::Key(format!("master key must be {KEY_LEN} bytes")))?;
        Ok(MasterKey(arr))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let nonce = random_bytes(NONCE_LEN)?;
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| Error::Key("encryption failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(Error::Unseal);
        }
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::Unseal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_binding() {
        let k = MasterKey::generate().unwrap();
        let sealed = k.seal(b"seed", b"token-1").unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"seed"));
        assert_eq!(&*k.open(&sealed, b"token-1").unwrap(), b"seed");
        assert_eq!(k.open(&sealed, b"token-2"), Err(Error::Unseal));
        let other = MasterKey::generate().unwrap();
        assert_eq!(other.open(&sealed, b"token-1"), Err(Error::Unseal));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(k.open(&flipped, b"token-1"), Err(Error::Unseal));
        assert_eq!(k.open(&[1, 2, 3], b"token-1"), Err(Error::Unseal));
    }
}
