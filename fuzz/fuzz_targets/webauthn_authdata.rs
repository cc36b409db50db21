//! WebAuthn as the server checks it (a machine relays what a security key produced):
//! authenticator data, COSE keys, client data JSON, and whole registrations and assertions.
//! Client data is built valid here so the fuzzer's bytes reach the CBOR decoders behind it.
#![no_main]

use latchkey_crypto::webauthn::{
    self, Assertion, AuthData, CoseKey, Expect, ORIGIN_AGENT, TYPE_CREATE, TYPE_GET,
};
use libfuzzer_sys::fuzz_target;

const CHALLENGE: &[u8] = b"fuzz challenge";

fuzz_target!(|data: &[u8]| {
    if let Ok(ad) = AuthData::parse(data) {
        if let Some(c) = &ad.attested {
            // What registration stores must parse again as the same key.
            assert_eq!(
                CoseKey::parse(&c.public_key_cbor).ok().as_ref(),
                Some(&c.public_key)
            );
        }
    }
    if let Ok((key, used)) = CoseKey::parse_prefix(data) {
        assert!(used <= data.len());
        assert_eq!(CoseKey::parse(&key.to_cbor()).ok(), Some(key));
    }
    let _ = webauthn::parse_client_data(data);
    let ex = Expect {
        rp_id: "latchkey",
        challenge: CHALLENGE,
        origins: &[ORIGIN_AGENT],
        require_uv: false,
    };
    let create = webauthn::client_data_json(TYPE_CREATE, CHALLENGE, ORIGIN_AGENT);
    let _ = webauthn::verify_registration(data, create.as_bytes(), &ex);
    // An assertion: the input is split into a COSE key and authenticator data at a byte the
    // input chooses, with a fixed signature (refused, but only after both are parsed).
    if let Some((&at, rest)) = data.split_first() {
        let (key, ad) = rest.split_at(usize::from(at).min(rest.len()));
        let get = webauthn::client_data_json(TYPE_GET, CHALLENGE, ORIGIN_AGENT);
        let a = Assertion {
            authenticator_data: ad,
            client_data_json: get.as_bytes(),
            signature: &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
        };
        let _ = webauthn::verify_assertion(key, 0, &a, &ex);
    }
});
