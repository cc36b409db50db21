//! The token app's file (a copied, restored or tampered `tokens.json`) and the registration
//! link pasted into it. The envelope goes through `TokenFile::from_bytes` itself; since no
//! fuzzer forges the AEAD tag, the sealed plaintext (`Contents`) is decoded directly too,
//! exactly as `from_bytes` does once the tag checks.
#![no_main]

use latchkey_token::store::{Contents, TokenFile};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

/// The passphrase the seed files were written with (corpus/token_file/, scripts/fuzz-seeds).
pub const PASSPHRASE: &[u8] = b"fuzz passphrase";

/// Argon2 work the header asks for, when it is numbers: files asking for more than the
/// seeds' 1 MiB × 2 passes are skipped, since at up to 4 GiB × 64 passes (the largest a file
/// may ask for, by design) one input would take minutes and not test the decoder further.
fn too_costly(data: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return false;
    };
    let n = |k: &str| v["kdf"][k].as_u64().unwrap_or(0);
    n("memory_kib").saturating_mul(n("iterations")) > 2048 || n("parallelism") > 2
}

fuzz_target!(|data: &[u8]| {
    if !too_costly(data) {
        let _ = TokenFile::from_bytes(Path::new("tokens.json"), data, PASSPHRASE);
    }
    if let Ok(c) = serde_json::from_slice::<Contents>(data) {
        let again = serde_json::to_vec(&c).expect("contents encode");
        let back: Contents = serde_json::from_slice(&again).expect("own contents decode");
        assert_eq!(back.accounts, c.accounts);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = latchkey_token::link::parse(text);
    }
});
