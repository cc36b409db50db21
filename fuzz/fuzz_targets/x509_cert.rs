//! Smartcard certificates: read from a card (untrusted: anyone can hand in a card) by the
//! agent, and sent to the server at enrolment and login, as DER or PEM. A certificate that
//! parses goes through every check the server makes, against itself as the CA.
#![no_main]

use latchkey_crypto::x509::{self, Certificate, SigMechanism};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(c) = Certificate::from_pem_or_der(data) else {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = x509::pem_to_der(text);
        }
        return;
    };
    let _ = c.check_validity(1_800_000_000);
    let _ = c.check_issued_by(&c, 1_800_000_000);
    let _ = c.subject_der();
    if let Some(m) = SigMechanism::for_key(&c.key) {
        let _ = c.verify_signature(m, b"challenge", &[0u8; 64]);
    }
    // PEM round trip: the agent stores and shows certificates as PEM.
    let again =
        Certificate::from_der(&x509::pem_to_der(&x509::der_to_pem(&c.der)).expect("own PEM"))
            .expect("a parsed certificate parses again");
    assert_eq!(again.fingerprint, c.fingerprint);
});
