//! FIDO2 / WebAuthn verification: CTAP2 authenticator data, COSE public keys, client data,
//! assertions and registrations (attestation formats `none` and `packed`).
//!
//! Pure functions over bytes: the server verifies logins and registrations with them, and the
//! agent verifies offline assertions against cached credentials with the same code. Every
//! parser takes untrusted input: it returns an error, never panics, and bounds what it reads.
//!
//! The agent is the CTAP2 client (there is no browser): it builds the client data JSON with
//! [`client_data_json`] (origin [`ORIGIN_AGENT`]) and sends it along, so the relying party
//! recomputes `clientDataHash = SHA-256(clientDataJSON)` and checks type, challenge and origin
//! exactly as a WebAuthn relying party checks a browser's client data.

use crate::ct_eq;
use minicbor::Decoder;
use minicbor::data::Type;
use sha2::{Digest, Sha256};

/// Authenticator data flags (WebAuthn §6.1).
pub const FLAG_UP: u8 = 0x01;
pub const FLAG_UV: u8 = 0x04;
pub const FLAG_AT: u8 = 0x40;
pub const FLAG_ED: u8 = 0x80;

/// COSE algorithm identifiers (RFC 9053).
pub const ALG_ES256: i64 = -7;
pub const ALG_EDDSA: i64 = -8;

/// Origin of client data built by latchkey-agent (a CTAP2 client without a browser).
pub const ORIGIN_AGENT: &str = "latchkey:agent";
pub const TYPE_GET: &str = "webauthn.get";
pub const TYPE_CREATE: &str = "webauthn.create";

/// Largest accepted inputs: a credential id is at most 1023 bytes (CTAP2.1), and nothing a
/// well-behaved authenticator sends comes near these.
pub const MAX_CREDENTIAL_ID: usize = 1023;
const MAX_AUTH_DATA: usize = 4096;
const MAX_CLIENT_DATA: usize = 4096;
const MAX_ATTESTATION: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebauthnError {
    #[error("malformed authenticator data: {0}")]
    AuthData(String),
    #[error("malformed COSE public key: {0}")]
    CoseKey(String),
    #[error("unsupported COSE algorithm {0} (supported: ES256 -7, EdDSA -8)")]
    Algorithm(i64),
    #[error("malformed client data: {0}")]
    ClientData(String),
    #[error("client data type is {0:?}, expected {1:?}")]
    WrongType(String, &'static str),
    #[error("the challenge in the client data is not the one the server sent")]
    Challenge,
    #[error("origin {0:?} is not accepted")]
    Origin(String),
    #[error("the authenticator data is for another relying party id")]
    RpId,
    #[error("the authenticator did not confirm user presence")]
    NoUserPresence,
    #[error("user verification (PIN or biometrics) was required but not done")]
    NoUserVerification,
    #[error("the signature does not verify with the registered public key")]
    Signature,
    #[error(
        "the sign counter did not increase (stored {stored}, received {received}): possible cloned authenticator"
    )]
    Counter { stored: u32, received: u32 },
    #[error("malformed attestation object: {0}")]
    Attestation(String),
    #[error("attestation format {0:?} is not supported (supported: none, packed)")]
    AttestationFormat(String),
}

pub type Result<T> = std::result::Result<T, WebauthnError>;

/// base64url without padding (WebAuthn's encoding of challenges and credential ids).
pub fn b64url(data: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(data)
}

/// Decodes base64url, with or without padding.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    data_encoding::BASE64URL_NOPAD
        .decode(text.trim_end_matches('=').as_bytes())
        .ok()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// A credential public key in the two algorithms latchkey accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoseKey {
    /// P-256 point, uncompressed SEC1 (`04 ‖ x ‖ y`).
    Es256 {
        point: [u8; 65],
    },
    Ed25519 {
        public: [u8; 32],
    },
}

fn cose_err(e: impl std::fmt::Display) -> WebauthnError {
    WebauthnError::CoseKey(e.to_string())
}

fn bytes32(d: &mut Decoder<'_>, what: &str) -> Result<[u8; 32]> {
    let b = d.bytes().map_err(cose_err)?;
    b.try_into()
        .map_err(|_| WebauthnError::CoseKey(format!("{what} must be 32 bytes")))
}

