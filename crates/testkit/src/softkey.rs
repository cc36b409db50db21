//! A software FIDO2 authenticator for tests: CTAP2 over CTAPHID, one 64-byte report per
//! packet on a SOCK_SEQPACKET socket (what the agent's `unix:` device speaks). It keeps
//! P-256 or Ed25519 credentials (ring), a global sign counter, always confirms presence,
//! and supports a PIN (protocol 1). Tests can turn its counter back (a clone), make it lie
//! about user verification, or make it never answer.
//!
//! Only tests use it; the agent binary does not contain it.

use latchkey_agent::fido2::ctap2::{decode_agreement_key, encode_agreement_key, status};
use latchkey_agent::fido2::ctaphid::{
    self, CMD_CANCEL, CMD_CBOR, CMD_INIT, CMD_KEEPALIVE, Fed, Reassembler,
};
use latchkey_agent::fido2::hid::{REPORT_LEN, Report};
use latchkey_agent::fido2::pin;
use latchkey_agent::fido2::sys::{SeqPacket, SeqPacketListener};
use latchkey_crypto::webauthn::{ALG_EDDSA, ALG_ES256, CoseKey, FLAG_AT, FLAG_UP, FLAG_UV, sha256};
use minicbor::{Decoder, Encoder};
use ring::agreement::EphemeralPrivateKey;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub const AAGUID: [u8; 16] = *b"latchkey-softkey";

enum KeyPairKind {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

struct Credential {
    id: Vec<u8>,
    rp_id_hash: [u8; 32],
    key: KeyPairKind,
}

impl Credential {
    fn cose(&self) -> CoseKey {
        match &self.key {
            KeyPairKind::Es256(k) => {
                let mut point = [0u8; 65];
                point.copy_from_slice(k.public_key().as_ref());
                CoseKey::Es256 { point }
            }
            KeyPairKind::Ed25519(k) => {
                let mut public = [0u8; 32];
                public.copy_from_slice(k.public_key().as_ref());
                CoseKey::Ed25519 { public }
            }
        }
    }

