//! rustls client configuration (ring provider only): CA-file and pin verifiers, client
//! certificates.

use rustls::DigitallySignedStruct;
use rustls::SignatureScheme;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use crate::config::{Credential, Trust};
use crate::error::{Error, Result};

/// `sha256:HEX` (lowercase) of a certificate's DER: the pin format used by `--pin`, the join
/// answer's `tls_fingerprint` and the server's log line at start-up.
pub fn cert_sha256_pin(der: &[u8]) -> String {
    format!(
        "sha256:{}",
        data_encoding::HEXLOWER.encode(&Sha256::digest(der))
    )
}

/// Parses `sha256:HEX` (hex in either case, optional `:` between bytes).
pub(crate) fn parse_pin(pin: &str) -> Result<[u8; 32]> {
    let bad = || {
        Error::Config(format!(
            "invalid pin {pin:?}: expected sha256: followed by 64 hex digits"
        ))
    };
    let hex = pin
        .strip_prefix("sha256:")
        .or_else(|| pin.strip_prefix("SHA256:"))
        .ok_or_else(bad)?;
    let hex: String = hex
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let bytes = data_encoding::HEXLOWER
        .decode(hex.as_bytes())
        .map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// A pin in its canonical form, `sha256:` and 64 lowercase hex digits (input may use upper
/// case and `:` between bytes).
pub fn normalize_pin(pin: &str) -> Result<String> {
    parse_pin(pin).map(|b| format!("sha256:{}", data_encoding::HEXLOWER.encode(&b)))
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls client configuration for `trust` and (when it is a client certificate)
/// `credential`. Only HTTP/1.1 is offered by ALPN, as that is all this client speaks. Public
/// for the load generator's own HTTP/1.1 connections (same trust, same pin check).
pub fn client_config(trust: &Trust, credential: &Credential) -> Result<Arc<rustls::ClientConfig>> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::WebPkiCaFile(path) => Arc::new(CaFileVerifier::new(path, provider.clone())?),
        Trust::Pin(pin) => Arc::new(PinVerifier {
            pin: parse_pin(pin)?,
            algs: provider.signature_verification_algorithms,
        }),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS set-up: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match credential {
        Credential::ClientCert { cert_pem, key_pem } => {
            let certs = load_certs(cert_pem)?;
            let key = load_key(key_pem)?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                Error::Config(format!(
                    "client certificate {} does not go with key {}: {e}",
                    cert_pem.display(),
                    key_pem.display()
                ))
            })?
        }
        Credential::None | Credential::Bearer(_) => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let file = File::open(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::Config(format!("cannot parse {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "no PEM certificate found in {}",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let file = File::open(path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| Error::Config(format!("cannot parse {}: {e}", path.display())))?
        .ok_or_else(|| Error::Config(format!("no PEM private key found in {}", path.display())))
}

/// The server certificate's hash did not match the configured pin.
#[derive(Debug)]
pub(crate) struct PinMismatch {
    pub expected: String,
    pub presented: String,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server certificate pin did not match: expected {}, server presented {}",
            self.expected, self.presented
        )
    }
}

impl std::error::Error for PinMismatch {}

/// Accepts exactly the certificate whose SHA-256 is the pin. Names and dates are not checked:
/// the pin *is* the identity (like SSH host keys). The handshake signature is still verified
/// against that certificate's key, so only the holder of its private key passes.
#[derive(Debug)]
struct PinVerifier {
    pin: [u8; 32],
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch {
                    expected: format!("sha256:{}", data_encoding::HEXLOWER.encode(&self.pin)),
                    presented: cert_sha256_pin(end_entity.as_ref()),
                }))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// webpki chain verification against the CA file, plus one fallback: a server certificate
/// that is byte-for-byte one of the certificates in the file is accepted even if webpki
/// refuses it (a self-signed end-entity certificate is not a valid trust anchor for itself in
/// every webpki version). Putting the exact certificate in the file is an explicit pin.
#[derive(Debug)]
struct CaFileVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    exact: Vec<CertificateDer<'static>>,
    algs: WebPkiSupportedAlgorithms,
}

