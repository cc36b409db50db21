//! Frames on the agent socket: a local, unprivileged user writes `AgentRequest`s to the
//! agent (root), and the PAM module reads `AgentReply`s. Both ends go through `frame_len`
//! and the same JSON decoding; what decodes must re-encode to a frame that decodes equal.
#![no_main]

use latchkey_proto::agent::{AgentReply, AgentRequest, blocking, encode_frame, frame_len};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let mut r = data;
    if let Ok(msg) = blocking::read::<_, T>(&mut r) {
        let frame = encode_frame(&msg).expect("a decoded message fits a frame");
        let back: T = blocking::read(&mut &frame[..]).expect("an encoded frame decodes");
        assert_eq!(back, msg);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(h) = data.first_chunk::<4>() {
        let _ = frame_len(*h);
    }
    round_trip::<AgentRequest>(data);
    round_trip::<AgentReply>(data);
    // The same bodies without a header: the fuzzer need not find a matching length.
    let _ = serde_json::from_slice::<AgentRequest>(data);
    let _ = serde_json::from_slice::<AgentReply>(data);
});
