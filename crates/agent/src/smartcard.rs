//! Smartcards through PKCS#11 (`cryptoki`, the module loaded at run time): find the
//! registered certificate on a card, log in with the PIN, sign a challenge on the card.
//!
//! PKCS#11 calls block (a card answers in tens to hundreds of milliseconds), so callers in
//! async code run them on `spawn_blocking`. A module is initialised once per process and kept
//! (C_Initialize may be called only once per process; C_Finalize would cut off every other
//! user), and card operations are serialised: the login state of a token is shared by all
//! sessions of the process.
//!
//! The login engine's side of a smartcard login (steps, PIN prompts, posting the signature)
//! is in [`login`].

pub mod enroll;
pub mod login;

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use latchkey_crypto::x509::{Certificate, PublicKey, SigMechanism};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// OpenSC's module on Debian/Ubuntu (x86-64), used when `smartcard_module` is not set.
pub const OPENSC_MODULE: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

pub const NO_CARD: &str = "No smartcard found: insert your card";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("cannot load the PKCS#11 module {module}: {reason}")]
    Module { module: String, reason: String },
    #[error("{NO_CARD}")]
    NoCard,
    #[error("No registered certificate on the smartcard: insert the card registered for you")]
    NoCertificate,
    #[error("Several certificates on the smartcard: choose one with --id ({0})")]
    Ambiguous(String),
    #[error("The smartcard has no private key for its certificate")]
    NoKey,
    #[error("{}", wrong_pin_message(*.0))]
    WrongPin(PinTries),
    #[error(
        "Smartcard PIN locked: too many wrong PINs; ask your administrator to unblock the card"
    )]
    PinLocked,
    #[error("Smartcard certificate unusable: {0}")]
    BadCertificate(String),
    #[error("Smartcard error: {0}")]
    Pkcs11(String),
}

/// What the card says about the tries left after a wrong PIN (PKCS#11 token flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinTries {
    Unknown,
    /// `CKF_USER_PIN_COUNT_LOW`
    Low,
    /// `CKF_USER_PIN_FINAL_TRY`
    FinalTry,
}

fn wrong_pin_message(t: PinTries) -> String {
    match t {
        PinTries::Unknown => "Wrong smartcard PIN".into(),
        PinTries::Low => "Wrong smartcard PIN: few tries left before the card locks".into(),
        PinTries::FinalTry => "Wrong smartcard PIN: one try left before the card locks".into(),
    }
}

pub type Result<T> = std::result::Result<T, CardError>;

/// A certificate found on a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardCert {
    pub slot: u64,
    pub token_label: String,
    /// `CKA_ID`, shared by the certificate and its key pair.
    pub id: Vec<u8>,
    pub cert: Certificate,
    /// A key object with the same `CKA_ID` is visible without the PIN.
    pub has_visible_key: bool,
}

/// A signature made on the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardSignature {
    pub mechanism: SigMechanism,
    pub bytes: Vec<u8>,
}

fn ck(e: CkError) -> CardError {
    match e {
        CkError::Pkcs11(RvError::TokenNotPresent | RvError::DeviceRemoved, _) => CardError::NoCard,
        CkError::Pkcs11(RvError::PinLocked, _) => CardError::PinLocked,
        other => CardError::Pkcs11(other.to_string()),
    }
}

/// The module to use: the configured one, else OpenSC's when installed.
pub fn module_path(configured: Option<&Path>) -> Option<PathBuf> {
    match configured {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(OPENSC_MODULE)).filter(|p| p.exists()),
    }
}

/// A loaded module: its context and the lock that serialises card operations on it.
#[derive(Clone)]
struct Loaded {
    ctx: Pkcs11,
    lock: std::sync::Arc<Mutex<()>>,
}

fn modules() -> &'static Mutex<HashMap<PathBuf, Loaded>> {
    static M: OnceLock<Mutex<HashMap<PathBuf, Loaded>>> = OnceLock::new();
    M.get_or_init(Default::default)
}

fn load(module: &Path) -> Result<Loaded> {
    let mut map = modules()
        .lock()
        .map_err(|_| CardError::Pkcs11("lock poisoned".into()))?;
    if let Some(l) = map.get(module) {
        return Ok(l.clone());
    }
    let err = |reason: String| CardError::Module {
        module: module.display().to_string(),
        reason,
    };
    let ctx = Pkcs11::new(module).map_err(|e| err(e.to_string()))?;
    match ctx.initialize(CInitializeArgs::OsThreads) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(err(e.to_string())),
    }
    let l = Loaded {
        ctx,
        lock: Default::default(),
    };
    map.insert(module.to_path_buf(), l.clone());
    Ok(l)
}

/// The process-wide context of `module` (initialised once). Tests use it to set up tokens in
/// the same process as the agent.
pub fn context(module: &Path) -> Result<Pkcs11> {
    load(module).map(|l| l.ctx)
}

fn objects(s: &Session, template: &[Attribute]) -> Result<Vec<ObjectHandle>> {
    s.find_objects(template).map_err(ck)
}

