//! HPKE base mode (RFC 9180) for one suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20Poly1305 — what the offline QR challenge is sealed with. Single-shot: one message
//! per context (sequence number 0), which is all a challenge needs. Checked against the
//! RFC's Appendix A.2.1 vectors.

use crate::{Error, Result, random_bytes};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Size of the encapsulated key (the sender's ephemeral X25519 public key).
pub const ENC_LEN: usize = 32;
/// AEAD tag added to every ciphertext.
pub const TAG_LEN: usize = 16;

const KEM_ID: u16 = 0x0020;
const KDF_ID: u16 = 0x0001;
const AEAD_ID: u16 = 0x0003;
const MODE_BASE: u8 = 0x00;

fn kem_suite() -> Vec<u8> {
    let mut s = b"KEM".to_vec();
    s.extend_from_slice(&KEM_ID.to_be_bytes());
    s
}

fn hpke_suite() -> Vec<u8> {
    let mut s = b"HPKE".to_vec();
    s.extend_from_slice(&KEM_ID.to_be_bytes());
    s.extend_from_slice(&KDF_ID.to_be_bytes());
    s.extend_from_slice(&AEAD_ID.to_be_bytes());
    s
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match <HmacSha256 as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Zeroizing::new([0u8; 32]),
    };
    for p in parts {
        mac.update(p);
    }
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// LabeledExtract(salt, label, ikm) = HKDF-Extract(salt, "HPKE-v1" || suite || label || ikm).
fn labeled_extract(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; 32]> {
    hmac(salt, &[b"HPKE-v1", suite, label, ikm])
}

/// LabeledExpand(prk, label, info, L) with HKDF-Expand; L ≤ 32 here (one block).
fn labeled_expand(
    suite: &[u8],
    prk: &[u8],
    label: &[u8],
    info: &[u8],
    len: usize,
) -> Zeroizing<Vec<u8>> {
    let l = (len as u16).to_be_bytes();
    let t1 = hmac(prk, &[&l, b"HPKE-v1", suite, label, info, &[1u8]]);
    Zeroizing::new(t1[..len.min(32)].to_vec())
}

fn dh(sk: &StaticSecret, pk: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
    let shared = sk.diffie_hellman(&PublicKey::from(*pk));
    // RFC 9180 §7.1.4: an all-zero DH output (a low-order public key) is an error.
    if !shared.was_contributory() {
        return Err(Error::Hpke("the X25519 public key is not valid".into()));
    }
    Ok(Zeroizing::new(*shared.as_bytes()))
}

/// ExtractAndExpand of DHKEM (§4.1): the KEM shared secret.
fn kem_shared(dh_out: &[u8], enc: &[u8; 32], pk_r: &[u8; 32]) -> Zeroizing<Vec<u8>> {
    let suite = kem_suite();
    let eae_prk = labeled_extract(&suite, b"", b"eae_prk", dh_out);
    let mut ctx = Vec::with_capacity(64);
    ctx.extend_from_slice(enc);
    ctx.extend_from_slice(pk_r);
    labeled_expand(&suite, &*eae_prk, b"shared_secret", &ctx, 32)
}

/// KeySchedule (§5.1) in base mode: (key, base_nonce).
fn key_schedule(shared: &[u8], info: &[u8]) -> (Zeroizing<Vec<u8>>, Vec<u8>) {
    let suite = hpke_suite();
    let psk_id_hash = labeled_extract(&suite, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(&suite, b"", b"info_hash", info);
    let mut ctx = vec![MODE_BASE];
    ctx.extend_from_slice(&*psk_id_hash);
    ctx.extend_from_slice(&*info_hash);
    let secret = labeled_extract(&suite, shared, b"secret", b"");
    let key = labeled_expand(&suite, &*secret, b"key", &ctx, 32);
    let nonce = labeled_expand(&suite, &*secret, b"base_nonce", &ctx, 12);
    (key, nonce.to_vec())
}

fn aead(key: &[u8]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(Key::from_slice(key))
}

/// Seals `plaintext` to `pk_r` with a fresh ephemeral key: (enc, ciphertext ‖ tag).
pub fn seal(
    pk_r: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; 32], Vec<u8>)> {
    let ikm = Zeroizing::new(random_bytes(32)?);
    let mut sk = Zeroizing::new([0u8; 32]);
    sk.copy_from_slice(&ikm);
    seal_with_ephemeral(pk_r, &sk, info, aad, plaintext)
}

/// Seal with a given ephemeral secret (deterministic: for test vectors only, the RFC's and
/// `challenge::seal_with_ephemeral`'s).
pub fn seal_with_ephemeral(
    pk_r: &[u8; 32],
    sk_e: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; 32], Vec<u8>)> {
    let sk = StaticSecret::from(*sk_e);
    let enc = PublicKey::from(&sk).to_bytes();
    let dh_out = dh(&sk, pk_r)?;
    let shared = kem_shared(&*dh_out, &enc, pk_r);
    let (key, nonce) = key_schedule(&shared, info);
    let ct = aead(&key)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::Hpke("sealing failed".into()))?;
    Ok((enc, ct))
}

