//! Arbitrary bytes never panic the offline decoders, and what they accept re-encodes to the
//! same bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey_proto::offline::{
    Bundle, Challenge, OfflineAttachment, WithOffline, code_from_plaintext,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn challenge_decoder_never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(c) = Challenge::from_bytes(&bytes) {
            prop_assert_eq!(c.to_bytes().unwrap(), bytes);
        }
    }

    #[test]
    fn challenge_decoder_survives_mutations_of_a_valid_one(at in 0usize..120, bit in 0u8..8, cut in 0usize..130) {
        let c = Challenge {
            key_id: [1, 2, 3, 4],
            expires_at: 1_800_000_000,
            nonce: [9; 8],
            user: "alice".into(),
            host: "host".into(),
            client_id: "login".into(),
            enc: [7; 32],
            ciphertext: vec![5; 21],
        };
        let mut b = c.to_bytes().unwrap();
        let at = at % b.len();
        b[at] ^= 1 << bit;
        let _ = Challenge::from_bytes(&b);
        b.truncate(cut.min(b.len()));
        let _ = Challenge::from_bytes(&b);
    }

    #[test]
    fn bundle_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Bundle::decode(&bytes);
    }

    #[test]
    fn bundle_decoder_never_panics_on_json_like_text(s in "[{}\\[\\]\":,a-z0-9 -]{0,300}") {
        let _ = Bundle::decode(s.as_bytes());
        let _ = serde_json::from_str::<WithOffline<OfflineAttachment>>(&s);
    }

    #[test]
    fn code_plaintext_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..8)) {
        let _ = code_from_plaintext(&bytes);
    }
}