fn attr_bytes(s: &Session, obj: ObjectHandle, t: AttributeType) -> Result<Option<Vec<u8>>> {
    let attrs = s.get_attributes(obj, &[t]).map_err(ck)?;
    Ok(attrs.into_iter().find_map(|a| match a {
        Attribute::Value(v) if t == AttributeType::Value => Some(v),
        Attribute::Id(v) if t == AttributeType::Id => Some(v),
        _ => None,
    }))
}

fn certs_in_slot(ctx: &Pkcs11, slot: Slot) -> Result<Vec<CardCert>> {
    let label = ctx
        .get_token_info(slot)
        .map(|t| t.label().trim().to_string())
        .unwrap_or_default();
    let s = ctx.open_ro_session(slot).map_err(ck)?;
    let mut out = Vec::new();
    for obj in objects(&s, &[Attribute::Class(ObjectClass::CERTIFICATE)])? {
        let Some(der) = attr_bytes(&s, obj, AttributeType::Value)? else {
            continue;
        };
        let id = attr_bytes(&s, obj, AttributeType::Id)?.unwrap_or_default();
        // A certificate the agent cannot parse (another key type, a CA cert) is skipped.
        let Ok(cert) = Certificate::from_der(&der) else {
            continue;
        };
        let has_visible_key = [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY]
            .into_iter()
            .map(|class| objects(&s, &[Attribute::Class(class), Attribute::Id(id.clone())]))
            .any(|r| r.map(|v| !v.is_empty()).unwrap_or(false));
        out.push(CardCert {
            slot: slot.id(),
            token_label: label.clone(),
            id,
            cert,
            has_visible_key,
        });
    }
    Ok(out)
}

/// Every parseable certificate on the cards present (optionally one slot).
pub fn list_certificates(module: &Path, slot: Option<u64>) -> Result<Vec<CardCert>> {
    let l = load(module)?;
    let _guard = l
        .lock
        .lock()
        .map_err(|_| CardError::Pkcs11("lock poisoned".into()))?;
    let slots = l.ctx.get_slots_with_token().map_err(ck)?;
    let mut out = Vec::new();
    for s in slots
        .into_iter()
        .filter(|s| slot.is_none_or(|n| s.id() == n))
    {
        // A slot whose token cannot be read (uninitialised, unrecognised) is not a card to use.
        match certs_in_slot(&l.ctx, s) {
            Ok(c) => out.extend(c),
            Err(CardError::Pkcs11(e)) => {
                tracing::debug!(slot = s.id(), error = %e, "skipping slot")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The first certificate on a present card whose fingerprint is one of `fingerprints`.
pub fn find_registered(module: &Path, fingerprints: &[String]) -> Result<CardCert> {
    let certs = list_certificates(module, None)?;
    if certs.is_empty() && no_token_present(module)? {
        return Err(CardError::NoCard);
    }
    certs
        .into_iter()
        .find(|c| {
            fingerprints
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&c.cert.fingerprint))
        })
        .ok_or(CardError::NoCertificate)
}

fn no_token_present(module: &Path) -> Result<bool> {
    let l = load(module)?;
    Ok(l.ctx
        .get_slots_with_initialized_token()
        .map_err(ck)?
        .is_empty())
}

/// Chooses the certificate to enroll: the one with `id` (hex CKA_ID) when given, else the
/// only one, else the only one whose key is visible on the card.
pub fn choose_for_enroll(certs: Vec<CardCert>, id: Option<&str>) -> Result<CardCert> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    if let Some(id) = id {
        let want = id.trim().to_ascii_lowercase();
        return certs
            .into_iter()
            .find(|c| hex(&c.id) == want)
            .ok_or(CardError::NoCertificate);
    }
    if certs.len() <= 1 {
        return certs.into_iter().next().ok_or(CardError::NoCard);
    }
    let with_key: Vec<&CardCert> = certs.iter().filter(|c| c.has_visible_key).collect();
    if let [one] = with_key.as_slice() {
        return Ok((*one).clone());
    }
    let ids: Vec<String> = certs
        .iter()
        .map(|c| format!("{} = {}", hex(&c.id), c.cert.subject))
        .collect();
    Err(CardError::Ambiguous(ids.join("; ")))
}

fn pin_tries(ctx: &Pkcs11, slot: Slot) -> PinTries {
    match ctx.get_token_info(slot) {
        Ok(t) if t.user_pin_final_try() => PinTries::FinalTry,
        Ok(t) if t.user_pin_count_low() => PinTries::Low,
        _ => PinTries::Unknown,
    }
}

/// Logs in to the card holding the certificate `fingerprint` with `pin` and signs
/// `challenge` with its private key: `CKM_SHA256_RSA_PKCS` for RSA, `CKM_ECDSA` over the
/// SHA-256 digest for P-256 (raw `r ‖ s`). The session is closed (logged out) afterwards.
pub fn sign_challenge(
    module: &Path,
    fingerprint: &str,
    pin: &str,
    challenge: &[u8],
) -> Result<CardSignature> {
    let card = find_registered(module, &[fingerprint.to_string()])?;
    let mechanism = SigMechanism::for_key(&card.cert.key).ok_or_else(|| {
        CardError::BadCertificate("unsupported key type (expected RSA or EC P-256)".into())
    })?;
    let l = load(module)?;
    let _guard = l
        .lock
        .lock()
        .map_err(|_| CardError::Pkcs11("lock poisoned".into()))?;
    let slot = l
        .ctx
        .get_slots_with_token()
        .map_err(ck)?
        .into_iter()
        .find(|s| s.id() == card.slot)
        .ok_or(CardError::NoCard)?;
    let info = l.ctx.get_token_info(slot).map_err(ck)?;
    if info.user_pin_locked() {
        return Err(CardError::PinLocked);
    }
    let session = l.ctx.open_ro_session(slot).map_err(ck)?;
    let secret = AuthPin::new(pin.to_string());
    match session.login(UserType::User, Some(&secret)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
            let locked = l
                .ctx
                .get_token_info(slot)
                .is_ok_and(|t| t.user_pin_locked());
            return Err(if locked {
                CardError::PinLocked
            } else {
                CardError::WrongPin(pin_tries(&l.ctx, slot))
            });
        }
        Err(e) => return Err(ck(e)),
    }
    let result = sign_logged_in(&session, &card, mechanism, challenge);
    let _ = session.logout();
    result
}

