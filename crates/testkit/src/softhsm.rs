//! SoftHSM2 tokens for smartcard tests: a token initialised in-process (C_InitToken on the
//! free slot), key pairs generated on it, and a certificate for the token's public key signed
//! by a test CA (rcgen) and stored on the token next to the key — what a real card holds.
//!
//! SoftHSM reads `SOFTHSM2_CONF` once, at C_Initialize, so one token directory serves the
//! whole test process; each [`Card`] is its own token (its own slot) in it.

use anyhow::{Context, Result, anyhow, bail};
use cryptoki::context::Pkcs11;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use latchkey_crypto::x509::Certificate;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, PublicKeyData};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

pub const PIN: &str = "1234";
pub const SO_PIN: &str = "5678";

/// Where Debian's softhsm2 package puts the module.
pub fn module() -> Result<PathBuf> {
    for p in [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ] {
        if Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    bail!("libsofthsm2.so not found: apt-get install softhsm2 (scripts/test does)")
}

static SETUP: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
/// C_InitToken on the free slot must not race with another test's.
static INIT: Mutex<()> = Mutex::new(());

/// The process's SoftHSM context, with its token directory in a temporary directory.
pub fn context() -> Result<Pkcs11> {
    let module = module()?;
    SETUP
        .get_or_init(|| {
            let root = std::env::temp_dir().join("latchkey-softhsm");
            remove_stale(&root);
            let dir = root.join(std::process::id().to_string());
            let tokens = dir.join("tokens");
            std::fs::create_dir_all(&tokens).map_err(|e| e.to_string())?;
            let conf = dir.join("softhsm2.conf");
            std::fs::write(
                &conf,
                format!(
                    "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                    tokens.display()
                ),
            )
            .map_err(|e| e.to_string())?;
            // SAFETY: set once, before the module is loaded (it reads the variable in
            // C_Initialize); nothing else in the test process reads or writes it.
            #[allow(unsafe_code)]
            unsafe {
                std::env::set_var("SOFTHSM2_CONF", &conf);
            }
            Ok(conf)
        })
        .clone()
        .map_err(anyhow::Error::msg)?;
    // The agent's process-wide context: the test and the in-process agent share it.
    latchkey_agent::smartcard::context(&module).map_err(|e| anyhow!("{e}"))
}

/// The token directory lives as long as its test process (the module keeps files open);
/// directories of processes that have ended are removed by the next run.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let alive = name
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa2048,
    EcP256,
}

/// A certificate authority for test certificates.
pub struct TestCa {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl TestCa {
    pub fn new(name: &str) -> Result<TestCa> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key)?;
        Ok(TestCa { cert, key })
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }
}

/// A token (a "card") with one key pair and its certificate.
pub struct Card {
    pub label: String,
    pub slot: Slot,
    pub kind: KeyKind,
    pub id: Vec<u8>,
    public: CardKey,
    pub cert_der: Vec<u8>,
}

/// The token's public key, in the form rcgen puts into a certificate.
struct CardKey {
    der: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
}

impl PublicKeyData for CardKey {
    fn der_bytes(&self) -> &[u8] {
        &self.der
    }
    fn algorithm(&self) -> &rcgen::SignatureAlgorithm {
        self.alg
    }
}

fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..0x80 => vec![n as u8],
        0x80..0x100 => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    let mut out = vec![0x02];
    out.extend(der_len(v.len()));
    out.extend(v);
    out
}

fn attr(s: &Session, obj: ObjectHandle, t: AttributeType) -> Result<Vec<u8>> {
    for a in s.get_attributes(obj, &[t])? {
        match a {
            Attribute::Modulus(v) | Attribute::PublicExponent(v) | Attribute::EcPoint(v) => {
                return Ok(v);
            }
            _ => {}
        }
    }
    bail!("attribute {t:?} missing")
}

/// Validity of a certificate, Unix seconds.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