impl CoseKey {
    pub fn alg(&self) -> i64 {
        match self {
            CoseKey::Es256 { .. } => ALG_ES256,
            CoseKey::Ed25519 { .. } => ALG_EDDSA,
        }
    }

    /// Parses one COSE_Key (RFC 9052 §7) at the start of `bytes`; returns it and the number
    /// of bytes it took (authenticator data gives no length for it).
    pub fn parse_prefix(bytes: &[u8]) -> Result<(CoseKey, usize)> {
        let mut d = Decoder::new(bytes);
        let n = d
            .map()
            .map_err(cose_err)?
            .ok_or_else(|| cose_err("indefinite-length map"))?;
        if n > 16 {
            return Err(cose_err("too many entries"));
        }
        let (mut kty, mut alg, mut crv) = (None, None, None);
        let (mut x, mut y) = (None, None);
        for _ in 0..n {
            let key = d.i64().map_err(cose_err)?;
            match key {
                1 => kty = Some(d.i64().map_err(cose_err)?),
                3 => alg = Some(d.i64().map_err(cose_err)?),
                -1 => crv = Some(d.i64().map_err(cose_err)?),
                -2 => x = Some(bytes32(&mut d, "x")?),
                -3 => y = Some(bytes32(&mut d, "y")?),
                _ => d.skip().map_err(cose_err)?,
            }
        }
        let key = match (kty, alg, crv) {
            // EC2, ES256, P-256
            (Some(2), Some(ALG_ES256), Some(1)) => {
                let (Some(x), Some(y)) = (x, y) else {
                    return Err(cose_err("EC2 key without x or y"));
                };
                let mut point = [0u8; 65];
                point[0] = 4;
                point[1..33].copy_from_slice(&x);
                point[33..].copy_from_slice(&y);
                CoseKey::Es256 { point }
            }
            // OKP, EdDSA, Ed25519
            (Some(1), Some(ALG_EDDSA), Some(6)) => CoseKey::Ed25519 {
                public: x.ok_or_else(|| cose_err("OKP key without x"))?,
            },
            (_, Some(a), _) if a != ALG_ES256 && a != ALG_EDDSA => {
                return Err(WebauthnError::Algorithm(a));
            }
            _ => return Err(cose_err("key type, algorithm and curve do not match")),
        };
        Ok((key, d.position()))
    }

    /// Parses a stored COSE key; trailing bytes are an error.
    pub fn parse(bytes: &[u8]) -> Result<CoseKey> {
        let (key, used) = Self::parse_prefix(bytes)?;
        if used != bytes.len() {
            return Err(cose_err("trailing bytes after the key"));
        }
        Ok(key)
    }

    /// The canonical CTAP2 encoding of this key.
    pub fn to_cbor(&self) -> Vec<u8> {
        type E = minicbor::encode::Error<std::convert::Infallible>;
        fn enc(k: &CoseKey) -> std::result::Result<Vec<u8>, E> {
            let mut e = minicbor::Encoder::new(Vec::new());
            match k {
                CoseKey::Es256 { point } => {
                    e.map(5)?.u8(1)?.u8(2)?.u8(3)?.i64(ALG_ES256)?;
                    e.i64(-1)?.u8(1)?;
                    e.i64(-2)?.bytes(&point[1..33])?;
                    e.i64(-3)?.bytes(&point[33..])?;
                }
                CoseKey::Ed25519 { public } => {
                    e.map(4)?.u8(1)?.u8(1)?.u8(3)?.i64(ALG_EDDSA)?;
                    e.i64(-1)?.u8(6)?;
                    e.i64(-2)?.bytes(public)?;
                }
            }
            Ok(e.into_writer())
        }
        // Writing to a Vec cannot fail.
        enc(self).unwrap_or_default()
    }

    /// Verifies `sig` over `msg`: ES256 takes an ASN.1 DER signature (as CTAP2 returns it),
    /// EdDSA a 64-byte one.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        use ring::signature::{ECDSA_P256_SHA256_ASN1, ED25519, UnparsedPublicKey};
        let ok = match self {
            CoseKey::Es256 { point } => UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                .verify(msg, sig)
                .is_ok(),
            CoseKey::Ed25519 { public } => UnparsedPublicKey::new(&ED25519, public)
                .verify(msg, sig)
                .is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(WebauthnError::Signature)
        }
    }
}