fn sign_logged_in(
    session: &Session,
    card: &CardCert,
    mechanism: SigMechanism,
    challenge: &[u8],
) -> Result<CardSignature> {
    let key = objects(
        session,
        &[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(card.id.clone()),
        ],
    )?
    .into_iter()
    .next()
    .ok_or(CardError::NoKey)?;
    let bytes = match (&card.cert.key, mechanism) {
        (PublicKey::Rsa(_), SigMechanism::RsaPkcs1Sha256) => session
            .sign(&Mechanism::Sha256RsaPkcs, key, challenge)
            .map_err(ck)?,
        (PublicKey::EcP256(_), SigMechanism::EcdsaP256Sha256) => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(challenge);
            session.sign(&Mechanism::Ecdsa, key, &digest).map_err(ck)?
        }
        _ => return Err(CardError::BadCertificate("key and mechanism differ".into())),
    };
    // A wrong key for the certificate (a card set up badly) is caught here, with a clear
    // message, rather than as a rejected signature at the server.
    card.cert
        .verify_signature(mechanism, challenge, &bytes)
        .map_err(|_| {
            CardError::BadCertificate("the card's key does not match its certificate".into())
        })?;
    Ok(CardSignature { mechanism, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_pin_messages_say_what_the_card_says() {
        assert_eq!(
            CardError::WrongPin(PinTries::Unknown).to_string(),
            "Wrong smartcard PIN"
        );
        assert_eq!(
            CardError::WrongPin(PinTries::Low).to_string(),
            "Wrong smartcard PIN: few tries left before the card locks"
        );
        assert_eq!(
            CardError::WrongPin(PinTries::FinalTry).to_string(),
            "Wrong smartcard PIN: one try left before the card locks"
        );
        assert_eq!(CardError::NoCard.to_string(), NO_CARD);
    }

    fn cert(id: u8, cn: &str, visible: bool) -> CardCert {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let der = p.self_signed(&key).unwrap().der().to_vec();
        CardCert {
            slot: 0,
            token_label: "t".into(),
            id: vec![id],
            cert: Certificate::from_der(&der).unwrap(),
            has_visible_key: visible,
        }
    }

    #[test]
    fn enrollment_picks_the_certificate_with_its_key_or_asks_for_an_id() {
        assert_eq!(choose_for_enroll(vec![], None), Err(CardError::NoCard));
        let one = choose_for_enroll(vec![cert(1, "a", false)], None).unwrap();
        assert_eq!(one.id, vec![1]);
        let two = || vec![cert(1, "a", false), cert(2, "b", true)];
        assert_eq!(choose_for_enroll(two(), None).unwrap().id, vec![2]);
        assert_eq!(choose_for_enroll(two(), Some("01")).unwrap().id, vec![1]);
        assert_eq!(
            choose_for_enroll(two(), Some("ff")),
            Err(CardError::NoCertificate)
        );
        let err =
            choose_for_enroll(vec![cert(1, "a", false), cert(2, "b", false)], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Several certificates on the smartcard: choose one with --id (01 = CN=a; 02 = CN=b)"
        );
    }

    #[test]
    fn a_missing_module_is_a_clear_error() {
        let err = list_certificates(Path::new("/nonexistent/pkcs11.so"), None).unwrap_err();
        assert!(
            matches!(&err, CardError::Module { module, .. } if module == "/nonexistent/pkcs11.so"),
            "{err:?}"
        );
        assert_eq!(
            module_path(Some(Path::new("/x.so"))),
            Some(PathBuf::from("/x.so"))
        );
    }
}
