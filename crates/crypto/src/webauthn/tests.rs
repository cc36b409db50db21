use super::*;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

fn hex(s: &str) -> Vec<u8> {
    data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap()
}

struct Key {
    es: Option<EcdsaKeyPair>,
    ed: Option<Ed25519KeyPair>,
}

impl Key {
    fn es256() -> Key {
        let rng = SystemRandom::new();
        let pk = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let kp =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pk.as_ref(), &rng).unwrap();
        Key {
            es: Some(kp),
            ed: None,
        }
    }
    fn ed25519() -> Key {
        let pk = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Key {
            es: None,
            ed: Some(Ed25519KeyPair::from_pkcs8(pk.as_ref()).unwrap()),
        }
    }
    fn cose(&self) -> CoseKey {
        match (&self.es, &self.ed) {
            (Some(k), _) => CoseKey::Es256 {
                point: k.public_key().as_ref().try_into().unwrap(),
            },
            (_, Some(k)) => CoseKey::Ed25519 {
                public: k.public_key().as_ref().try_into().unwrap(),
            },
            _ => panic!(),
        }
    }
    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match (&self.es, &self.ed) {
            (Some(k), _) => k.sign(&SystemRandom::new(), msg).unwrap().as_ref().to_vec(),
            (_, Some(k)) => k.sign(msg).as_ref().to_vec(),
            _ => panic!(),
        }
    }
}

fn auth_data(rp: &str, flags: u8, count: u32, attested: Option<(&[u8], &CoseKey)>) -> Vec<u8> {
    let mut v = sha256(rp.as_bytes()).to_vec();
    v.push(flags | if attested.is_some() { FLAG_AT } else { 0 });
    v.extend_from_slice(&count.to_be_bytes());
    if let Some((id, key)) = attested {
        v.extend_from_slice(&[7u8; 16]);
        v.extend_from_slice(&(id.len() as u16).to_be_bytes());
        v.extend_from_slice(id);
        v.extend_from_slice(&key.to_cbor());
    }
    v
}

const CHALLENGE: &[u8] = b"0123456789abcdef0123456789abcdef";

fn expect(require_uv: bool) -> Expect<'static> {
    Expect {
        rp_id: "latchkey",
        challenge: CHALLENGE,
        origins: &[ORIGIN_AGENT],
        require_uv,
    }
}

struct Signed {
    ad: Vec<u8>,
    cd: Vec<u8>,
    sig: Vec<u8>,
}

fn assertion(key: &Key, flags: u8, count: u32, cd: String) -> Signed {
    let ad = auth_data("latchkey", flags, count, None);
    let cd = cd.into_bytes();
    let mut msg = ad.clone();
    msg.extend_from_slice(&sha256(&cd));
    Signed {
        sig: key.sign(&msg),
        ad,
        cd,
    }
}

fn check(key: &Key, s: &Signed, stored: u32, uv: bool) -> Result<VerifiedAssertion> {
    verify_assertion(
        &key.cose().to_cbor(),
        stored,
        &Assertion {
            authenticator_data: &s.ad,
            client_data_json: &s.cd,
            signature: &s.sig,
        },
        &expect(uv),
    )
}

fn good_cd() -> String {
    client_data_json(TYPE_GET, CHALLENGE, ORIGIN_AGENT)
}

#[test]
fn ed25519_rfc8032_test_vector_1() {
    // RFC 8032 §7.1, TEST 1 (empty message).
    let public: [u8; 32] = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        .try_into()
        .unwrap();
    let sig = hex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    );
    let key = CoseKey::Ed25519 { public };
    key.verify(b"", &sig).unwrap();
    assert_eq!(key.verify(b"x", &sig), Err(WebauthnError::Signature));
    // Round trip through the COSE encoding.
    assert_eq!(CoseKey::parse(&key.to_cbor()).unwrap(), key);
}

#[test]
fn es256_cose_key_known_encoding_parses() {
    // A COSE_Key as CTAP2 authenticators encode it: {1:2, 3:-7, -1:1, -2:x, -3:y}.
    let mut cbor = hex("a5010203262001215820");
    cbor.extend_from_slice(&[0x11; 32]);
    cbor.extend_from_slice(&hex("225820"));
    cbor.extend_from_slice(&[0x22; 32]);
    let key = CoseKey::parse(&cbor).unwrap();
    let CoseKey::Es256 { point } = key.clone() else {
        panic!("not ES256")
    };
    assert_eq!(point[0], 4);
    assert_eq!(&point[1..33], &[0x11; 32]);
    assert_eq!(key.to_cbor(), cbor);
    // Not a point on the curve: verification fails cleanly.
    assert_eq!(key.verify(b"m", &[0x30, 0]), Err(WebauthnError::Signature));
}

#[test]
fn es256_and_eddsa_assertions_verify() {
    for key in [Key::es256(), Key::ed25519()] {
        let s = assertion(&key, FLAG_UP, 5, good_cd());
        let v = check(&key, &s, 4, false).unwrap();
        assert_eq!(v.sign_count, 5);
        assert!(!v.user_verified);
        let s = assertion(&key, FLAG_UP | FLAG_UV, 0, good_cd());
        assert!(check(&key, &s, 0, true).unwrap().user_verified);
    }
}

