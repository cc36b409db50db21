//! The offline QR challenge as the token app reads it: the `LK1:` text (scanned or pasted),
//! its base45 body and the binary challenge inside. Whatever decodes must re-encode to the
//! same thing (the header is the HPKE aad, so a second reading of the same bytes would
//! break opening).
#![no_main]

use latchkey_crypto::{base45, challenge};
use latchkey_proto::offline::{Challenge, code_from_plaintext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Challenge::from_bytes(data) {
        let again = c.to_bytes().expect("a decoded challenge encodes");
        assert_eq!(again, data, "binary challenge is not canonical");
    }
    // The sealed plaintext the app opens (5 bytes); any slice of the input will do.
    let _ = code_from_plaintext(&data[..data.len().min(5)]);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bytes) = base45::decode(text) {
        assert_eq!(base45::encode(&bytes), text, "base45 is not canonical");
    }
    if let Ok(c) = challenge::from_text(text) {
        let shown = challenge::to_text(&c).expect("a decoded challenge has a text form");
        assert_eq!(challenge::from_text(&shown).ok(), Some(c));
    }
});