    fn sign(&self, msg: &[u8]) -> Option<Vec<u8>> {
        match &self.key {
            KeyPairKind::Es256(k) => k
                .sign(&SystemRandom::new(), msg)
                .ok()
                .map(|s| s.as_ref().to_vec()),
            KeyPairKind::Ed25519(k) => Some(k.sign(msg).as_ref().to_vec()),
        }
    }
}

/// What a test can see and change.
pub struct KeyState {
    credentials: Vec<Credential>,
    /// Signature counter, shared by all credentials (as many keys do).
    pub counter: u32,
    pub pin: Option<String>,
    pub pin_retries: u8,
    /// Claims built-in user verification but never sets the UV flag (a broken key).
    pub lie_about_uv: bool,
    /// Makes Ed25519 credentials when the relying party accepts them.
    pub prefer_eddsa: bool,
    /// Attestation format: "packed" (self attestation) or "none".
    pub attestation: &'static str,
    /// Never answers CBOR requests (only keep-alives): the person never touches the key.
    pub unresponsive: bool,
    /// Number of CTAP2 requests that needed a touch (makeCredential, getAssertion).
    pub touches: u32,
    key_agreement: Option<EphemeralPrivateKey>,
    pin_token: [u8; 32],
}

pub struct SoftKey {
    pub path: PathBuf,
    state: Arc<Mutex<KeyState>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl SoftKey {
    pub fn start() -> anyhow::Result<SoftKey> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("softkey.sock");
        let listener = SeqPacketListener::bind(&path)?;
        let token = latchkey_crypto::random_bytes(32)?;
        let mut pin_token = [0u8; 32];
        pin_token.copy_from_slice(&token);
        let state = Arc::new(Mutex::new(KeyState {
            credentials: Vec::new(),
            counter: 0,
            pin: None,
            pin_retries: 8,
            lie_about_uv: false,
            prefer_eddsa: false,
            attestation: "packed",
            unresponsive: false,
            touches: 0,
            key_agreement: None,
            pin_token,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || serve(listener, st, sp));
        Ok(SoftKey {
            path,
            state,
            stop,
            thread: Some(thread),
            _dir: dir,
        })
    }

    /// The agent's device spec for this key.
    pub fn spec(&self) -> String {
        format!("unix:{}", self.path.display())
    }

    pub fn state(&self) -> MutexGuard<'_, KeyState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn credential_count(&self) -> usize {
        self.state().credentials.len()
    }
}

impl Drop for SoftKey {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: SeqPacketListener, state: Arc<Mutex<KeyState>>, stop: Arc<AtomicBool>) {
    let mut next_cid: u32 = 1;
    while !stop.load(Ordering::Relaxed) {
        match listener.accept(Duration::from_millis(100)) {
            Ok(Some(conn)) => connection(&conn, &state, &stop, &mut next_cid),
            Ok(None) => {}
            Err(_) => return,
        }
    }
}

fn send(conn: &SeqPacket, cid: u32, cmd: u8, payload: &[u8]) -> bool {
    let Ok(reports) = ctaphid::encode(cid, cmd, payload) else {
        return false;
    };
    reports.iter().all(|r| conn.send(r).is_ok())
}

fn connection(
    conn: &SeqPacket,
    state: &Arc<Mutex<KeyState>>,
    stop: &AtomicBool,
    next_cid: &mut u32,
) {
    let mut partial: HashMap<u32, Reassembler> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let mut buf = [0u8; REPORT_LEN];
        let r: Report = match conn.recv(&mut buf, Duration::from_millis(100)) {
            Ok(Some(REPORT_LEN)) => buf,
            Ok(Some(_)) => continue,
            Ok(None) => continue,
            Err(_) => return,
        };
        let cid = ctaphid::cid_of(&r);
        let fed = partial.entry(cid).or_default().feed(&r);
        let (cmd, payload) = match fed {
            Ok(Fed::Done(c, p)) => (c, p),
            Ok(Fed::More) => continue,
            Err(_) => {
                partial.remove(&cid);
                let _ = send(conn, cid, ctaphid::CMD_ERROR, &[0x04]);
                continue;
            }
        };
        match cmd {
            CMD_INIT if payload.len() == 8 => {
                let new = *next_cid;
                *next_cid = next_cid.wrapping_add(1).max(1);
                let mut answer = payload.clone();
                answer.extend_from_slice(&new.to_be_bytes());
                answer.extend_from_slice(&[2, 1, 0, 0, ctaphid::CAPABILITY_CBOR]);
                // Answered on the channel it came on (the broadcast one for a new client).
                send(conn, cid, CMD_INIT, &answer);
            }
            CMD_CBOR => {
                let unresponsive = lock(state).unresponsive;
                if unresponsive {
                    // Waits for a touch that never comes, until the host cancels or leaves.
                    loop {
                        if !send(conn, cid, CMD_KEEPALIVE, &[ctaphid::KEEPALIVE_UP_NEEDED]) {
                            return;
                        }
                        match conn.recv(&mut buf, Duration::from_millis(100)) {
                            Ok(Some(_)) if buf[4] == CMD_CANCEL => {
                                send(conn, cid, CMD_CBOR, &[status::KEEPALIVE_CANCEL]);
                                break;
                            }
                            Ok(_) => {}
                            Err(_) => return,
                        }
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                    }
                    continue;
                }
                let needs_touch = matches!(payload.first(), Some(0x01) | Some(0x02));
                if needs_touch {
                    send(conn, cid, CMD_KEEPALIVE, &[ctaphid::KEEPALIVE_UP_NEEDED]);
                }
                let answer = {
                    let mut st = lock(state);
                    if needs_touch {
                        st.touches += 1;
                    }
                    ctap2(&mut st, &payload)
                };
                send(conn, cid, CMD_CBOR, &answer);
            }
            CMD_CANCEL => {}
            _ => {
                send(conn, cid, ctaphid::CMD_ERROR, &[0x01]);
            }
        }
    }
}

fn lock(state: &Arc<Mutex<KeyState>>) -> MutexGuard<'_, KeyState> {
    match state.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

type Answer = Vec<u8>;

fn err(code: u8) -> Answer {
    vec![code]
}

const INVALID_CBOR: u8 = 0x12;
const MISSING_PARAMETER: u8 = 0x14;

fn ctap2(st: &mut KeyState, req: &[u8]) -> Answer {
    let Some((&cmd, body)) = req.split_first() else {
        return err(0x01);
    };
    let r = match cmd {
        0x04 => Ok(get_info(st)),
        0x01 => make_credential(st, body),
        0x02 => get_assertion(st, body),
        0x06 => client_pin(st, body),
        _ => Err(0x01),
    };
    r.unwrap_or_else(err)
}

type Res = Result<Answer, u8>;

fn ok(
    build: impl FnOnce(
        &mut Encoder<Vec<u8>>,
    ) -> Result<(), minicbor::encode::Error<std::convert::Infallible>>,
) -> Res {
    let mut e = Encoder::new(vec![status::OK]);
    build(&mut e).map_err(|_| 0x7F)?;
    Ok(e.into_writer())
}

fn get_info(st: &KeyState) -> Answer {
    let r = ok(|e| {
        e.map(5)?;
        e.u8(1)?.array(1)?.str("FIDO_2_0")?;
        e.u8(3)?.bytes(&AAGUID)?;
        e.u8(4)?;
        let n = 3 + u64::from(st.lie_about_uv);
        e.map(n)?;
        e.str("rk")?.bool(false)?;
        e.str("up")?.bool(true)?;
        if st.lie_about_uv {
            e.str("uv")?.bool(true)?;
        }
        e.str("clientPin")?.bool(st.pin.is_some())?;
        e.u8(5)?.u32(1200)?;
        e.u8(6)?.array(1)?.u8(1)?;
        Ok(())
    });
    r.unwrap_or_else(err)
}

/// Parsed request fields shared by makeCredential and getAssertion.
#[derive(Default)]
struct Req {
    cdh: Option<Vec<u8>>,
    rp_id: Option<String>,
    algs: Vec<i64>,
    list: Vec<Vec<u8>>,
    uv_option: bool,
    pin_auth: Option<Vec<u8>>,
}

fn descriptor_list(d: &mut Decoder<'_>) -> Result<Vec<Vec<u8>>, u8> {
    let n = d.array().map_err(|_| INVALID_CBOR)?.ok_or(INVALID_CBOR)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let m = d.map().map_err(|_| INVALID_CBOR)?.ok_or(INVALID_CBOR)?;
        for _ in 0..m {
            match d.str().map_err(|_| INVALID_CBOR)? {
                "id" => out.push(d.bytes().map_err(|_| INVALID_CBOR)?.to_vec()),
                _ => d.skip().map_err(|_| INVALID_CBOR)?,
            }
        }
    }
    Ok(out)
}

