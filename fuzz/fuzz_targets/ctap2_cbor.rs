//! What a security key sends the agent: CTAPHID reports (reassembled into a message) and the
//! CTAP2 CBOR answers of getInfo, makeCredential, getAssertion and clientPIN. A key is
//! untrusted hardware: a hostile USB device must not crash the agent.
#![no_main]

use latchkey_agent::fido2::ctap2;
use latchkey_agent::fido2::ctaphid::{Fed, Reassembler};
use latchkey_agent::fido2::hid::{REPORT_LEN, Report};
use libfuzzer_sys::fuzz_target;
use minicbor::Decoder;

fuzz_target!(|data: &[u8]| {
    let _ = ctap2::parse_info(data);
    let _ = ctap2::parse_assertion(data, &[]);
    let _ = ctap2::parse_assertion(data, &[b"cred".to_vec()]);
    let _ = ctap2::decode_agreement_key(&mut Decoder::new(data));
    if let Ok(obj) = ctap2::attestation_object(data) {
        // The agent forwards this to the server as CBOR: it must be one well-formed item.
        let mut d = Decoder::new(&obj);
        d.skip().expect("attestation object is CBOR");
        assert_eq!(
            d.position(),
            obj.len(),
            "attestation object has trailing bytes"
        );
    }
    let mut r = Reassembler::new();
    for chunk in data.chunks(REPORT_LEN) {
        let mut report: Report = [0; REPORT_LEN];
        report[..chunk.len()].copy_from_slice(chunk);
        match r.feed(&report) {
            Ok(Fed::Done(_, msg)) => {
                assert!(msg.len() <= latchkey_agent::fido2::ctaphid::MAX_MESSAGE)
            }
            Ok(Fed::More) => {}
            Err(_) => r = Reassembler::new(),
        }
    }
});
