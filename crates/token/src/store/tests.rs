//! Token file tests: round trip, wrong passphrase, tampering, nothing secret readable.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::account::tests::sample;
use std::os::unix::fs::PermissionsExt;

/// Cheap parameters so the tests run fast; the format is the same.
fn cheap() -> KdfParams {
    KdfParams {
        memory_kib: KdfParams::MIN_MEMORY_KIB,
        iterations: 1,
        parallelism: 1,
    }
}

fn saved(dir: &Path) -> (PathBuf, Vec<Account>) {
    let path = dir.join("sub").join(FILE_NAME);
    let mut f = TokenFile::create(&path, b"correct horse", cheap()).unwrap();
    f.accounts.push(sample("alice@mfa.example"));
    f.accounts.push(sample("bob@other.example"));
    f.save().unwrap();
    (path, f.accounts.clone())
}

#[test]
fn token_file_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (path, accounts) = saved(dir.path());
    let f = TokenFile::open(&path, b"correct horse").unwrap();
    assert_eq!(f.accounts, accounts);
    assert_eq!(f.params(), cheap());
    // Saving again keeps it openable (fresh nonce, same key).
    let before = std::fs::read(&path).unwrap();
    f.save().unwrap();
    let after = std::fs::read(&path).unwrap();
    assert_ne!(before, after);
    assert_eq!(
        TokenFile::open(&path, b"correct horse").unwrap().accounts,
        accounts
    );
}

#[test]
fn file_is_private_and_no_temporary_file_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = saved(dir.path());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let dmode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dmode & 0o777, 0o700);
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(FILE_NAME)]);
}

#[test]
fn wrong_passphrase_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = saved(dir.path());
    let e = TokenFile::open(&path, b"correct horsf").unwrap_err();
    assert!(matches!(e, Error::WrongPassphrase));
    assert_eq!(e.to_string(), "wrong passphrase or damaged token file");
    assert_eq!(e.exit_code(), 1);
}

#[test]
fn a_flipped_ciphertext_byte_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = saved(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    let mut env: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut ct = B64.decode(env["ciphertext"].as_str().unwrap()).unwrap();
    for i in [0, ct.len() / 2, ct.len() - 1] {
        ct[i] ^= 0x01;
        env["ciphertext"] = B64.encode(&ct).into();
        let e =
            TokenFile::from_bytes(&path, env.to_string().as_bytes(), b"correct horse").unwrap_err();
        assert!(matches!(e, Error::WrongPassphrase), "byte {i}: {e}");
        ct[i] ^= 0x01;
    }
    // A raw byte flipped anywhere in the file is refused too.
    let bytes = std::fs::read(&path).unwrap();
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        assert!(
            TokenFile::from_bytes(&path, &b, b"correct horse").is_err(),
            "flip at {i} accepted"
        );
    }
}

#[test]
fn a_tampered_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = saved(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    let env: serde_json::Value = serde_json::from_str(&text).unwrap();
    let other_salt = B64.encode([7u8; SALT_LEN]);
    let tampers: Vec<(&str, serde_json::Value)> = vec![
        ("/kdf/iterations", 2.into()),
        ("/kdf/memory_kib", 2048.into()),
        ("/kdf/parallelism", 2.into()),
        ("/kdf/salt", other_salt.into()),
        ("/kdf/algorithm", "argon2i".into()),
        ("/kdf/version", 16.into()),
        ("/cipher", "chacha20poly1305".into()),
        ("/version", 2.into()),
        ("/format", "other".into()),
        ("/nonce", B64.encode([0u8; NONCE_LEN]).into()),
    ];
    for (pointer, value) in tampers {
        let mut t = env.clone();
        *t.pointer_mut(pointer).unwrap() = value;
        let r = TokenFile::from_bytes(&path, t.to_string().as_bytes(), b"correct horse");
        assert!(r.is_err(), "{pointer} tamper accepted");
    }
    // A hostile memory cost is refused before any allocation.
    let mut t = env.clone();
    *t.pointer_mut("/kdf/memory_kib").unwrap() = u32::MAX.into();
    let e = TokenFile::from_bytes(&path, t.to_string().as_bytes(), b"correct horse").unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
    // An added field is refused rather than ignored.
    let mut t = env.clone();
    t["extra"] = 1.into();
    assert!(TokenFile::from_bytes(&path, t.to_string().as_bytes(), b"correct horse").is_err());
}

