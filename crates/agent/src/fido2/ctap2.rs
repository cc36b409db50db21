//! CTAP2 commands over a CTAPHID channel (CTAP 2.1 §6): authenticatorGetInfo,
//! authenticatorMakeCredential, authenticatorGetAssertion and authenticatorClientPIN
//! (getRetries, getKeyAgreement, getPinToken with PIN protocol 1). Requests are canonical
//! CBOR (integer keys ascending; text keys shorter first, then bytewise).

use super::ctaphid::{CAPABILITY_CBOR, CMD_CBOR, Channel};
use super::hid::HidDevice;
use super::{Fido2Error, pin};
use minicbor::{Decoder, Encoder};
use std::convert::Infallible;
use std::time::Instant;
use zeroize::Zeroizing;

pub const MAKE_CREDENTIAL: u8 = 0x01;
pub const GET_ASSERTION: u8 = 0x02;
pub const GET_INFO: u8 = 0x04;
pub const CLIENT_PIN: u8 = 0x06;

pub const PIN_GET_RETRIES: u64 = 1;
pub const PIN_GET_KEY_AGREEMENT: u64 = 2;
pub const PIN_GET_PIN_TOKEN: u64 = 5;

/// CTAP2 status codes (CTAP 2.1 §8.2) that get their own message.
pub mod status {
    pub const OK: u8 = 0x00;
    pub const CREDENTIAL_EXCLUDED: u8 = 0x19;
    pub const UNSUPPORTED_ALGORITHM: u8 = 0x26;
    pub const OPERATION_DENIED: u8 = 0x27;
    pub const UNSUPPORTED_OPTION: u8 = 0x2B;
    pub const KEEPALIVE_CANCEL: u8 = 0x2D;
    pub const NO_CREDENTIALS: u8 = 0x2E;
    pub const USER_ACTION_TIMEOUT: u8 = 0x2F;
    pub const PIN_INVALID: u8 = 0x31;
    pub const PIN_BLOCKED: u8 = 0x32;
    pub const PIN_AUTH_INVALID: u8 = 0x33;
    pub const PIN_AUTH_BLOCKED: u8 = 0x34;
    pub const PIN_NOT_SET: u8 = 0x35;
    pub const PIN_REQUIRED: u8 = 0x36;
}

type EncErr = minicbor::encode::Error<Infallible>;

fn enc_err(e: EncErr) -> Fido2Error {
    Fido2Error::Protocol(format!("CBOR encoding: {e}"))
}

fn dec_err(e: minicbor::decode::Error) -> Fido2Error {
    Fido2Error::Protocol(format!("malformed CTAP2 answer: {e}"))
}

/// Calls `f` for each entry of a definite-length map with integer keys; unknown keys are
/// skipped by `f` returning false.
fn int_map<'b>(
    d: &mut Decoder<'b>,
    mut f: impl FnMut(i64, &mut Decoder<'b>) -> Result<bool, Fido2Error>,
) -> Result<(), Fido2Error> {
    let n = d
        .map()
        .map_err(dec_err)?
        .ok_or_else(|| Fido2Error::Protocol("indefinite-length map".into()))?;
    for _ in 0..n {
        let k = d.i64().map_err(dec_err)?;
        if !f(k, d)? {
            d.skip().map_err(dec_err)?;
        }
    }
    Ok(())
}

fn text_map<'b>(
    d: &mut Decoder<'b>,
    mut f: impl FnMut(&'b str, &mut Decoder<'b>) -> Result<bool, Fido2Error>,
) -> Result<(), Fido2Error> {
    let n = d
        .map()
        .map_err(dec_err)?
        .ok_or_else(|| Fido2Error::Protocol("indefinite-length map".into()))?;
    for _ in 0..n {
        let k = d.str().map_err(dec_err)?;
        if !f(k, d)? {
            d.skip().map_err(dec_err)?;
        }
    }
    Ok(())
}

/// What authenticatorGetInfo says that the agent uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    pub versions: Vec<String>,
    pub aaguid: Vec<u8>,
    /// `clientPin`: Some(true) a PIN is set, Some(false) supported but not set.
    pub client_pin: Option<bool>,
    /// `uv`: built-in user verification (fingerprint) configured.
    pub uv: Option<bool>,
    pub pin_protocols: Vec<u64>,
}

