//! Smartcard certificates: parsing X.509 (DER or PEM), validity dates, the issuing CA's
//! signature, and verification of a challenge signed on the card (PKCS#11).
//!
//! Pure functions, no I/O: the server uses them at registration and at each login, the
//! agent's offline path with a cached certificate. Every malformed input is an error, never a
//! panic. Accepted keys: RSA (2048 to 8192 bits, PKCS#1 v1.5 with SHA-256) and ECDSA P-256
//! with SHA-256 — what PIV/OpenPGP/national eID cards carry for authentication.

use crate::sha256_hex;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_cert::der::{Decode, Encode};
use x509_cert::spki::ObjectIdentifier;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// Largest certificate accepted (cards hold a few KiB at most).
pub const MAX_CERT_LEN: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("not a PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoPem,
    #[error("certificate is larger than {MAX_CERT_LEN} bytes")]
    TooLarge,
    #[error("malformed certificate: {0}")]
    Malformed(String),
    #[error("unsupported public key: {0} (expected RSA 2048+ or EC P-256)")]
    UnsupportedKey(String),
    #[error("certificate expired at {0}")]
    Expired(i64),
    #[error("certificate not valid before {0}")]
    NotYetValid(i64),
    #[error("certificate was not issued by the trusted smartcard CA")]
    UntrustedIssuer,
    #[error("signature does not verify")]
    BadSignature,
}

pub type Result<T> = std::result::Result<T, CertError>;

/// The public key of a certificate, in the form `ring` verifies with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// DER `RSAPublicKey` (the SPKI bit string).
    Rsa(Vec<u8>),
    /// Uncompressed SEC1 point on P-256.
    EcP256(Vec<u8>),
    /// Uncompressed SEC1 point on P-384 (accepted only as a CA key).
    EcP384(Vec<u8>),
}

/// How the card signed: the agent's PKCS#11 mechanism, named on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigMechanism {
    /// `CKM_SHA256_RSA_PKCS`: PKCS#1 v1.5 over SHA-256 of the message.
    RsaPkcs1Sha256,
    /// `CKM_ECDSA` over SHA-256 of the message: raw `r ‖ s` (64 bytes for P-256).
    EcdsaP256Sha256,
}

impl SigMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            SigMechanism::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
            SigMechanism::EcdsaP256Sha256 => "ecdsa-p256-sha256",
        }
    }

    pub fn parse(s: &str) -> Option<SigMechanism> {
        match s {
            "rsa-pkcs1-sha256" => Some(SigMechanism::RsaPkcs1Sha256),
            "ecdsa-p256-sha256" => Some(SigMechanism::EcdsaP256Sha256),
            _ => None,
        }
    }

    /// The mechanism that fits a key.
    pub fn for_key(key: &PublicKey) -> Option<SigMechanism> {
        match key {
            PublicKey::Rsa(_) => Some(SigMechanism::RsaPkcs1Sha256),
            PublicKey::EcP256(_) => Some(SigMechanism::EcdsaP256Sha256),
            PublicKey::EcP384(_) => None,
        }
    }
}

/// A parsed certificate: what the server stores and shows, and what verification needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub der: Vec<u8>,
    /// Lowercase hex SHA-256 of `der`.
    pub fingerprint: String,
    /// RFC 4514 string of the subject.
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub key: PublicKey,
    subject_der: Vec<u8>,
    issuer_der: Vec<u8>,
    tbs_der: Vec<u8>,
    sig_alg: ObjectIdentifier,
    signature: Vec<u8>,
}

fn malformed(e: impl std::fmt::Display) -> CertError {
    CertError::Malformed(e.to_string())
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN).ok_or(CertError::NoPem)? + BEGIN.len();
    let len = pem[start..].find(END).ok_or(CertError::NoPem)?;
    let body: String = pem[start..start + len]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if body.len() > MAX_CERT_LEN * 2 {
        return Err(CertError::TooLarge);
    }
    data_encoding::BASE64
        .decode(body.as_bytes())
        .map_err(|e| CertError::Malformed(format!("PEM body is not base64: {e}")))
}

/// The PEM text of a DER certificate.
pub fn der_to_pem(der: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn unix(t: &x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_date_time().unix_duration().as_secs()).unwrap_or(i64::MAX)
}

fn public_key(spki: &x509_cert::spki::SubjectPublicKeyInfoOwned) -> Result<PublicKey> {
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| malformed("public key bit string has unused bits"))?
        .to_vec();
    if spki.algorithm.oid == RSA_ENCRYPTION {
        return Ok(PublicKey::Rsa(bits));
    }
    if spki.algorithm.oid == EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
            .ok_or_else(|| CertError::UnsupportedKey("EC key without a named curve".into()))?;
        return match curve {
            c if c == P256 => Ok(PublicKey::EcP256(bits)),
            c if c == P384 => Ok(PublicKey::EcP384(bits)),
            c => Err(CertError::UnsupportedKey(format!("EC curve {c}"))),
        };
    }
    Err(CertError::UnsupportedKey(format!(
        "algorithm {}",
        spki.algorithm.oid
    )))
}