impl Validity {
    /// From a day ago to a year ahead.
    pub fn current() -> Validity {
        let now = unix_now();
        Validity {
            not_before: now - 86_400,
            not_after: now + 365 * 86_400,
        }
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Card {
    /// Initialises a new token `label` (PIN [`PIN`]) and generates a key pair on it.
    pub fn new(label: &str, kind: KeyKind) -> Result<Card> {
        let ctx = context()?;
        let slot = {
            let _g = INIT.lock().map_err(|_| anyhow!("poisoned"))?;
            // Tokens are found by label below (and the process's tokens are shared by every
            // test in it): a second token with the same label would be mistaken for the first.
            let taken = ctx
                .get_slots_with_initialized_token()?
                .into_iter()
                .any(|s| {
                    ctx.get_token_info(s)
                        .map(|t| t.label().trim() == label)
                        .unwrap_or(false)
                });
            if taken {
                bail!(
                    "a SoftHSM token labelled {label:?} exists in this test process already: give each card a label of its own"
                );
            }
            let free = ctx
                .get_all_slots()?
                .into_iter()
                .find(|s| {
                    ctx.get_token_info(*s)
                        .map(|t| !t.token_initialized())
                        .unwrap_or(false)
                })
                .context("SoftHSM has no free slot")?;
            ctx.init_token(free, &AuthPin::new(SO_PIN.into()), label)?;
            // SoftHSM renumbers the slot once it holds a token: find it by label.
            let slot = ctx
                .get_slots_with_initialized_token()?
                .into_iter()
                .find(|s| {
                    ctx.get_token_info(*s)
                        .map(|t| t.label().trim() == label)
                        .unwrap_or(false)
                })
                .context("new token not found")?;
            let s = ctx.open_rw_session(slot)?;
            s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))?;
            s.init_pin(&AuthPin::new(PIN.into()))?;
            s.logout()?;
            slot
        };
        let id = vec![0x01, 0x02];
        let s = ctx.open_rw_session(slot)?;
        s.login(UserType::User, Some(&AuthPin::new(PIN.into())))?;
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Id(id.clone()),
                Attribute::Label(label.as_bytes().to_vec()),
            ]
        };
        let mut pub_t = common(false);
        pub_t.push(Attribute::Verify(true));
        let mut priv_t = common(true);
        priv_t.extend([Attribute::Sign(true), Attribute::Sensitive(true)]);
        let public = match kind {
            KeyKind::Rsa2048 => {
                pub_t.extend([
                    Attribute::ModulusBits(2048.into()),
                    Attribute::PublicExponent(vec![1, 0, 1]),
                ]);
                let (pk, _) =
                    s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &pub_t, &priv_t)?;
                let mut body = der_uint(&attr(&s, pk, AttributeType::Modulus)?);
                body.extend(der_uint(&attr(&s, pk, AttributeType::PublicExponent)?));
                let mut der = vec![0x30];
                der.extend(der_len(body.len()));
                der.extend(body);
                CardKey {
                    der,
                    alg: &rcgen::PKCS_RSA_SHA256,
                }
            }
            KeyKind::EcP256 => {
                // namedCurve prime256v1
                pub_t.push(Attribute::EcParams(vec![
                    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
                ]));
                let (pk, _) = s.generate_key_pair(&Mechanism::EccKeyPairGen, &pub_t, &priv_t)?;
                // CKA_EC_POINT is a DER OCTET STRING around the uncompressed point.
                let point = attr(&s, pk, AttributeType::EcPoint)?;
                let der = match point.as_slice() {
                    [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest.to_vec(),
                    raw if raw.len() == 65 => raw.to_vec(),
                    other => bail!("unexpected CKA_EC_POINT of {} bytes", other.len()),
                };
                CardKey {
                    der,
                    alg: &rcgen::PKCS_ECDSA_P256_SHA256,
                }
            }
        };
        s.logout()?;
        Ok(Card {
            label: label.to_string(),
            slot,
            kind,
            id,
            public,
            cert_der: Vec::new(),
        })
    }

    /// Issues a certificate for the card's key by `ca` and stores it on the card (replacing
    /// any earlier one). Returns its PEM.
    pub fn issue(&mut self, ca: &TestCa, subject: &str, v: Validity) -> Result<String> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, subject);
        p.not_before = time::OffsetDateTime::from_unix_timestamp(v.not_before)?;
        p.not_after = time::OffsetDateTime::from_unix_timestamp(v.not_after)?;
        let cert = p.signed_by(&self.public, &ca.cert, &ca.key)?;
        self.store_cert(cert.der())?;
        Ok(cert.pem())
    }

    /// Stores a DER certificate on the card under the key's CKA_ID.
    pub fn store_cert(&mut self, der: &[u8]) -> Result<()> {
        let parsed = Certificate::from_der(der).map_err(|e| anyhow!("{e}"))?;
        let ctx = context()?;
        let s = ctx.open_rw_session(self.slot)?;
        s.login(UserType::User, Some(&AuthPin::new(PIN.into())))?;
        for old in s.find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])? {
            s.destroy_object(old)?;
        }
        s.create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Id(self.id.clone()),
            Attribute::Label(self.label.as_bytes().to_vec()),
            Attribute::Subject(parsed.subject_der().to_vec()),
            Attribute::Value(der.to_vec()),
        ])?;
        s.logout()?;
        self.cert_der = der.to_vec();
        Ok(())
    }

    pub fn fingerprint(&self) -> String {
        latchkey_crypto::sha256_hex(&self.cert_der)
    }
}