fn options(d: &mut Decoder<'_>) -> Result<bool, u8> {
    let m = d.map().map_err(|_| INVALID_CBOR)?.ok_or(INVALID_CBOR)?;
    let mut uv = false;
    for _ in 0..m {
        match d.str().map_err(|_| INVALID_CBOR)? {
            "uv" => uv = d.bool().map_err(|_| INVALID_CBOR)?,
            _ => d.skip().map_err(|_| INVALID_CBOR)?,
        }
    }
    Ok(uv)
}

fn parse_make(body: &[u8]) -> Result<Req, u8> {
    let mut d = Decoder::new(body);
    let mut r = Req::default();
    let n = d.map().map_err(|_| INVALID_CBOR)?.ok_or(INVALID_CBOR)?;
    for _ in 0..n {
        match d.u8().map_err(|_| INVALID_CBOR)? {
            1 => r.cdh = Some(d.bytes().map_err(|_| INVALID_CBOR)?.to_vec()),
            2 => {
                let m = d.map().map_err(|_| INVALID_CBOR)?.ok_or(INVALID_CBOR)?;
                for _ in 0..m {
                    match d.str().map_err(|_| INVALID_CBOR)? {
                        "id" => r.rp_id = Some(d.str().map_err(|_| INVALID_CBOR)?.to_string()),
                        _ => d.skip().map_err(|_| INVALID_CBOR)?,
                    }
                }
            }
            4 => {
                let a = d.array().map_err(|_| INVALID_CBOR)?.ok_or(INVALID_CBOR)?;
                for _ in 0..a {
                    let m = d.map().map_err(|_| INVALID_CBOR)?.ok_or(INVALID_CBOR)?;
                    for _ in 0..m {
                        match d.str().map_err(|_| INVALID_CBOR)? {
                            "alg" => r.algs.push(d.i64().map_err(|_| INVALID_CBOR)?),
                            _ => d.skip().map_err(|_| INVALID_CBOR)?,
                        }
                    }
                }
            }
            5 => r.list = descriptor_list(&mut d)?,
            7 => r.uv_option = options(&mut d)?,
            8 => r.pin_auth = Some(d.bytes().map_err(|_| INVALID_CBOR)?.to_vec()),
            _ => d.skip().map_err(|_| INVALID_CBOR)?,
        }
    }
    Ok(r)
}