#[test]
fn the_associated_data_binds_the_header() {
    // Same key and nonce, different associated data: the tag does not verify. This checks
    // the AD on its own, apart from the key derivation that also depends on the header.
    let kdf = KdfHeader {
        algorithm: KDF_ALGORITHM.into(),
        version: KDF_VERSION,
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
        salt: "c2FsdA==".into(),
    };
    let mut other = kdf.clone();
    other.iterations = 2;
    assert_ne!(
        associated_data(1, &kdf, CIPHER),
        associated_data(1, &other, CIPHER)
    );
    let key = [9u8; 32];
    let nonce = [1u8; NONCE_LEN];
    let cipher = XChaCha20Poly1305::new((&key).into());
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: b"x",
                aad: &associated_data(1, &kdf, CIPHER),
            },
        )
        .unwrap();
    let opened = cipher.decrypt(
        XNonce::from_slice(&nonce),
        Payload {
            msg: &ct,
            aad: &associated_data(1, &other, CIPHER),
        },
    );
    assert!(opened.is_err());
}

#[test]
fn the_file_holds_no_secret_in_any_common_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let (path, accounts) = saved(dir.path());
    let file = std::fs::read(&path).unwrap();
    let file_lower = String::from_utf8_lossy(&file).to_ascii_lowercase();
    for a in &accounts {
        let otp = latchkey_crypto::otpauth::OtpAuthUri::parse(a.otpauth_uri.expose()).unwrap();
        let secrets: Vec<(&str, Vec<u8>)> = vec![
            ("x25519", a.x25519_secret.expose().to_vec()),
            ("ed25519", a.ed25519_seed.expose().to_vec()),
            ("totp seed", otp.secret.to_vec()),
            ("app key", a.app_key.expose().as_bytes().to_vec()),
        ];
        for (what, raw) in secrets {
            let forms = [
                raw.clone(),
                B64.encode(&raw).trim_end_matches('=').as_bytes().to_vec(),
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(&raw)
                    .into_bytes(),
                latchkey_crypto::base32_encode(&raw).into_bytes(),
                data_encoding::HEXLOWER.encode(&raw).into_bytes(),
            ];
            for form in forms {
                // Any 12-byte window of the encoded secret would already be a leak.
                let probe = &form[..form.len().min(12)];
                assert!(
                    !file.windows(probe.len()).any(|w| w == probe),
                    "{what} found in the file"
                );
                let probe = String::from_utf8_lossy(probe).to_ascii_lowercase();
                assert!(
                    !file_lower.contains(&probe),
                    "{what} found (case-insensitive)"
                );
            }
        }
        // (Only names that cannot occur by chance in base64.)
        for public in ["mfa.example", "app_1", "test phone"] {
            assert!(
                !file_lower.contains(public),
                "{public} readable in the file"
            );
        }
    }
}

#[test]
fn empty_passphrase_and_cheap_parameters_are_refused_on_create() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    assert!(TokenFile::create(&path, b"", cheap()).is_err());
    let too_cheap = KdfParams {
        memory_kib: 512,
        ..cheap()
    };
    assert!(TokenFile::create(&path, b"pw", too_cheap).is_err());
}

#[test]
fn memory_knob_is_bounded() {
    assert_eq!(KdfParams::with_memory("2048").unwrap().memory_kib, 2048);
    assert_eq!(KdfParams::with_memory("2048").unwrap().iterations, 2);
    for bad in ["1023", "0", "lots", "-5", "99999999999"] {
        let e = KdfParams::with_memory(bad).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{bad}");
    }
}

#[test]
fn default_parameters_open_and_cost_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let f = TokenFile::create(&path, b"pw", KdfParams::default()).unwrap();
    f.save().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"memory_kib\": 19456"), "{text}");
    assert!(TokenFile::open(&path, b"pw").unwrap().accounts.is_empty());
}

#[test]
fn a_missing_file_says_how_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let e = TokenFile::open(&dir.path().join("none.json"), b"pw").unwrap_err();
    assert!(e.to_string().contains("register"), "{e}");
}