#[test]
fn tampered_or_foreign_assertions_are_refused() {
    let key = Key::es256();
    let mut s = assertion(&key, FLAG_UP, 5, good_cd());
    s.ad[36] ^= 1;
    assert_eq!(check(&key, &s, 0, false), Err(WebauthnError::Signature));
    let s = assertion(&key, FLAG_UP, 5, good_cd());
    assert_eq!(
        check(&Key::es256(), &s, 0, false),
        Err(WebauthnError::Signature)
    );
    let s = assertion(
        &key,
        FLAG_UP,
        5,
        client_data_json(TYPE_GET, b"other", ORIGIN_AGENT),
    );
    assert_eq!(check(&key, &s, 0, false), Err(WebauthnError::Challenge));
    let s = assertion(
        &key,
        FLAG_UP,
        5,
        client_data_json(TYPE_CREATE, CHALLENGE, ORIGIN_AGENT),
    );
    assert!(matches!(
        check(&key, &s, 0, false),
        Err(WebauthnError::WrongType(..))
    ));
    let s = assertion(
        &key,
        FLAG_UP,
        5,
        client_data_json(TYPE_GET, CHALLENGE, "https://evil.example"),
    );
    assert!(matches!(
        check(&key, &s, 0, false),
        Err(WebauthnError::Origin(_))
    ));
    let s = assertion(&key, 0, 5, good_cd());
    assert_eq!(
        check(&key, &s, 0, false),
        Err(WebauthnError::NoUserPresence)
    );
    let s = assertion(&key, FLAG_UP, 5, good_cd());
    assert_eq!(
        check(&key, &s, 0, true),
        Err(WebauthnError::NoUserVerification)
    );
    // Another relying party's authenticator data.
    let mut s = assertion(&key, FLAG_UP, 5, good_cd());
    s.ad = auth_data("example.org", FLAG_UP, 5, None);
    assert_eq!(check(&key, &s, 0, false), Err(WebauthnError::RpId));
}

#[test]
fn sign_counter_must_increase_unless_both_are_zero() {
    assert!(counter_ok(0, 0));
    assert!(counter_ok(0, 1));
    assert!(counter_ok(7, 8));
    assert!(!counter_ok(7, 7));
    assert!(!counter_ok(7, 3));
    assert!(!counter_ok(7, 0));
    let key = Key::ed25519();
    let s = assertion(&key, FLAG_UP, 3, good_cd());
    assert_eq!(
        check(&key, &s, 9, false),
        Err(WebauthnError::Counter {
            stored: 9,
            received: 3
        })
    );
}

fn attestation_object(fmt: &str, ad: &[u8], stmt: Option<(i64, &[u8])>, x5c: bool) -> Vec<u8> {
    let mut e = minicbor::Encoder::new(Vec::new());
    e.map(3).unwrap();
    e.str("fmt").unwrap().str(fmt).unwrap();
    e.str("attStmt").unwrap();
    match stmt {
        Some((alg, sig)) => {
            e.map(if x5c { 3 } else { 2 }).unwrap();
            e.str("alg").unwrap().i64(alg).unwrap();
            e.str("sig").unwrap().bytes(sig).unwrap();
            if x5c {
                e.str("x5c")
                    .unwrap()
                    .array(1)
                    .unwrap()
                    .bytes(b"cert")
                    .unwrap();
            }
        }
        None => {
            e.map(0).unwrap();
        }
    }
    e.str("authData").unwrap().bytes(ad).unwrap();
    e.into_writer()
}

fn create_ex() -> (String, Expect<'static>) {
    (
        client_data_json(TYPE_CREATE, CHALLENGE, ORIGIN_AGENT),
        expect(false),
    )
}

#[test]
fn registration_none_and_packed_self_attestation() {
    let (cd, ex) = create_ex();
    for key in [Key::es256(), Key::ed25519()] {
        let cose = key.cose();
        let ad = auth_data("latchkey", FLAG_UP | FLAG_UV, 0, Some((b"cred-1", &cose)));
        let none = attestation_object("none", &ad, None, false);
        let r = verify_registration(&none, cd.as_bytes(), &ex).unwrap();
        assert_eq!(r.credential_id, b"cred-1");
        assert_eq!(r.attestation, "none");
        assert!(r.user_verified);
        assert_eq!(CoseKey::parse(&r.public_key_cose).unwrap(), cose);
        assert_eq!(
            aaguid_string(&r.aaguid),
            "07070707-0707-0707-0707-070707070707"
        );

        let mut msg = ad.clone();
        msg.extend_from_slice(&sha256(cd.as_bytes()));
        let sig = key.sign(&msg);
        let packed = attestation_object("packed", &ad, Some((cose.alg(), &sig)), false);
        let r = verify_registration(&packed, cd.as_bytes(), &ex).unwrap();
        assert_eq!(r.attestation, "packed-self");

        let bad = attestation_object("packed", &ad, Some((cose.alg(), b"nope")), false);
        assert_eq!(
            verify_registration(&bad, cd.as_bytes(), &ex),
            Err(WebauthnError::Signature)
        );
        let x5c = attestation_object("packed", &ad, Some((cose.alg(), b"vendor")), true);
        assert_eq!(
            verify_registration(&x5c, cd.as_bytes(), &ex)
                .unwrap()
                .attestation,
            "packed-x5c"
        );
    }
}