fn parse_get(body: &[u8]) -> Result<Req, u8> {
    let mut d = Decoder::new(body);
    let mut r = Req::default();
    let n = d.map().map_err(|_| INVALID_CBOR)?.ok_or(INVALID_CBOR)?;
    for _ in 0..n {
        match d.u8().map_err(|_| INVALID_CBOR)? {
            1 => r.rp_id = Some(d.str().map_err(|_| INVALID_CBOR)?.to_string()),
            2 => r.cdh = Some(d.bytes().map_err(|_| INVALID_CBOR)?.to_vec()),
            3 => r.list = descriptor_list(&mut d)?,
            5 => r.uv_option = options(&mut d)?,
            6 => r.pin_auth = Some(d.bytes().map_err(|_| INVALID_CBOR)?.to_vec()),
            _ => d.skip().map_err(|_| INVALID_CBOR)?,
        }
    }
    Ok(r)
}

/// Whether user verification happened for this request: a valid PIN auth, or the
/// built-in kind (unless the key lies about it).
fn verify_user(st: &KeyState, cdh: &[u8], r: &Req) -> Result<bool, u8> {
    if let Some(p) = &r.pin_auth {
        let expected = pin::auth_param(&st.pin_token, cdh).map_err(|_| 0x7F)?;
        if !latchkey_crypto::ct_eq(&expected, p) {
            return Err(status::PIN_AUTH_INVALID);
        }
        return Ok(true);
    }
    if r.uv_option {
        if st.lie_about_uv {
            return Ok(false);
        }
        return Err(status::UNSUPPORTED_OPTION);
    }
    Ok(false)
}

fn make_credential(st: &mut KeyState, body: &[u8]) -> Res {
    let r = parse_make(body)?;
    let (Some(cdh), Some(rp_id)) = (r.cdh.clone(), r.rp_id.clone()) else {
        return Err(MISSING_PARAMETER);
    };
    if st.pin.is_some() && r.pin_auth.is_none() && !r.uv_option {
        return Err(status::PIN_REQUIRED);
    }
    let uv = verify_user(st, &cdh, &r)?;
    let rp_hash = sha256(rp_id.as_bytes());
    if st
        .credentials
        .iter()
        .any(|c| c.rp_id_hash == rp_hash && r.list.contains(&c.id))
    {
        return Err(status::CREDENTIAL_EXCLUDED);
    }
    let rng = SystemRandom::new();
    let want_ed = st.prefer_eddsa && r.algs.contains(&ALG_EDDSA);
    let key = if want_ed {
        let pk = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| 0x7F)?;
        KeyPairKind::Ed25519(Ed25519KeyPair::from_pkcs8(pk.as_ref()).map_err(|_| 0x7F)?)
    } else if r.algs.contains(&ALG_ES256) {
        let pk = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| 0x7F)?;
        KeyPairKind::Es256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pk.as_ref(), &rng)
                .map_err(|_| 0x7F)?,
        )
    } else {
        return Err(status::UNSUPPORTED_ALGORITHM);
    };
    let id = latchkey_crypto::random_bytes(32).map_err(|_| 0x7F)?;
    let cred = Credential {
        id: id.clone(),
        rp_id_hash: rp_hash,
        key,
    };
    st.counter = st.counter.wrapping_add(1);
    let mut ad = rp_hash.to_vec();
    ad.push(FLAG_UP | FLAG_AT | if uv { FLAG_UV } else { 0 });
    ad.extend_from_slice(&st.counter.to_be_bytes());
    ad.extend_from_slice(&AAGUID);
    ad.extend_from_slice(&(id.len() as u16).to_be_bytes());
    ad.extend_from_slice(&id);
    let cose = cred.cose();
    ad.extend_from_slice(&cose.to_cbor());
    let mut msg = ad.clone();
    msg.extend_from_slice(&cdh);
    let sig = cred.sign(&msg).ok_or(0x7F)?;
    let fmt = st.attestation;
    st.credentials.push(cred);
    ok(|e| {
        e.map(3)?;
        e.u8(1)?.str(fmt)?;
        e.u8(2)?.bytes(&ad)?;
        e.u8(3)?;
        if fmt == "packed" {
            e.map(2)?
                .str("alg")?
                .i64(cose.alg())?
                .str("sig")?
                .bytes(&sig)?;
        } else {
            e.map(0)?;
        }
        Ok(())
    })
}