pub fn parse_info(body: &[u8]) -> Result<Info, Fido2Error> {
    let mut info = Info::default();
    let mut d = Decoder::new(body);
    int_map(&mut d, |k, d| {
        match k {
            1 => {
                let n = d.array().map_err(dec_err)?.unwrap_or(0);
                for _ in 0..n.min(32) {
                    info.versions.push(d.str().map_err(dec_err)?.to_string());
                }
                if n > 32 {
                    return Err(Fido2Error::Protocol("too many versions".into()));
                }
            }
            3 => info.aaguid = d.bytes().map_err(dec_err)?.to_vec(),
            4 => text_map(d, |name, d| {
                match name {
                    "clientPin" => info.client_pin = Some(d.bool().map_err(dec_err)?),
                    "uv" => info.uv = Some(d.bool().map_err(dec_err)?),
                    _ => return Ok(false),
                }
                Ok(true)
            })?,
            6 => {
                let n = d.array().map_err(dec_err)?.unwrap_or(0);
                if n > 16 {
                    return Err(Fido2Error::Protocol("too many PIN protocols".into()));
                }
                for _ in 0..n {
                    info.pin_protocols.push(d.u64().map_err(dec_err)?);
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(info)
}

/// authenticatorMakeCredential parameters.
#[derive(Debug, Clone)]
pub struct MakeCredential<'a> {
    pub client_data_hash: &'a [u8; 32],
    pub rp_id: &'a str,
    pub rp_name: &'a str,
    pub user_id: &'a [u8],
    pub user_name: &'a str,
    pub user_display_name: &'a str,
    pub algorithms: &'a [i64],
    pub exclude: &'a [Vec<u8>],
    /// Built-in UV requested (`options.uv`), when no PIN is used.
    pub uv: bool,
}

fn descriptor(e: &mut Encoder<Vec<u8>>, id: &[u8]) -> Result<(), EncErr> {
    e.map(2)?
        .str("id")?
        .bytes(id)?
        .str("type")?
        .str("public-key")?;
    Ok(())
}

pub fn encode_make_credential(
    m: &MakeCredential<'_>,
    pin_auth: Option<&[u8; 16]>,
) -> Result<Vec<u8>, Fido2Error> {
    let f = || -> Result<Vec<u8>, EncErr> {
        let mut e = Encoder::new(vec![MAKE_CREDENTIAL]);
        let mut n = 4;
        if !m.exclude.is_empty() {
            n += 1;
        }
        if m.uv {
            n += 1;
        }
        if pin_auth.is_some() {
            n += 2;
        }
        e.map(n)?;
        e.u8(1)?.bytes(m.client_data_hash)?;
        e.u8(2)?
            .map(2)?
            .str("id")?
            .str(m.rp_id)?
            .str("name")?
            .str(m.rp_name)?;
        e.u8(3)?.map(3)?;
        e.str("id")?.bytes(m.user_id)?;
        e.str("name")?.str(m.user_name)?;
        e.str("displayName")?.str(m.user_display_name)?;
        e.u8(4)?.array(m.algorithms.len() as u64)?;
        for alg in m.algorithms {
            e.map(2)?
                .str("alg")?
                .i64(*alg)?
                .str("type")?
                .str("public-key")?;
        }
        if !m.exclude.is_empty() {
            e.u8(5)?.array(m.exclude.len() as u64)?;
            for id in m.exclude {
                descriptor(&mut e, id)?;
            }
        }
        if m.uv {
            e.u8(7)?.map(1)?.str("uv")?.bool(true)?;
        }
        if let Some(p) = pin_auth {
            e.u8(8)?.bytes(p)?;
            e.u8(9)?.u64(pin::PROTOCOL_1)?;
        }
        Ok(e.into_writer())
    };
    f().map_err(enc_err)
}

/// Turns a makeCredential answer ({1: fmt, 2: authData, 3: attStmt}) into a WebAuthn
/// attestation object ({"fmt", "attStmt", "authData"}), copying attStmt as it came.
pub fn attestation_object(body: &[u8]) -> Result<Vec<u8>, Fido2Error> {
    let mut d = Decoder::new(body);
    let (mut fmt, mut ad, mut stmt) = (None, None, None);
    int_map(&mut d, |k, d| {
        match k {
            1 => fmt = Some(d.str().map_err(dec_err)?),
            2 => ad = Some(d.bytes().map_err(dec_err)?),
            3 => {
                let start = d.position();
                d.skip().map_err(dec_err)?;
                stmt = Some(&body[start..d.position()]);
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let (Some(fmt), Some(ad), Some(stmt)) = (fmt, ad, stmt) else {
        return Err(Fido2Error::Protocol(
            "makeCredential answer lacks fmt, authData or attStmt".into(),
        ));
    };
    let f = || -> Result<Vec<u8>, EncErr> {
        let mut e = Encoder::new(Vec::new());
        e.map(3)?.str("fmt")?.str(fmt)?.str("attStmt")?;
        e.writer_mut().extend_from_slice(stmt);
        e.str("authData")?.bytes(ad)?;
        Ok(e.into_writer())
    };
    f().map_err(enc_err)
}

/// authenticatorGetAssertion parameters.
#[derive(Debug, Clone)]
pub struct GetAssertion<'a> {
    pub rp_id: &'a str,
    pub client_data_hash: &'a [u8; 32],
    pub allow: &'a [Vec<u8>],
    /// Built-in UV requested (`options.uv`), when no PIN is used.
    pub uv: bool,
}

pub fn encode_get_assertion(
    g: &GetAssertion<'_>,
    pin_auth: Option<&[u8; 16]>,
) -> Result<Vec<u8>, Fido2Error> {
    let f = || -> Result<Vec<u8>, EncErr> {
        let mut e = Encoder::new(vec![GET_ASSERTION]);
        let mut n = 3;
        if pin_auth.is_some() {
            n += 2;
        }
        e.map(n)?;
        e.u8(1)?.str(g.rp_id)?;
        e.u8(2)?.bytes(g.client_data_hash)?;
        e.u8(3)?.array(g.allow.len() as u64)?;
        for id in g.allow {
            descriptor(&mut e, id)?;
        }
        e.u8(5)?;
        if g.uv {
            e.map(2)?.str("up")?.bool(true)?.str("uv")?.bool(true)?;
        } else {
            e.map(1)?.str("up")?.bool(true)?;
        }
        if let Some(p) = pin_auth {
            e.u8(6)?.bytes(p)?;
            e.u8(7)?.u64(pin::PROTOCOL_1)?;
        }
        Ok(e.into_writer())
    };
    f().map_err(enc_err)
}

/// A getAssertion answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionResponse {
    pub credential_id: Vec<u8>,
    pub auth_data: Vec<u8>,
    pub signature: Vec<u8>,
}

pub fn parse_assertion(body: &[u8], allow: &[Vec<u8>]) -> Result<AssertionResponse, Fido2Error> {
    let mut d = Decoder::new(body);
    let (mut cred, mut ad, mut sig) = (None, None, None);
    int_map(&mut d, |k, d| {
        match k {
            1 => text_map(d, |name, d| {
                if name == "id" {
                    cred = Some(d.bytes().map_err(dec_err)?.to_vec());
                    return Ok(true);
                }
                Ok(false)
            })?,
            2 => ad = Some(d.bytes().map_err(dec_err)?.to_vec()),
            3 => sig = Some(d.bytes().map_err(dec_err)?.to_vec()),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    // With a one-entry allow list the key may leave the credential out (CTAP 2.1 §6.2.2).
    let credential_id = match (cred, allow) {
        (Some(c), _) => c,
        (None, [only]) => only.clone(),
        (None, _) => {
            return Err(Fido2Error::Protocol(
                "getAssertion answer names no credential".into(),
            ));
        }
    };
    let (Some(auth_data), Some(signature)) = (ad, sig) else {
        return Err(Fido2Error::Protocol(
            "getAssertion answer lacks authData or signature".into(),
        ));
    };
    Ok(AssertionResponse {
        credential_id,
        auth_data,
        signature,
    })
}

/// Encodes a P-256 key-agreement point as a COSE key (alg -25).
pub fn encode_agreement_key(e: &mut Encoder<Vec<u8>>, point: &[u8; 65]) -> Result<(), EncErr> {
    e.map(5)?
        .u8(1)?
        .u8(2)?
        .u8(3)?
        .i64(pin::ALG_ECDH_ES_HKDF_256)?;
    e.i64(-1)?.u8(1)?;
    e.i64(-2)?.bytes(&point[1..33])?;
    e.i64(-3)?.bytes(&point[33..65])?;
    Ok(())
}

/// Reads a P-256 COSE key (any alg) as an uncompressed point.
pub fn decode_agreement_key(d: &mut Decoder<'_>) -> Result<[u8; 65], Fido2Error> {
    let (mut x, mut y) = (None, None);
    int_map(d, |k, d| {
        match k {
            -2 => x = Some(d.bytes().map_err(dec_err)?),
            -3 => y = Some(d.bytes().map_err(dec_err)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    match (x, y) {
        (Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
            let mut p = [0u8; 65];
            p[0] = 4;
            p[1..33].copy_from_slice(x);
            p[33..].copy_from_slice(y);
            Ok(p)
        }
        _ => Err(Fido2Error::Protocol(
            "key-agreement key is not a P-256 point".into(),
        )),
    }
}

fn encode_client_pin(
    sub: u64,
    key: Option<&[u8; 65]>,
    pin_hash_enc: Option<&[u8]>,
) -> Result<Vec<u8>, Fido2Error> {
    let f = || -> Result<Vec<u8>, EncErr> {
        let mut e = Encoder::new(vec![CLIENT_PIN]);
        let n = 2 + u64::from(key.is_some()) + u64::from(pin_hash_enc.is_some());
        e.map(n)?;
        e.u8(1)?.u64(pin::PROTOCOL_1)?;
        e.u8(2)?.u64(sub)?;
        if let Some(k) = key {
            e.u8(3)?;
            encode_agreement_key(&mut e, k)?;
        }
        if let Some(p) = pin_hash_enc {
            e.u8(6)?.bytes(p)?;
        }
        Ok(e.into_writer())
    };
    f().map_err(enc_err)
}

/// An authenticator reached over CTAPHID.
pub struct Authenticator {
    ch: Channel,
}

impl Authenticator {
    pub fn open(dev: Box<dyn HidDevice>) -> Result<Authenticator, Fido2Error> {
        let ch = Channel::open(dev)?;
        if ch.capabilities & CAPABILITY_CBOR == 0 {
            return Err(Fido2Error::NotCtap2(ch.device_name()));
        }
        Ok(Authenticator { ch })
    }

    pub fn device_name(&self) -> String {
        self.ch.device_name()
    }

    /// Sends a CTAP2 request (command byte + CBOR) and returns the CBOR body of a success.
    fn call(
        &mut self,
        request: &[u8],
        deadline: Instant,
        on_touch: &mut dyn FnMut(),
    ) -> Result<Vec<u8>, Fido2Error> {
        let mut answer = self.ch.transact(CMD_CBOR, request, deadline, on_touch)?;
        let Some(&code) = answer.first() else {
            return Err(Fido2Error::Protocol("empty CTAP2 answer".into()));
        };
        if code != status::OK {
            return Err(Fido2Error::Status(code));
        }
        answer.remove(0);
        Ok(answer)
    }

    pub fn get_info(&mut self, deadline: Instant) -> Result<Info, Fido2Error> {
        let body = self.call(&[GET_INFO], deadline, &mut || {})?;
        parse_info(&body)
    }

    pub fn pin_retries(&mut self, deadline: Instant) -> Result<Option<u64>, Fido2Error> {
        let req = encode_client_pin(PIN_GET_RETRIES, None, None)?;
        let body = self.call(&req, deadline, &mut || {})?;
        let mut retries = None;
        int_map(&mut Decoder::new(&body), |k, d| {
            if k == 3 {
                retries = Some(d.u64().map_err(dec_err)?);
                return Ok(true);
            }
            Ok(false)
        })?;
        Ok(retries)
    }

    /// getPinToken (protocol 1): the token that authorises one operation.
    pub fn pin_token(
        &mut self,
        pin_text: &str,
        deadline: Instant,
    ) -> Result<Zeroizing<Vec<u8>>, Fido2Error> {
        let req = encode_client_pin(PIN_GET_KEY_AGREEMENT, None, None)?;
        let body = self.call(&req, deadline, &mut || {})?;
        let mut peer = None;
        int_map(&mut Decoder::new(&body), |k, d| {
            if k == 1 {
                peer = Some(decode_agreement_key(d)?);
                return Ok(true);
            }
            Ok(false)
        })?;
        let peer =
            peer.ok_or_else(|| Fido2Error::Protocol("no key-agreement key in the answer".into()))?;
        let (mine, private) = pin::ephemeral()?;
        let shared = pin::shared_secret(private, &peer)?;
        let hash_enc = pin::encrypt(&shared, &pin::pin_hash(pin_text)[..])?;
        let req = encode_client_pin(PIN_GET_PIN_TOKEN, Some(&mine), Some(&hash_enc))?;
        let body = match self.call(&req, deadline, &mut || {}) {
            Ok(b) => b,
            Err(Fido2Error::Status(status::PIN_INVALID)) => {
                let retries = self.pin_retries(deadline).ok().flatten();
                return Err(Fido2Error::WrongPin { retries });
            }
            Err(e) => return Err(e),
        };
        let mut token_enc = None;
        int_map(&mut Decoder::new(&body), |k, d| {
            if k == 2 {
                token_enc = Some(d.bytes().map_err(dec_err)?.to_vec());
                return Ok(true);
            }
            Ok(false)
        })?;
        let token_enc =
            token_enc.ok_or_else(|| Fido2Error::Protocol("no PIN token in the answer".into()))?;
        pin::decrypt(&shared, &token_enc)
    }

    pub fn make_credential(
        &mut self,
        m: &MakeCredential<'_>,
        pin_token: Option<&[u8]>,
        deadline: Instant,
        on_touch: &mut dyn FnMut(),
    ) -> Result<Vec<u8>, Fido2Error> {
        let auth = pin_token
            .map(|t| pin::auth_param(t, m.client_data_hash))
            .transpose()?;
        let req = encode_make_credential(m, auth.as_ref())?;
        let body = self.call(&req, deadline, on_touch)?;
        attestation_object(&body)
    }

    pub fn get_assertion(
        &mut self,
        g: &GetAssertion<'_>,
        pin_token: Option<&[u8]>,
        deadline: Instant,
        on_touch: &mut dyn FnMut(),
    ) -> Result<AssertionResponse, Fido2Error> {
        let auth = pin_token
            .map(|t| pin::auth_param(t, g.client_data_hash))
            .transpose()?;
        let req = encode_get_assertion(g, auth.as_ref())?;
        let body = self.call(&req, deadline, on_touch)?;
        parse_assertion(&body, g.allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_info_answer_parses_and_junk_is_an_error() {
        // {1: ["FIDO_2_0"], 3: h'00..', 4: {"clientPin": true, "up": true}, 6: [1]}
        let mut e = Encoder::new(Vec::new());
        e.map(4).unwrap();
        e.u8(1).unwrap().array(1).unwrap().str("FIDO_2_0").unwrap();
        e.u8(3).unwrap().bytes(&[0u8; 16]).unwrap();
        e.u8(4).unwrap().map(2).unwrap();
        e.str("clientPin").unwrap().bool(true).unwrap();
        e.str("up").unwrap().bool(true).unwrap();
        e.u8(6).unwrap().array(1).unwrap().u8(1).unwrap();
        let info = parse_info(&e.into_writer()).unwrap();
        assert_eq!(info.versions, vec!["FIDO_2_0".to_string()]);
        assert_eq!(info.client_pin, Some(true));
        assert_eq!(info.uv, None);
        assert_eq!(info.pin_protocols, vec![1]);
        for junk in [&[][..], &[0xa1], &[0xa1, 0x01], &[0xbf, 0xff], &[0x9f; 50]] {
            assert!(parse_info(junk).is_err());
        }
    }

    #[test]
    fn assertion_answer_without_credential_uses_the_single_allowed_one() {
        let mut e = Encoder::new(Vec::new());
        e.map(2).unwrap();
        e.u8(2).unwrap().bytes(b"ad").unwrap();
        e.u8(3).unwrap().bytes(b"sig").unwrap();
        let body = e.into_writer();
        let a = parse_assertion(&body, &[b"only".to_vec()]).unwrap();
        assert_eq!(a.credential_id, b"only");
        assert!(parse_assertion(&body, &[b"a".to_vec(), b"b".to_vec()]).is_err());
        for n in 0..body.len() {
            assert!(parse_assertion(&body[..n], &[b"only".to_vec()]).is_err());
        }
    }

    #[test]
    fn attestation_object_keeps_the_statement_bytes() {
        let mut e = Encoder::new(Vec::new());
        e.map(3).unwrap();
        e.u8(1).unwrap().str("packed").unwrap();
        e.u8(2).unwrap().bytes(b"authdata").unwrap();
        e.u8(3).unwrap().map(2).unwrap();
        e.str("alg").unwrap().i64(-7).unwrap();
        e.str("sig").unwrap().bytes(b"s").unwrap();
        let att = attestation_object(&e.into_writer()).unwrap();
        let mut d = Decoder::new(&att);
        assert_eq!(d.map().unwrap(), Some(3));
        assert_eq!(d.str().unwrap(), "fmt");
        assert_eq!(d.str().unwrap(), "packed");
        assert_eq!(d.str().unwrap(), "attStmt");
        assert_eq!(d.map().unwrap(), Some(2));
    }
}
