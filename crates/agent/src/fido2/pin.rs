//! CTAP2 PIN/UV auth protocol 1 (CTAP 2.1 §6.5.6): ECDH on P-256 with the key's
//! key-agreement key, shared secret = SHA-256(Z.x), AES-256-CBC with a zero IV, and
//! pinUvAuthParam = the first 16 bytes of HMAC-SHA-256(pinToken, message). Every CTAP2 key
//! with a PIN supports protocol 1. Used by the agent and by the tests' software authenticator.

use super::Fido2Error;
use aes::Aes256;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use hmac::{Hmac, Mac};
use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
use ring::rand::SystemRandom;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub const PROTOCOL_1: u64 = 1;
/// COSE algorithm of a CTAP2 key-agreement key (ECDH-ES + HKDF-256).
pub const ALG_ECDH_ES_HKDF_256: i64 = -25;

fn crypto_err(what: &str) -> Fido2Error {
    Fido2Error::Protocol(format!("PIN protocol: {what}"))
}

/// An ephemeral P-256 key for one agreement: (its public point, its private half).
pub fn ephemeral() -> Result<([u8; 65], EphemeralPrivateKey), Fido2Error> {
    let rng = SystemRandom::new();
    let private = EphemeralPrivateKey::generate(&ECDH_P256, &rng)
        .map_err(|_| crypto_err("key generation failed"))?;
    let public = private
        .compute_public_key()
        .map_err(|_| crypto_err("public key computation failed"))?;
    let point: [u8; 65] = public
        .as_ref()
        .try_into()
        .map_err(|_| crypto_err("unexpected public key size"))?;
    Ok((point, private))
}

/// Shared secret of protocol 1: SHA-256 of the ECDH x coordinate.
pub fn shared_secret(
    private: EphemeralPrivateKey,
    peer_point: &[u8; 65],
) -> Result<Zeroizing<[u8; 32]>, Fido2Error> {
    let peer = UnparsedPublicKey::new(&ECDH_P256, peer_point);
    agree_ephemeral(private, &peer, |z| {
        Zeroizing::new(<[u8; 32]>::from(Sha256::digest(z)))
    })
    .map_err(|_| crypto_err("the key's key-agreement point is invalid"))
}

/// AES-256-CBC with a zero IV over whole blocks (protocol 1 never pads).
pub fn encrypt(key: &[u8; 32], data: &[u8]) -> Result<Vec<u8>, Fido2Error> {
    if !data.len().is_multiple_of(16) {
        return Err(crypto_err("plaintext is not whole AES blocks"));
    }
    let cipher = Aes256::new(GenericArray::from_slice(key));
    let mut prev = [0u8; 16];
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks(16) {
        let mut block = [0u8; 16];
        for i in 0..16 {
            block[i] = chunk[i] ^ prev[i];
        }
        let mut b = GenericArray::from(block);
        cipher.encrypt_block(&mut b);
        prev.copy_from_slice(&b);
        out.extend_from_slice(&b);
    }
    Ok(out)
}

pub fn decrypt(key: &[u8; 32], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, Fido2Error> {
    if !data.len().is_multiple_of(16) || data.is_empty() {
        return Err(crypto_err("ciphertext is not whole AES blocks"));
    }
    let cipher = Aes256::new(GenericArray::from_slice(key));
    let mut prev = [0u8; 16];
    let mut out = Zeroizing::new(Vec::with_capacity(data.len()));
    for chunk in data.chunks(16) {
        let mut b = GenericArray::clone_from_slice(chunk);
        cipher.decrypt_block(&mut b);
        for i in 0..16 {
            out.push(b[i] ^ prev[i]);
        }
        prev.copy_from_slice(chunk);
    }
    Ok(out)
}

/// LEFT(SHA-256(PIN), 16): what getPinToken sends, encrypted.
pub fn pin_hash(pin: &str) -> Zeroizing<[u8; 16]> {
    let full = Sha256::digest(pin.as_bytes());
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&full[..16]);
    out
}

/// LEFT(HMAC-SHA-256(token, message), 16).
pub fn auth_param(token: &[u8], message: &[u8]) -> Result<[u8; 16], Fido2Error> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(token).map_err(|_| crypto_err("bad PIN token"))?;
    mac.update(message);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_derive_one_secret_and_cbc_round_trips() {
        let (pa, a) = ephemeral().unwrap();
        let (pb, b) = ephemeral().unwrap();
        let s1 = shared_secret(a, &pb).unwrap();
        let s2 = shared_secret(b, &pa).unwrap();
        assert_eq!(*s1, *s2);
        let data = [7u8; 32];
        let enc = encrypt(&s1, &data).unwrap();
        assert_ne!(enc, data);
        assert_eq!(&decrypt(&s2, &enc).unwrap()[..], &data);
        assert!(encrypt(&s1, &[1, 2, 3]).is_err());
        assert!(decrypt(&s1, &[]).is_err());
        let (_, c) = ephemeral().unwrap();
        assert!(shared_secret(c, &[0u8; 65]).is_err());
    }

    #[test]
    fn aes_256_cbc_matches_nist_sp800_38a() {
        // NIST SP 800-38A F.2.5 (CBC-AES256.Encrypt), first block, with its IV folded into
        // the plaintext (protocol 1 uses a zero IV).
        let key: [u8; 32] = data_encoding::HEXLOWER
            .decode(b"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
            .unwrap()
            .try_into()
            .unwrap();
        let iv = data_encoding::HEXLOWER
            .decode(b"000102030405060708090a0b0c0d0e0f")
            .unwrap();
        let pt = data_encoding::HEXLOWER
            .decode(b"6bc1bee22e409f96e93d7e117393172a")
            .unwrap();
        let xored: Vec<u8> = pt.iter().zip(&iv).map(|(a, b)| a ^ b).collect();
        let ct = encrypt(&key, &xored).unwrap();
        assert_eq!(
            data_encoding::HEXLOWER.encode(&ct),
            "f58c4c04d6e5f1ba779eabfb5f7bfbd6"
        );
    }
}