/// Opens what [`seal`] made for the key pair whose secret is `sk_r`. Any change to `enc`,
/// `info`, `aad` or the ciphertext is an error.
pub fn open(
    sk_r: &[u8; 32],
    enc: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let sk = StaticSecret::from(*sk_r);
    let pk_r = PublicKey::from(&sk).to_bytes();
    let dh_out = dh(&sk, enc)?;
    let shared = kem_shared(&*dh_out, enc, &pk_r);
    let (key, nonce) = key_schedule(&shared, info);
    aead(&key)
        .decrypt(Nonce::from_slice(&nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| Error::Hpke("the challenge does not open with this key".into()))
}

/// The X25519 public key of a secret.
pub fn public_key(sk: &[u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(*sk)).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap()
    }
    fn hex32(s: &str) -> [u8; 32] {
        hex(s).try_into().unwrap()
    }

    // RFC 9180 Appendix A.2.1 (mode_base, X25519/HKDF-SHA256/ChaCha20Poly1305).
    const INFO: &str = "4f6465206f6e2061204772656369616e2055726e";
    const SK_EM: &str = "f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600";
    const PK_EM: &str = "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a";
    const SK_RM: &str = "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb";
    const PK_RM: &str = "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a";
    const SHARED: &str = "0bbe78490412b4bbea4812666f7916932b828bba79942424abb65244930d69a7";
    const KEY: &str = "ad2744de8e17f4ebba575b3f5f5a8fa1f69c2a07f6e7500bc60ca6e3e3ec1c91";
    const BASE_NONCE: &str = "5c4d98150661b848853b547f";
    const PT: &str = "4265617574792069732074727574682c20747275746820626561757479";
    const AAD0: &str = "436f756e742d30";
    const CT0: &str = "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28";

    #[test]
    fn rfc9180_a21_intermediate_values() {
        assert_eq!(public_key(&hex32(SK_EM)).to_vec(), hex(PK_EM));
        assert_eq!(public_key(&hex32(SK_RM)).to_vec(), hex(PK_RM));
        let sk = StaticSecret::from(hex32(SK_EM));
        let dh_out = dh(&sk, &hex32(PK_RM)).unwrap();
        let shared = kem_shared(&*dh_out, &hex32(PK_EM), &hex32(PK_RM));
        assert_eq!(shared.to_vec(), hex(SHARED));
        let (key, nonce) = key_schedule(&shared, &hex(INFO));
        assert_eq!(key.to_vec(), hex(KEY));
        assert_eq!(nonce, hex(BASE_NONCE));
    }

    #[test]
    fn rfc9180_a21_seal_and_open_sequence_zero() {
        let (enc, ct) = seal_with_ephemeral(
            &hex32(PK_RM),
            &hex32(SK_EM),
            &hex(INFO),
            &hex(AAD0),
            &hex(PT),
        )
        .unwrap();
        assert_eq!(enc.to_vec(), hex(PK_EM));
        assert_eq!(ct, hex(CT0));
        let pt = open(
            &hex32(SK_RM),
            &hex32(PK_EM),
            &hex(INFO),
            &hex(AAD0),
            &hex(CT0),
        )
        .unwrap();
        assert_eq!(pt.to_vec(), hex(PT));
    }

    #[test]
    fn any_change_fails_to_open() {
        let sk_r = [7u8; 32];
        let pk_r = public_key(&sk_r);
        let (enc, ct) = seal(&pk_r, b"info", b"aad", b"12345678").unwrap();
        assert_eq!(
            open(&sk_r, &enc, b"info", b"aad", &ct).unwrap().as_slice(),
            b"12345678"
        );
        assert!(open(&sk_r, &enc, b"info", b"aaD", &ct).is_err());
        assert!(open(&sk_r, &enc, b"infO", b"aad", &ct).is_err());
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(open(&sk_r, &enc, b"info", b"aad", &bad).is_err());
        assert!(open(&[8u8; 32], &enc, b"info", b"aad", &ct).is_err());
        // A low-order point is refused rather than used.
        assert!(seal(&[0u8; 32], b"i", b"a", b"p").is_err());
        assert!(open(&sk_r, &[0u8; 32], b"info", b"aad", &ct).is_err());
    }
}
