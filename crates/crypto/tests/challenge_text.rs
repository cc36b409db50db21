//! The QR payload text decoder (base45 + challenge) never panics on arbitrary input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey_crypto::{base45, challenge};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn base45_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(base45::decode(&base45::encode(&bytes)).unwrap(), bytes);
    }

    #[test]
    fn base45_decoder_never_panics(s in "\\PC{0,200}") {
        let _ = base45::decode(&s);
    }

    #[test]
    fn challenge_text_decoder_never_panics(s in "(LK1:)?[0-9A-Z $%*+./:-]{0,220}") {
        let _ = challenge::from_text(&s);
    }

    #[test]
    fn challenge_text_decoder_never_panics_on_any_text(s in "\\PC{0,300}") {
        let _ = challenge::from_text(&s);
    }

    #[test]
    fn opening_arbitrary_challenges_fails_cleanly(bytes in proptest::collection::vec(any::<u8>(), 60..110)) {
        if let Ok(c) = latchkey_proto::offline::Challenge::from_bytes(&bytes) {
            prop_assert!(challenge::open(&[9u8; 32], &c).is_err());
        }
    }
}