impl Certificate {
    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Certificate> {
        if der.len() > MAX_CERT_LEN {
            return Err(CertError::TooLarge);
        }
        let c = x509_cert::Certificate::from_der(der).map_err(malformed)?;
        let tbs = &c.tbs_certificate;
        Ok(Certificate {
            der: der.to_vec(),
            fingerprint: sha256_hex(der),
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            not_before: unix(&tbs.validity.not_before),
            not_after: unix(&tbs.validity.not_after),
            key: public_key(&tbs.subject_public_key_info)?,
            subject_der: tbs.subject.to_der().map_err(malformed)?,
            issuer_der: tbs.issuer.to_der().map_err(malformed)?,
            tbs_der: tbs.to_der().map_err(malformed)?,
            sig_alg: c.signature_algorithm.oid,
            signature: c
                .signature
                .as_bytes()
                .ok_or_else(|| malformed("signature bit string has unused bits"))?
                .to_vec(),
        })
    }

    /// Parses the first certificate of a PEM text, or DER bytes.
    pub fn from_pem_or_der(data: &[u8]) -> Result<Certificate> {
        match std::str::from_utf8(data) {
            Ok(text) if text.contains("-----BEGIN") => Self::from_der(&pem_to_der(text)?),
            _ => Self::from_der(data),
        }
    }

    /// Validity dates against `now` (Unix seconds).
    pub fn check_validity(&self, now: i64) -> Result<()> {
        if now < self.not_before {
            return Err(CertError::NotYetValid(self.not_before));
        }
        if now > self.not_after {
            return Err(CertError::Expired(self.not_after));
        }
        Ok(())
    }

    /// Was this certificate issued by `ca`: issuer name equal to the CA's subject and the
    /// certificate's signature verifying with the CA's key. The CA must be valid at `now`.
    pub fn check_issued_by(&self, ca: &Certificate, now: i64) -> Result<()> {
        ca.check_validity(now)
            .map_err(|_| CertError::UntrustedIssuer)?;
        if !crate::ct_eq(&self.issuer_der, &ca.subject_der) {
            return Err(CertError::UntrustedIssuer);
        }
        let alg: &'static dyn VerificationAlgorithm = match (&ca.key, self.sig_alg) {
            (PublicKey::Rsa(_), o) if o == SHA256_WITH_RSA => {
                &signature::RSA_PKCS1_2048_8192_SHA256
            }
            (PublicKey::Rsa(_), o) if o == SHA384_WITH_RSA => {
                &signature::RSA_PKCS1_2048_8192_SHA384
            }
            (PublicKey::Rsa(_), o) if o == SHA512_WITH_RSA => {
                &signature::RSA_PKCS1_2048_8192_SHA512
            }
            (PublicKey::EcP256(_), o) if o == ECDSA_SHA256 => &signature::ECDSA_P256_SHA256_ASN1,
            (PublicKey::EcP384(_), o) if o == ECDSA_SHA384 => &signature::ECDSA_P384_SHA384_ASN1,
            (PublicKey::EcP384(_), o) if o == ECDSA_SHA256 => &signature::ECDSA_P384_SHA256_ASN1,
            _ => return Err(CertError::UntrustedIssuer),
        };
        UnparsedPublicKey::new(alg, ca.key_bytes())
            .verify(&self.tbs_der, &self.signature)
            .map_err(|_| CertError::UntrustedIssuer)
    }

    /// DER of the subject name (what PKCS#11 stores as `CKA_SUBJECT`).
    pub fn subject_der(&self) -> &[u8] {
        &self.subject_der
    }

    fn key_bytes(&self) -> &[u8] {
        match &self.key {
            PublicKey::Rsa(b) | PublicKey::EcP256(b) | PublicKey::EcP384(b) => b,
        }
    }

    /// Verifies a card's signature of `message` with this certificate's key. The mechanism
    /// must fit the key type (an RSA signature is never checked against an EC key).
    pub fn verify_signature(
        &self,
        mechanism: SigMechanism,
        message: &[u8],
        sig: &[u8],
    ) -> Result<()> {
        let alg: &'static dyn VerificationAlgorithm = match (&self.key, mechanism) {
            (PublicKey::Rsa(_), SigMechanism::RsaPkcs1Sha256) => {
                &signature::RSA_PKCS1_2048_8192_SHA256
            }
            // PKCS#11 CKM_ECDSA returns the fixed-width r ‖ s (PKCS#11 v2.40 §2.3.1).
            (PublicKey::EcP256(_), SigMechanism::EcdsaP256Sha256) => {
                &signature::ECDSA_P256_SHA256_FIXED
            }
            _ => return Err(CertError::BadSignature),
        };
        UnparsedPublicKey::new(alg, self.key_bytes())
            .verify(message, sig)
            .map_err(|_| CertError::BadSignature)
    }
}

/// The login challenge of a transaction: `HMAC-SHA256(HMAC-SHA256(key, label), tx_id)`.
/// Unpredictable without the server's master key and unique per transaction, so the server
/// keeps no per-login state for it and every instance sharing the key derives the same one.
pub fn login_challenge(key: &[u8], tx_id: &str) -> crate::Result<Vec<u8>> {
    use hmac::{Hmac, Mac};
    type H = Hmac<sha2::Sha256>;
    let bad = |_| crate::Error::Key("HMAC key".into());
    let mut m = <H as Mac>::new_from_slice(key).map_err(bad)?;
    m.update(b"latchkey smartcard login challenge v1");
    let sub = m.finalize().into_bytes();
    let mut m = <H as Mac>::new_from_slice(&sub).map_err(bad)?;
    m.update(tx_id.as_bytes());
    Ok(m.finalize().into_bytes().to_vec())
}

#[cfg(test)]
mod tests;