/// Attested credential data (WebAuthn §6.5.1), present at registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredential {
    pub aaguid: [u8; 16],
    pub credential_id: Vec<u8>,
    pub public_key: CoseKey,
    /// The COSE key exactly as the authenticator encoded it (what is stored).
    pub public_key_cbor: Vec<u8>,
}

/// Authenticator data (WebAuthn §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthData {
    pub rp_id_hash: [u8; 32],
    pub flags: u8,
    pub sign_count: u32,
    pub attested: Option<AttestedCredential>,
}

fn ad_err(e: impl std::fmt::Display) -> WebauthnError {
    WebauthnError::AuthData(e.to_string())
}

impl AuthData {
    pub fn parse(raw: &[u8]) -> Result<AuthData> {
        if raw.len() > MAX_AUTH_DATA {
            return Err(ad_err("too long"));
        }
        if raw.len() < 37 {
            return Err(ad_err(format!(
                "{} bytes, at least 37 are needed",
                raw.len()
            )));
        }
        let mut rp_id_hash = [0u8; 32];
        rp_id_hash.copy_from_slice(&raw[..32]);
        let flags = raw[32];
        let sign_count = u32::from_be_bytes([raw[33], raw[34], raw[35], raw[36]]);
        let mut rest = &raw[37..];
        let attested = if flags & FLAG_AT != 0 {
            if rest.len() < 18 {
                return Err(ad_err("attested credential data is truncated"));
            }
            let mut aaguid = [0u8; 16];
            aaguid.copy_from_slice(&rest[..16]);
            let len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
            rest = &rest[18..];
            if len == 0 || len > MAX_CREDENTIAL_ID || rest.len() < len {
                return Err(ad_err("credential id length is out of range"));
            }
            let credential_id = rest[..len].to_vec();
            rest = &rest[len..];
            let (public_key, used) = CoseKey::parse_prefix(rest)?;
            let public_key_cbor = rest[..used].to_vec();
            rest = &rest[used..];
            Some(AttestedCredential {
                aaguid,
                credential_id,
                public_key,
                public_key_cbor,
            })
        } else {
            None
        };
        if flags & FLAG_ED != 0 {
            let mut d = Decoder::new(rest);
            if d.datatype().map_err(ad_err)? != Type::Map {
                return Err(ad_err("extensions are not a CBOR map"));
            }
            d.skip().map_err(ad_err)?;
            rest = &rest[d.position()..];
        }
        if !rest.is_empty() {
            return Err(ad_err("trailing bytes"));
        }
        Ok(AuthData {
            rp_id_hash,
            flags,
            sign_count,
            attested,
        })
    }

    pub fn user_present(&self) -> bool {
        self.flags & FLAG_UP != 0
    }

    pub fn user_verified(&self) -> bool {
        self.flags & FLAG_UV != 0
    }
}

/// The canonical client data JSON the agent builds (WebAuthn §5.8.1 field order, so a
/// browser's `clientDataJSON` for the same values has the same shape).
pub fn client_data_json(typ: &str, challenge: &[u8], origin: &str) -> String {
    let esc = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    format!(
        "{{\"type\":{},\"challenge\":{},\"origin\":{},\"crossOrigin\":false}}",
        esc(typ),
        esc(&b64url(challenge)),
        esc(origin)
    )
}

/// The fields of client data a relying party checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientData {
    pub typ: String,
    pub challenge: Vec<u8>,
    pub origin: String,
}

