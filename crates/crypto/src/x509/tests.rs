use super::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, date_time_ymd};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A card-like P-256 key (ring, so the test can sign as CKM_ECDSA would) and its
/// certificate issued by `ca`, valid from `from` to `to` (years).
fn card(ca: &Ca, from: i32, to: i32) -> (EcdsaKeyPair, Vec<u8>) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let kp =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let rc_key = KeyPair::try_from(pkcs8.as_ref()).unwrap();
    assert_eq!(rc_key.public_key_raw(), kp.public_key().as_ref());
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "alice");
    p.not_before = date_time_ymd(from, 1, 1);
    p.not_after = date_time_ymd(to, 1, 1);
    let cert = p.signed_by(&rc_key, &ca.cert, &ca.key).unwrap();
    (kp, cert.der().to_vec())
}

const NOW: i64 = 1_800_000_000; // 2027-01-15

#[test]
fn parses_an_ec_certificate_and_verifies_a_card_signature() {
    let ca = ca("Test CA");
    let (kp, der) = card(&ca, 2020, 2040);
    let c = Certificate::from_der(&der).unwrap();
    assert_eq!(c.fingerprint, crate::sha256_hex(&der));
    assert_eq!(c.subject, "CN=alice");
    assert_eq!(c.issuer, "CN=Test CA");
    assert!(matches!(c.key, PublicKey::EcP256(_)));
    assert_eq!(
        SigMechanism::for_key(&c.key),
        Some(SigMechanism::EcdsaP256Sha256)
    );
    c.check_validity(NOW).unwrap();

    let challenge = b"0123456789abcdef0123456789abcdef";
    let sig = kp.sign(&SystemRandom::new(), challenge).unwrap();
    c.verify_signature(SigMechanism::EcdsaP256Sha256, challenge, sig.as_ref())
        .unwrap();
    assert_eq!(
        c.verify_signature(SigMechanism::EcdsaP256Sha256, b"other", sig.as_ref()),
        Err(CertError::BadSignature)
    );
    assert_eq!(
        c.verify_signature(SigMechanism::RsaPkcs1Sha256, challenge, sig.as_ref()),
        Err(CertError::BadSignature),
        "an RSA mechanism is never checked against an EC key"
    );
    let pem = der_to_pem(&der);
    assert_eq!(Certificate::from_pem_or_der(pem.as_bytes()).unwrap(), c);
}

#[test]
fn validity_dates_are_enforced() {
    let ca = ca("Test CA");
    let (_, old) = card(&ca, 2010, 2020);
    let c = Certificate::from_der(&old).unwrap();
    assert!(matches!(c.check_validity(NOW), Err(CertError::Expired(_))));
    let (_, future) = card(&ca, 2040, 2050);
    let c = Certificate::from_der(&future).unwrap();
    assert!(matches!(
        c.check_validity(NOW),
        Err(CertError::NotYetValid(_))
    ));
}

#[test]
fn issuing_ca_is_checked_by_name_and_signature() {
    let trusted = ca("Test CA");
    let (_, der) = card(&trusted, 2020, 2040);
    let c = Certificate::from_der(&der).unwrap();
    let trusted_c = Certificate::from_der(trusted.cert.der()).unwrap();
    c.check_issued_by(&trusted_c, NOW).unwrap();

    // Another CA with another name.
    let other = Certificate::from_der(ca("Other CA").cert.der()).unwrap();
    assert_eq!(
        c.check_issued_by(&other, NOW),
        Err(CertError::UntrustedIssuer)
    );
    // Same name, other key: the signature decides.
    let impostor = Certificate::from_der(ca("Test CA").cert.der()).unwrap();
    assert_eq!(
        c.check_issued_by(&impostor, NOW),
        Err(CertError::UntrustedIssuer)
    );
}

#[test]
fn bad_input_is_an_error_never_a_panic() {
    assert!(Certificate::from_der(&[]).is_err());
    assert!(Certificate::from_pem_or_der(b"-----BEGIN CERTIFICATE-----\n!!\n").is_err());
    assert!(
        Certificate::from_pem_or_der(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----")
            .is_err()
    );
    assert_eq!(pem_to_der("hello"), Err(CertError::NoPem));
    assert_eq!(
        Certificate::from_der(&vec![0x30; MAX_CERT_LEN + 1]),
        Err(CertError::TooLarge)
    );
    let ca = ca("Test CA");
    let (_, der) = card(&ca, 2020, 2040);
    // Every truncation and every single-byte corruption: an error or a certificate, no panic;
    // a corrupted certificate never passes the CA check.
    let ca_c = Certificate::from_der(ca.cert.der()).unwrap();
    for n in 0..der.len() {
        assert!(Certificate::from_der(&der[..n]).is_err());
    }
    for i in 0..der.len() {
        let mut bad = der.clone();
        bad[i] ^= 0x41;
        if let Ok(c) = Certificate::from_der(&bad) {
            assert!(c.check_issued_by(&ca_c, NOW).is_err(), "byte {i}");
        }
    }
    // Pseudo-random garbage (deterministic xorshift).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..600 {
        let buf: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = Certificate::from_der(&buf);
        let mut seq = vec![0x30, 0x82, (len >> 8) as u8, len as u8];
        seq.extend_from_slice(&buf);
        let _ = Certificate::from_der(&seq);
    }
    let c = Certificate::from_der(&der).unwrap();
    for sig in [&[][..], &[0u8; 64][..], &[0xff; 500][..]] {
        assert!(
            c.verify_signature(SigMechanism::EcdsaP256Sha256, b"m", sig)
                .is_err()
        );
    }
}

#[test]
fn mechanism_names_round_trip() {
    for m in [SigMechanism::RsaPkcs1Sha256, SigMechanism::EcdsaP256Sha256] {
        assert_eq!(SigMechanism::parse(m.as_str()), Some(m));
    }
    assert_eq!(SigMechanism::parse("md5"), None);
}

#[test]
fn login_challenge_is_per_key_and_per_transaction() {
    let a = login_challenge(&[1; 32], "tx1").unwrap();
    assert_eq!(a.len(), 32);
    assert_eq!(a, login_challenge(&[1; 32], "tx1").unwrap());
    assert_ne!(a, login_challenge(&[1; 32], "tx2").unwrap());
    assert_ne!(a, login_challenge(&[2; 32], "tx1").unwrap());
}
