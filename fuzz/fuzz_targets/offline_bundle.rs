//! The offline bundle as the agent receives it (riding a server answer) and reads it back
//! from its state: the signed envelope, the base64 payload, the signature check and the
//! strict bundle decoder. A decoded bundle must survive its own encoding unchanged.
#![no_main]

use latchkey_proto::login::LoginStepResult;
use latchkey_proto::offline::{Bundle, OfflineAttachment, SignedBundle, WithOffline};
use libfuzzer_sys::fuzz_target;

/// Any 32 bytes: the point is that verification refuses without panicking.
const SERVER_KEY: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Bundle::decode(data) {
        let bytes = b.encode().expect("a decoded bundle encodes");
        assert_eq!(
            Bundle::decode(&bytes).as_ref(),
            Ok(&b),
            "bundle does not round-trip"
        );
    }
    if let Ok(s) = serde_json::from_slice::<SignedBundle>(data) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        if let (Ok(payload), Ok(sig)) = (b64.decode(&s.payload), b64.decode(&s.signature)) {
            let _ = latchkey_crypto::bundle::verify(&SERVER_KEY, &payload, &sig);
            let _ = Bundle::decode(&payload);
        }
    }
    // How a server answer carries it (flattened beside the answer's own fields).
    let _ = serde_json::from_slice::<WithOffline<LoginStepResult>>(data);
    let _ = serde_json::from_slice::<WithOffline<OfflineAttachment>>(data);
});