fn get_assertion(st: &mut KeyState, body: &[u8]) -> Res {
    let r = parse_get(body)?;
    let (Some(cdh), Some(rp_id)) = (r.cdh.clone(), r.rp_id.clone()) else {
        return Err(MISSING_PARAMETER);
    };
    let uv = verify_user(st, &cdh, &r)?;
    let rp_hash = sha256(rp_id.as_bytes());
    let Some(idx) = st
        .credentials
        .iter()
        .position(|c| c.rp_id_hash == rp_hash && r.list.contains(&c.id))
    else {
        return Err(status::NO_CREDENTIALS);
    };
    st.counter = st.counter.wrapping_add(1);
    let mut ad = rp_hash.to_vec();
    ad.push(FLAG_UP | if uv { FLAG_UV } else { 0 });
    ad.extend_from_slice(&st.counter.to_be_bytes());
    let mut msg = ad.clone();
    msg.extend_from_slice(&cdh);
    let cred = &st.credentials[idx];
    let sig = cred.sign(&msg).ok_or(0x7F)?;
    let id = cred.id.clone();
    ok(|e| {
        e.map(3)?;
        e.u8(1)?
            .map(2)?
            .str("id")?
            .bytes(&id)?
            .str("type")?
            .str("public-key")?;
        e.u8(2)?.bytes(&ad)?;
        e.u8(3)?.bytes(&sig)?;
        Ok(())
    })
}

fn client_pin(st: &mut KeyState, body: &[u8]) -> Res {
    let mut d = Decoder::new(body);
    let n = d.map().map_err(|_| INVALID_CBOR)?.ok_or(INVALID_CBOR)?;
    let (mut sub, mut platform, mut hash_enc) = (None, None, None);
    for _ in 0..n {
        match d.u8().map_err(|_| INVALID_CBOR)? {
            2 => sub = Some(d.u64().map_err(|_| INVALID_CBOR)?),
            3 => platform = Some(decode_agreement_key(&mut d).map_err(|_| INVALID_CBOR)?),
            6 => hash_enc = Some(d.bytes().map_err(|_| INVALID_CBOR)?.to_vec()),
            _ => d.skip().map_err(|_| INVALID_CBOR)?,
        }
    }
    match sub {
        Some(1) => {
            let retries = st.pin_retries;
            ok(|e| {
                e.map(1)?.u8(3)?.u8(retries)?;
                Ok(())
            })
        }
        Some(2) => {
            let (point, private) = pin::ephemeral().map_err(|_| 0x7F)?;
            st.key_agreement = Some(private);
            ok(|e| {
                e.map(1)?.u8(1)?;
                encode_agreement_key(e, &point)
            })
        }
        Some(5) => {
            let Some(the_pin) = st.pin.clone() else {
                return Err(status::PIN_NOT_SET);
            };
            if st.pin_retries == 0 {
                return Err(status::PIN_BLOCKED);
            }
            let (Some(platform), Some(hash_enc), Some(private)) =
                (platform, hash_enc, st.key_agreement.take())
            else {
                return Err(MISSING_PARAMETER);
            };
            let shared = pin::shared_secret(private, &platform).map_err(|_| 0x7F)?;
            let hash = pin::decrypt(&shared, &hash_enc).map_err(|_| status::PIN_INVALID)?;
            if !latchkey_crypto::ct_eq(&hash, &pin::pin_hash(&the_pin)[..]) {
                st.pin_retries -= 1;
                return Err(if st.pin_retries == 0 {
                    status::PIN_BLOCKED
                } else {
                    status::PIN_INVALID
                });
            }
            st.pin_retries = 8;
            let token_enc = pin::encrypt(&shared, &st.pin_token).map_err(|_| 0x7F)?;
            ok(|e| {
                e.map(1)?.u8(2)?.bytes(&token_enc)?;
                Ok(())
            })
        }
        _ => Err(MISSING_PARAMETER),
    }
}