/// Reads client data; refuses a ceremony run in a cross-origin frame (`crossOrigin: true`,
/// or a `topOrigin`, which only such a frame has): our pages never frame one, so another
/// site embedding ours must not get an assertion the relying party accepts.
pub fn parse_client_data(json: &[u8]) -> Result<ClientData> {
    #[derive(serde::Deserialize)]
    struct Raw {
        #[serde(rename = "type")]
        typ: String,
        challenge: String,
        origin: String,
        #[serde(rename = "crossOrigin", default)]
        cross_origin: Option<bool>,
        #[serde(rename = "topOrigin", default)]
        top_origin: Option<serde_json::Value>,
    }
    if json.len() > MAX_CLIENT_DATA {
        return Err(WebauthnError::ClientData("too long".into()));
    }
    let raw: Raw = serde_json::from_slice(json)
        .map_err(|e| WebauthnError::ClientData(format!("not the expected JSON object: {e}")))?;
    if raw.cross_origin == Some(true) || raw.top_origin.is_some() {
        return Err(WebauthnError::ClientData(
            "the ceremony ran in a cross-origin frame".into(),
        ));
    }
    let challenge = b64url_decode(&raw.challenge)
        .ok_or_else(|| WebauthnError::ClientData("challenge is not base64url".into()))?;
    Ok(ClientData {
        typ: raw.typ,
        challenge,
        origin: raw.origin,
    })
}

/// What a relying party expects of a ceremony's client data and authenticator data.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub rp_id: &'a str,
    pub challenge: &'a [u8],
    pub origins: &'a [&'a str],
    pub require_uv: bool,
}

fn check_client_data(json: &[u8], typ: &'static str, ex: &Expect<'_>) -> Result<()> {
    let cd = parse_client_data(json)?;
    if cd.typ != typ {
        return Err(WebauthnError::WrongType(cd.typ, typ));
    }
    if !ct_eq(&cd.challenge, ex.challenge) {
        return Err(WebauthnError::Challenge);
    }
    if !ex.origins.contains(&cd.origin.as_str()) {
        return Err(WebauthnError::Origin(cd.origin));
    }
    Ok(())
}

fn check_flags(ad: &AuthData, ex: &Expect<'_>) -> Result<()> {
    if !ct_eq(&ad.rp_id_hash, &sha256(ex.rp_id.as_bytes())) {
        return Err(WebauthnError::RpId);
    }
    if !ad.user_present() {
        return Err(WebauthnError::NoUserPresence);
    }
    if ex.require_uv && !ad.user_verified() {
        return Err(WebauthnError::NoUserVerification);
    }
    Ok(())
}

/// The clone rule: a counter must increase, unless the authenticator keeps no counter (both
/// the stored and the received value are zero).
pub fn counter_ok(stored: u32, received: u32) -> bool {
    (stored == 0 && received == 0) || received > stored
}

/// One assertion (authenticatorGetAssertion answer) to check against a registered credential.
#[derive(Debug, Clone, Copy)]
pub struct Assertion<'a> {
    pub authenticator_data: &'a [u8],
    pub client_data_json: &'a [u8],
    pub signature: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub sign_count: u32,
    pub user_verified: bool,
}

/// Verifies an assertion (WebAuthn §7.2 steps 11–21, minus credential lookup): client data
/// type/challenge/origin, rp id hash, UP (and UV when required), the signature over
/// `authenticatorData ‖ SHA-256(clientDataJSON)` with `public_key_cose`, and the sign counter
/// against `stored_count`.
pub fn verify_assertion(
    public_key_cose: &[u8],
    stored_count: u32,
    a: &Assertion<'_>,
    ex: &Expect<'_>,
) -> Result<VerifiedAssertion> {
    let key = CoseKey::parse(public_key_cose)?;
    check_client_data(a.client_data_json, TYPE_GET, ex)?;
    let ad = AuthData::parse(a.authenticator_data)?;
    check_flags(&ad, ex)?;
    let mut msg = a.authenticator_data.to_vec();
    msg.extend_from_slice(&sha256(a.client_data_json));
    key.verify(&msg, a.signature)?;
    if !counter_ok(stored_count, ad.sign_count) {
        return Err(WebauthnError::Counter {
            stored: stored_count,
            received: ad.sign_count,
        });
    }
    Ok(VerifiedAssertion {
        sign_count: ad.sign_count,
        user_verified: ad.user_verified(),
    })
}

/// A verified registration: what the relying party stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRegistration {
    pub credential_id: Vec<u8>,
    pub public_key_cose: Vec<u8>,
    pub alg: i64,
    pub aaguid: [u8; 16],
    pub sign_count: u32,
    pub user_verified: bool,
    /// `none`, `packed-self` (signature checked with the credential key) or `packed-x5c`
    /// (a vendor certificate chain, not evaluated: see docs/fido2.md).
    pub attestation: &'static str,
}