impl CaFileVerifier {
    fn new(path: &Path, provider: Arc<CryptoProvider>) -> Result<Self> {
        let certs = load_certs(path)?;
        let mut roots = rustls::RootCertStore::empty();
        // Certificates webpki cannot use as anchors are still kept for the exact match.
        let (_added, _ignored) = roots.add_parsable_certificates(certs.iter().cloned());
        let algs = provider.signature_verification_algorithms;
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| Error::Config(format!("CA file {}: {e}", path.display())))?,
            )
        };
        Ok(CaFileVerifier {
            webpki,
            exact: certs,
            algs,
        })
    }
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let refused = match &self.webpki {
            Some(v) => {
                match v.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                ) {
                    Ok(ok) => return Ok(ok),
                    Err(e) => e,
                }
            }
            None => rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        };
        if self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            tracing::debug!(
                "server certificate accepted as an exact match of the CA file (webpki said: {refused})"
            );
            return Ok(ServerCertVerified::assertion());
        }
        Err(refused)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Turns a TLS failure into one sentence, naming a pin mismatch plainly.
pub(crate) fn describe_tls_error(e: &rustls::Error) -> String {
    if let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) = e
        && let Some(pin) = other.0.downcast_ref::<PinMismatch>()
    {
        return pin.to_string();
    }
    e.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pin_is_lowercase_sha256_hex_of_der() {
        // SHA-256 of the empty string.
        assert_eq!(
            cert_sha256_pin(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn pin_parsing_accepts_case_and_colons_and_refuses_garbage() {
        let pin = cert_sha256_pin(b"x");
        let want = parse_pin(&pin).unwrap();
        assert_eq!(
            parse_pin(&pin.to_uppercase().replacen("SHA256", "sha256", 1)).unwrap(),
            want
        );
        let hex = &pin["sha256:".len()..];
        let colons: Vec<&str> = (0..32).map(|i| &hex[2 * i..2 * i + 2]).collect();
        assert_eq!(
            parse_pin(&format!("sha256:{}", colons.join(":"))).unwrap(),
            want
        );
        assert!(parse_pin(hex).is_err(), "prefix is required");
        assert!(parse_pin("sha256:abcd").is_err(), "too short");
        assert!(parse_pin(&format!("sha256:{}zz", &hex[2..])).is_err());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod verifier_tests {
    use super::*;

    fn write_pem(dir: &std::path::Path, pem: &str) -> std::path::PathBuf {
        let p = dir.join("ca.pem");
        std::fs::write(&p, pem).unwrap();
        p
    }

    fn verify(
        v: &CaFileVerifier,
        der: &CertificateDer<'_>,
    ) -> std::result::Result<(), rustls::Error> {
        let name = ServerName::try_from("localhost").unwrap();
        v.verify_server_cert(der, &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn self_signed_end_entity_certificate_verifies_through_webpki() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let v = CaFileVerifier::new(&write_pem(dir.path(), &ck.cert.pem()), provider()).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let webpki = v.webpki.as_ref().unwrap();
        assert!(
            webpki
                .verify_server_cert(ck.cert.der(), &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        assert!(verify(&v, ck.cert.der()).is_ok());
    }

    #[test]
    fn self_signed_ca_flagged_certificate_is_accepted_by_exact_match_only() {
        // `openssl req -x509` style: basicConstraints CA:TRUE, which webpki refuses as an
        // end-entity certificate.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let v = CaFileVerifier::new(&write_pem(dir.path(), &cert.pem()), provider()).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let webpki = v.webpki.as_ref().unwrap();
        assert!(
            webpki
                .verify_server_cert(cert.der(), &[], &name, &[], UnixTime::now())
                .is_err(),
            "webpki refuses a CA certificate as end entity"
        );
        assert!(verify(&v, cert.der()).is_ok(), "exact DER match accepted");

        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        assert!(
            verify(&v, other.cert.der()).is_err(),
            "another certificate is refused"
        );
    }
}