#[test]
fn registration_refuses_wrong_format_type_and_missing_credential() {
    let (cd, ex) = create_ex();
    let key = Key::es256();
    let cose = key.cose();
    let ad = auth_data("latchkey", FLAG_UP, 0, Some((b"c", &cose)));
    let tpm = attestation_object("tpm", &ad, None, false);
    assert!(matches!(
        verify_registration(&tpm, cd.as_bytes(), &ex),
        Err(WebauthnError::AttestationFormat(_))
    ));
    let get = client_data_json(TYPE_GET, CHALLENGE, ORIGIN_AGENT);
    let none = attestation_object("none", &ad, None, false);
    assert!(matches!(
        verify_registration(&none, get.as_bytes(), &ex),
        Err(WebauthnError::WrongType(..))
    ));
    let no_cred = attestation_object(
        "none",
        &auth_data("latchkey", FLAG_UP, 0, None),
        None,
        false,
    );
    assert!(matches!(
        verify_registration(&no_cred, cd.as_bytes(), &ex),
        Err(WebauthnError::Attestation(_))
    ));
    let uv = Expect {
        require_uv: true,
        ..ex
    };
    assert_eq!(
        verify_registration(&none, cd.as_bytes(), &uv),
        Err(WebauthnError::NoUserVerification)
    );
}

/// A small deterministic generator (no rand dependency in this crate).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u8 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u8
    }
}

#[test]
fn bad_input_never_panics() {
    let key = Key::es256();
    let cose = key.cose();
    let ad = auth_data("latchkey", FLAG_UP, 1, Some((b"cred", &cose)));
    let att = attestation_object("none", &ad, None, false);
    let (cd, ex) = create_ex();
    // Every truncation, then random bit flips, of valid inputs.
    for n in 0..att.len() {
        let _ = verify_registration(&att[..n], cd.as_bytes(), &ex);
    }
    for n in 0..ad.len() {
        let _ = AuthData::parse(&ad[..n]);
    }
    let cbor = cose.to_cbor();
    for n in 0..cbor.len() {
        assert!(CoseKey::parse(&cbor[..n]).is_err());
    }
    let mut rng = Lcg(42);
    for _ in 0..3000 {
        let mut a = att.clone();
        for _ in 0..1 + rng.next() % 4 {
            let i = usize::from(rng.next()) * a.len() / 256;
            a[i] ^= 1 << (rng.next() % 8);
        }
        let _ = verify_registration(&a, cd.as_bytes(), &ex);
        let junk: Vec<u8> = (0..rng.next()).map(|_| rng.next()).collect();
        let _ = AuthData::parse(&junk);
        let _ = CoseKey::parse(&junk);
        let _ = parse_client_data(&junk);
        let _ = verify_registration(&junk, cd.as_bytes(), &ex);
    }
    // Huge declared lengths and deep nesting are errors, not allocations or recursion.
    assert!(CoseKey::parse(&hex("bbffffffffffffffff")).is_err());
    let deep = vec![0x81u8; 100_000];
    let mut ext = auth_data("latchkey", FLAG_UP | FLAG_ED, 1, None);
    ext.extend_from_slice(&deep);
    assert!(AuthData::parse(&ext).is_err());
    assert!(verify_registration(&deep, cd.as_bytes(), &ex).is_err());
}

#[test]
fn client_data_from_a_cross_origin_frame_is_refused() {
    let key = Key::es256();
    let good = good_cd();
    let cross = good.replace("\"crossOrigin\":false", "\"crossOrigin\":true");
    assert_ne!(good, cross);
    let s = assertion(&key, FLAG_UP, 5, cross.clone());
    assert!(
        matches!(check(&key, &s, 0, false), Err(WebauthnError::ClientData(_))),
        "crossOrigin true is accepted"
    );
    assert!(parse_client_data(cross.as_bytes()).is_err());
    let top = good.replace(
        "\"crossOrigin\":false",
        "\"crossOrigin\":false,\"topOrigin\":\"https://evil.example\"",
    );
    assert!(parse_client_data(top.as_bytes()).is_err());
    let odd = good.replace("\"crossOrigin\":false", "\"crossOrigin\":\"yes\"");
    assert!(parse_client_data(odd.as_bytes()).is_err());
    // Absent or false, as browsers send it for a top-level page: accepted.
    let absent = good.replace(",\"crossOrigin\":false", "");
    assert!(parse_client_data(absent.as_bytes()).is_ok());
    let s = assertion(&key, FLAG_UP, 5, good);
    assert!(check(&key, &s, 0, false).is_ok());
}