fn att_err(e: impl std::fmt::Display) -> WebauthnError {
    WebauthnError::Attestation(e.to_string())
}

struct AttStmt {
    alg: Option<i64>,
    sig: Option<Vec<u8>>,
    x5c: bool,
}

fn parse_att_stmt(d: &mut Decoder<'_>) -> Result<AttStmt> {
    let n = d
        .map()
        .map_err(att_err)?
        .ok_or_else(|| att_err("indefinite attStmt"))?;
    if n > 8 {
        return Err(att_err("attStmt has too many entries"));
    }
    let mut st = AttStmt {
        alg: None,
        sig: None,
        x5c: false,
    };
    for _ in 0..n {
        match d.str().map_err(att_err)? {
            "alg" => st.alg = Some(d.i64().map_err(att_err)?),
            "sig" => st.sig = Some(d.bytes().map_err(att_err)?.to_vec()),
            "x5c" => {
                st.x5c = true;
                d.skip().map_err(att_err)?;
            }
            _ => d.skip().map_err(att_err)?,
        }
    }
    Ok(st)
}

/// Verifies a registration (WebAuthn §7.1 steps 5–20 for the formats latchkey takes):
/// client data `webauthn.create`, rp id hash, UP (and UV when required), attested credential
/// data with an ES256 or EdDSA key, and the attestation statement: `none`, or `packed`
/// self-attestation verified with the new credential key. `packed` with a certificate chain
/// is accepted without evaluating the chain (latchkey does not decide trust by vendor).
pub fn verify_registration(
    attestation_object: &[u8],
    client_data_json: &[u8],
    ex: &Expect<'_>,
) -> Result<VerifiedRegistration> {
    if attestation_object.len() > MAX_ATTESTATION {
        return Err(att_err("too long"));
    }
    check_client_data(client_data_json, TYPE_CREATE, ex)?;
    let mut d = Decoder::new(attestation_object);
    let n = d
        .map()
        .map_err(att_err)?
        .ok_or_else(|| att_err("indefinite map"))?;
    if n > 8 {
        return Err(att_err("too many entries"));
    }
    let (mut fmt, mut auth_data, mut stmt) = (None, None, None);
    for _ in 0..n {
        match d.str().map_err(att_err)? {
            "fmt" => fmt = Some(d.str().map_err(att_err)?.to_string()),
            "authData" => auth_data = Some(d.bytes().map_err(att_err)?),
            "attStmt" => stmt = Some(parse_att_stmt(&mut d)?),
            _ => d.skip().map_err(att_err)?,
        }
    }
    if d.position() != attestation_object.len() {
        return Err(att_err("trailing bytes"));
    }
    let (Some(fmt), Some(raw_ad), Some(stmt)) = (fmt, auth_data, stmt) else {
        return Err(att_err("fmt, authData or attStmt is missing"));
    };
    let ad = AuthData::parse(raw_ad)?;
    check_flags(&ad, ex)?;
    let Some(cred) = ad.attested.clone() else {
        return Err(att_err("no attested credential data"));
    };
    let attestation = match fmt.as_str() {
        "none" => "none",
        "packed" => {
            let alg = stmt.alg.ok_or_else(|| att_err("packed: alg is missing"))?;
            let sig = stmt.sig.ok_or_else(|| att_err("packed: sig is missing"))?;
            if stmt.x5c {
                "packed-x5c"
            } else {
                if alg != cred.public_key.alg() {
                    return Err(att_err("packed: alg differs from the credential key's"));
                }
                let mut msg = raw_ad.to_vec();
                msg.extend_from_slice(&sha256(client_data_json));
                cred.public_key.verify(&msg, &sig)?;
                "packed-self"
            }
        }
        other => return Err(WebauthnError::AttestationFormat(other.to_string())),
    };
    Ok(VerifiedRegistration {
        alg: cred.public_key.alg(),
        credential_id: cred.credential_id,
        public_key_cose: cred.public_key_cbor,
        aaguid: cred.aaguid,
        sign_count: ad.sign_count,
        user_verified: ad.user_verified(),
        attestation,
    })
}

/// Formats an AAGUID as a UUID string.
pub fn aaguid_string(a: &[u8; 16]) -> String {
    let h = data_encoding::HEXLOWER.encode(a);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests;
