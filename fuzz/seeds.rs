//! Writes the seed corpus (fuzz/corpus/<target>/) from inputs latchkey itself produces:
//! encoders of the same types, a real token file, rcgen certificates. Fixed, public keys
//! only: nothing here is a secret. Run by `scripts/fuzz seeds`; the output is committed.
//!
//! It is built like a fuzz target (libFuzzer's `main`, doing its work in the init hook and
//! exiting) because everything in this workspace is compiled with coverage hooks that only
//! libFuzzer provides: a plain binary would need a second build of every dependency.
#![no_main]

use latchkey_crypto::keys::SigningKeyPair;
use latchkey_crypto::webauthn::{self, CoseKey, ORIGIN_AGENT, TYPE_GET};
use latchkey_crypto::{challenge, hpke};
use latchkey_proto::agent::{self, AgentReply, AgentRequest, SessionEvent, Step};
use latchkey_proto::offline::{Bundle, OfflineApp, SignedBundle};
use minicbor::Encoder;
use serde_json::json;
use std::path::Path;

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn write(target: &str, name: &str, bytes: &[u8]) -> Res {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn challenges() -> Res {
    let public = hpke::public_key(&[3u8; 32]);
    let ctx = challenge::Context {
        user: "alice",
        host: "test-host",
        client_id: "login",
        expires_at: 1_800_000_000,
        nonce: [9; 8],
    };
    let c = challenge::seal(&public, &ctx, 6, 123_456)?;
    write("qr_challenge", "binary", &c.to_bytes()?)?;
    write("qr_challenge", "text", challenge::to_text(&c)?.as_bytes())?;
    write(
        "qr_challenge",
        "base45",
        latchkey_crypto::base45::encode(b"ietf!").as_bytes(),
    )?;
    Ok(())
}

fn bundles() -> Res {
    let b = Bundle {
        version: latchkey_proto::offline::BUNDLE_VERSION,
        id: "b1".into(),
        user: "alice".into(),
        machine_id: "m1".into(),
        client_ids: vec!["login".into(), "unlock".into()],
        issued_at: 1_700_000_000,
        not_after: 1_700_600_000,
        max_logins: 10,
        max_failures: 5,
        apps: vec![OfflineApp {
            id: "app1".into(),
            x25519_public: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
            device_name: "phone".into(),
        }],
        fido2: vec![],
        smartcards: vec![],
        methods: [("login".to_string(), vec![latchkey_proto::Method::Push])].into(),
    };
    let payload = b.encode()?;
    write("offline_bundle", "bundle", &payload)?;
    let key = SigningKeyPair::from_seed(&[1u8; 32])?;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let signed = SignedBundle {
        payload: b64.encode(&payload),
        signature: b64.encode(latchkey_crypto::bundle::sign(&key, &payload)),
    };
    write("offline_bundle", "signed", &serde_json::to_vec(&signed)?)?;
    let answer = json!({"result": "success", "message": "ok", "offline_bundle": signed,
        "offline_forget": ["bob"]});
    write("offline_bundle", "answer", answer.to_string().as_bytes())?;
    Ok(())
}

fn frames() -> Res {
    let requests = [
        AgentRequest::Begin {
            version: agent::AGENT_PROTOCOL_VERSION,
            user: "alice".into(),
            service: "sudo".into(),
            client_id: None,
            rhost: Some("192.0.2.1".into()),
            tty: Some("/dev/pts/1".into()),
        },
        AgentRequest::Answer {
            text: "123456".into(),
        },
        AgentRequest::Session {
            event: SessionEvent::Open,
            user: "alice".into(),
            service: "sshd".into(),
            tty: None,
            rhost: None,
            session_id: Some("7".into()),
        },
        AgentRequest::Status,
    ];
    for (i, r) in requests.iter().enumerate() {
        write(
            "agent_frame",
            &format!("request{i}"),
            &agent::encode_frame(r)?,
        )?;
    }
    let replies = [
        AgentReply::Step(Step::Prompt {
            label: "Code:".into(),
            echo: false,
        }),
        AgentReply::Step(Step::Qr {
            payload: "LK1:ABC".into(),
            text: "Scan".into(),
        }),
        AgentReply::Account {
            allowed: true,
            message: String::new(),
        },
    ];
    for (i, r) in replies.iter().enumerate() {
        write(
            "agent_frame",
            &format!("reply{i}"),
            &agent::encode_frame(r)?,
        )?;
    }
    Ok(())
}

/// CTAP2 answers as a key sends them (status byte stripped, as the parsers get them), built
/// with the agent's CBOR crate in the layouts of CTAP 2.1 §6.
fn ctap2(auth_data: &[u8]) -> Res {
    let mut e = Encoder::new(Vec::new());
    e.map(4)?.u8(1)?.array(2)?.str("U2F_V2")?.str("FIDO_2_0")?;
    e.u8(3)?.bytes(&[0x11; 16])?;
    e.u8(4)?
        .map(2)?
        .str("clientPin")?
        .bool(true)?
        .str("uv")?
        .bool(false)?;
    e.u8(6)?.array(1)?.u8(1)?;
    write("ctap2_cbor", "get_info", e.writer())?;
    let mut e = Encoder::new(Vec::new());
    e.map(3)?
        .u8(1)?
        .map(2)?
        .str("id")?
        .bytes(b"cred")?
        .str("type")?
        .str("public-key")?;
    e.u8(2)?
        .bytes(auth_data)?
        .u8(3)?
        .bytes(&[0x30, 0x06, 2, 1, 1, 2, 1, 1])?;
    write("ctap2_cbor", "get_assertion", e.writer())?;
    let mut e = Encoder::new(Vec::new());
    e.map(3)?.u8(1)?.str("packed")?.u8(2)?.bytes(auth_data)?;
    e.u8(3)?
        .map(2)?
        .str("alg")?
        .i8(-7)?
        .str("sig")?
        .bytes(&[0x30, 0x06, 2, 1, 1, 2, 1, 1])?;
    write("ctap2_cbor", "make_credential", e.writer())?;
    let mut e = Encoder::new(Vec::new());
    latchkey_agent::fido2::ctap2::encode_agreement_key(&mut e, &es256_point())?;
    write("ctap2_cbor", "agreement_key", e.writer())?;
    // One message in CTAPHID reports (init + continuation).
    let reports = latchkey_agent::fido2::ctaphid::encode(0x0102_0304, 0x10, &[0x55; 100])?;
    write("ctap2_cbor", "ctaphid", &reports.concat())?;
    Ok(())
}

fn es256_point() -> [u8; 65] {
    let mut p = [0x42; 65];
    p[0] = 4;
    p
}

/// Authenticator data with attested credential data (registration) and without (assertion).
fn webauthn_inputs() -> Res<Vec<u8>> {
    let key = CoseKey::Es256 {
        point: es256_point(),
    }
    .to_cbor();
    let rp = webauthn::sha256(b"latchkey");
    let mut plain = rp.to_vec();
    plain.extend_from_slice(&[webauthn::FLAG_UP, 0, 0, 0, 1]);
    let mut attested = rp.to_vec();
    attested.extend_from_slice(&[webauthn::FLAG_UP | webauthn::FLAG_AT, 0, 0, 0, 0]);
    attested.extend_from_slice(&[0x11; 16]);
    attested.extend_from_slice(&[0, 4]);
    attested.extend_from_slice(b"cred");
    attested.extend_from_slice(&key);
    write("webauthn_authdata", "auth_data", &attested)?;
    write("webauthn_authdata", "cose_key", &key)?;
    let mut e = Encoder::new(Vec::new());
    e.map(3)?.str("fmt")?.str("none")?.str("attStmt")?.map(0)?;
    e.str("authData")?.bytes(&attested)?;
    write("webauthn_authdata", "attestation_none", e.writer())?;
    // Assertion layout of the target: key length byte, COSE key, authenticator data.
    let mut assertion = vec![u8::try_from(key.len())?];
    assertion.extend_from_slice(&key);
    assertion.extend_from_slice(&plain);
    write("webauthn_authdata", "assertion", &assertion)?;
    let cd = webauthn::client_data_json(TYPE_GET, b"fuzz challenge", ORIGIN_AGENT);
    write("webauthn_authdata", "client_data", cd.as_bytes())?;
    Ok(plain)
}

fn certificates() -> Res {
    for (name, alg) in [
        ("p256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("ed25519", &rcgen::PKCS_ED25519),
    ] {
        let key = rcgen::KeyPair::generate_for(alg)?;
        let mut params = rcgen::CertificateParams::new(vec!["card.example".to_string()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let cert = params.self_signed(&key)?;
        write("x509_cert", &format!("{name}.der"), cert.der())?;
        write("x509_cert", &format!("{name}.pem"), cert.pem().as_bytes())?;
    }
    Ok(())
}

fn token_files() -> Res {
    let dir = tempfile::tempdir()?;
    let params = latchkey_token::KdfParams {
        memory_kib: latchkey_token::KdfParams::MIN_MEMORY_KIB,
        iterations: 2,
        parallelism: 1,
    };
    let f = latchkey_token::TokenFile::create(&dir.path().join("t"), b"fuzz passphrase", params)?;
    write("token_file", "empty_file", &f.to_bytes()?)?;
    let zero = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let contents = json!({"accounts": [{
        "name": "alice@server", "server": "https://server:8443", "pin": format!("sha256:{}", "0".repeat(64)),
        "user": "alice", "app_id": "app1", "device_name": "laptop", "registered_at": 1_700_000_000,
        "app_key": "lka_example", "x25519_secret": zero, "ed25519_seed": zero,
        "otpauth_uri": "otpauth://totp/latchkey:alice?secret=GEZDGNBVGY3TQOJQ&issuer=latchkey",
    }]});
    write("token_file", "contents", contents.to_string().as_bytes())?;
    let link = format!(
        "https://server:8443/app/register?code=abc123&pin=sha256:{}",
        "0".repeat(64)
    );
    write("token_file", "link", link.as_bytes())?;
    Ok(())
}

fn http() -> Res {
    let seeds = [
        ("healthz", "- GET /healthz", json!(null)),
        (
            "user_add",
            "admin POST /v1/admin/users",
            json!({"name": "bob", "groups": ["ops"]}),
        ),
        ("user_show", "admin GET /v1/admin/users/alice", json!(null)),
        (
            "token_add",
            "admin POST /v1/admin/users/alice/tokens",
            json!({"kind": "totp", "digits": 6}),
        ),
        (
            "verify",
            "admin POST /v1/admin/users/alice/verify",
            json!({"code": "123456"}),
        ),
        (
            "policy",
            "admin PATCH /v1/admin/policies/login",
            json!({"settings": {"methods": "otp,push"}}),
        ),
        (
            "join_token",
            "admin POST /v1/admin/join-tokens",
            json!({"expires_in": 60, "note": "x"}),
        ),
        ("audit", "admin GET /v1/admin/audit?limit=5", json!(null)),
        (
            "login",
            "machine POST /v1/login/start",
            json!({"user": "alice", "client_id": "login", "tty": "pts/1"}),
        ),
        (
            "otp",
            "machine POST /v1/login/tx1/otp",
            json!({"code": "123456"}),
        ),
        (
            "account",
            "machine POST /v1/account/check",
            json!({"user": "alice", "client_id": "login"}),
        ),
        (
            "events",
            "machine POST /v1/events",
            json!({"events": [{"id": "0190a8e0-0000-7000-8000-000000000000",
            "time_ms": 1_700_000_000_000i64, "kind": "login_success", "user": "alice"}]}),
        ),
        (
            "app_link",
            "admin POST /v1/admin/users/alice/apps",
            json!({"device_name": "phone"}),
        ),
        ("fido2", "admin POST /v1/admin/users/alice/fido2", json!({})),
    ];
    for (name, line, body) in seeds {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        write("http_router", name, format!("{line}\n{body}").as_bytes())?;
    }
    Ok(())
}

libfuzzer_sys::fuzz_target!(init: write_and_exit(), |_data: &[u8]| {});

/// Typed `()` so the macro's code after the init hook is not unreachable to the compiler.
fn write_and_exit() {
    let code = match all() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("seeds: {e}");
            1
        }
    };
    std::process::exit(code)
}

fn all() -> Res {
    challenges()?;
    bundles()?;
    frames()?;
    let plain = webauthn_inputs()?;
    ctap2(&plain)?;
    certificates()?;
    token_files()?;
    http()?;
    Ok(())
}
