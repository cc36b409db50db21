//! The generator: fixed keys, fixed ephemeral secrets, fixed inputs, and for each case what
//! it must give, stated from how it was made (not from opening it).

use super::*;
use ed25519_dalek::{Signer, SigningKey};
use latchkey_crypto::otpauth::OtpAuthUri;
use latchkey_crypto::{base45, challenge, hpke};
use latchkey_proto::app::{BadgeState, Decision, badge_signing_bytes, push_signing_bytes};
use latchkey_proto::offline::{CHALLENGE_PREFIX, Challenge};
use latchkey_token::offline::Unanswerable;

// RFC 9180 Appendix A.2.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305),
// mode_base, sequence number 0.
const RFC_SK_E: &str = "f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600";
const RFC_SK_R: &str = "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb";
const RFC_PK_R: &str = "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a";
const RFC_ENC: &str = "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a";
const RFC_INFO: &str = "4f6465206f6e2061204772656369616e2055726e";
const RFC_AAD: &str = "436f756e742d30";
const RFC_CT: &str =
    "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28";
const RFC_PT: &str = "4265617574792069732074727574682c20747275746820626561757479";

fn hpke_vector() -> HpkeVector {
    // The suite is the challenge's: the RFC's own ciphertext must come out of our sealing.
    let (enc, ct) = hpke::seal_with_ephemeral(
        &unhex32(RFC_PK_R),
        &unhex32(RFC_SK_E),
        &unhex(RFC_INFO),
        &unhex(RFC_AAD),
        &unhex(RFC_PT),
    )
    .unwrap();
    assert_eq!((hex(&enc), hex(&ct)), (RFC_ENC.into(), RFC_CT.into()));
    HpkeVector {
        sk_r: RFC_SK_R.into(),
        pk_r: RFC_PK_R.into(),
        enc: RFC_ENC.into(),
        info: RFC_INFO.into(),
        aad: RFC_AAD.into(),
        ct: RFC_CT.into(),
        pt: RFC_PT.into(),
    }
}

pub(crate) const NOW: i64 = 1_800_000_000;
pub(crate) const TTL: i64 = 300;

/// What one challenge is made of.
struct Made {
    sealed_to: [u8; 32],
    user: &'static str,
    host: &'static str,
    client_id: &'static str,
    expires_at: i64,
    digits: u8,
    code: u32,
    label: &'static str,
}

impl Made {
    fn login(label: &'static str, digits: u8, code: u32) -> Made {
        Made {
            sealed_to: alice_secret(),
            user: "alice",
            host: "laptop",
            client_id: "login",
            expires_at: NOW + TTL,
            digits,
            code,
            label,
        }
    }

    fn challenge(&self) -> Challenge {
        let ctx = challenge::Context {
            user: self.user,
            host: self.host,
            client_id: self.client_id,
            expires_at: u32::try_from(self.expires_at).unwrap(),
            nonce: fixed(&format!("nonce {}", self.label))[..8]
                .try_into()
                .unwrap(),
        };
        let public = hpke::public_key(&self.sealed_to);
        let ephemeral = fixed(&format!("ephemeral {}", self.label));
        challenge::seal_with_ephemeral(&public, &ctx, self.digits, self.code, &ephemeral).unwrap()
    }

    fn opened(&self) -> Expect {
        Expect::Opened {
            code: format!("{:0width$}", self.code, width = usize::from(self.digits)),
            user: self.user.into(),
            host: self.host.into(),
            client_id: self.client_id.into(),
            expires_at: self.expires_at,
        }
    }
}

fn alice_secret() -> [u8; 32] {
    fixed("x25519 alice")
}

fn text_of(bytes: &[u8]) -> String {
    format!("{CHALLENGE_PREFIX}{}", base45::encode(bytes))
}

fn refused(kind: Unanswerable) -> Expect {
    Expect::Refused {
        error: kind.as_str().into(),
    }
}

fn challenge_vector(
    name: &str,
    account_secret: [u8; 32],
    account_user: &str,
    now: i64,
    text: String,
    expect: Expect,
) -> ChallengeVector {
    ChallengeVector {
        name: name.into(),
        x25519_secret: hex(&account_secret),
        x25519_public: hex(&hpke::public_key(&account_secret)),
        account_user: account_user.into(),
        now,
        text,
        expect,
    }
}

fn challenge_vectors() -> Vec<ChallengeVector> {
    use Unanswerable::*;
    let alice = alice_secret();
    let mut out = Vec::new();
    let mut opens = |name: &str, m: &Made, now: i64| {
        let text = challenge::to_text(&m.challenge()).unwrap();
        out.push(challenge_vector(
            name,
            alice,
            "alice",
            now,
            text,
            m.opened(),
        ));
    };

    let normal = Made::login("normal", 8, 1_234_567);
    opens(
        "a normal login challenge (8 digits, a leading zero)",
        &normal,
        NOW,
    );
    opens(
        "6 digits with leading zeros, client_id unlock",
        &Made {
            client_id: "unlock",
            host: "build-07.corp.example",
            ..Made::login("unlock", 6, 42)
        },
        NOW,
    );
    opens(
        "9 digits with a leading zero, client_id elevation",
        &Made {
            client_id: "elevation",
            ..Made::login("elevation", 9, 12_345_678)
        },
        NOW,
    );
    opens(
        "client_id remote, a UTF-8 host name",
        &Made {
            client_id: "remote",
            host: "Büro-Rechner-東京",
            ..Made::login("remote", 8, 99_999_999)
        },
        NOW,
    );
    opens(
        "still valid in its last second (now == expires_at)",
        &Made::login("last-second", 8, 10_000_001),
        NOW + TTL,
    );
    // Copying from a terminal adds a line break; whitespace at the start is dropped too.
    let c = challenge::to_text(&normal.challenge()).unwrap();
    out.push(challenge_vector(
        "surrounded by a line break and leading spaces (copied from a terminal)",
        alice,
        "alice",
        NOW,
        format!("  {c}\r\n"),
        normal.opened(),
    ));

    let expired = Made::login("expired", 8, 55_555_555);
    out.push(challenge_vector(
        "expired one second ago",
        alice,
        "alice",
        NOW + TTL + 1,
        challenge::to_text(&expired.challenge()).unwrap(),
        refused(Expired),
    ));
    let other_key = Made {
        sealed_to: fixed("x25519 another app"),
        ..Made::login("other-key", 8, 33_333_333)
    };
    out.push(challenge_vector(
        "sealed to another app's key (the account holds x25519_secret)",
        alice,
        "alice",
        NOW,
        challenge::to_text(&other_key.challenge()).unwrap(),
        refused(UnknownKey),
    ));
    let for_bob = Made {
        user: "bob",
        ..Made::login("bob", 8, 44_444_444)
    };
    out.push(challenge_vector(
        "the account's key, but the challenge names user bob",
        alice,
        "alice",
        NOW,
        challenge::to_text(&for_bob.challenge()).unwrap(),
        refused(WrongUser),
    ));

    // Damaged on the way: the header is the HPKE aad, so any changed byte fails to open.
    let good = Made::login("damaged", 8, 76_543_210).challenge();
    let bytes = good.to_bytes().unwrap();
    let header_len = good.header().unwrap().len();
    let with = |at: usize, f: fn(u8) -> u8| {
        let mut b = bytes.clone();
        b[at] = f(b[at]);
        text_of(&b)
    };
    let changed = |at: usize| with(at, |b| b ^ 0x01);
    let mut damaged = |name: &str, text: String| {
        out.push(challenge_vector(
            name,
            alice,
            "alice",
            NOW,
            text,
            refused(Damaged),
        ));
    };
    // Layout: version 1, key_id 4, expires_at 4 (big-endian), nonce 8, then user, host,
    // client_id (a length byte each), enc 32, ciphertext with its tag.
    damaged("header changed: a nonce byte", changed(1 + 4 + 4));
    damaged(
        "header changed: expires_at moved 256 s later",
        with(1 + 4 + 2, |b| b.wrapping_add(1)),
    );
    damaged(
        "header changed: a byte of the host name",
        changed(header_len - "login".len() - 2),
    );
    damaged("enc changed", changed(header_len + 3));
    damaged("ciphertext changed", changed(header_len + 32));
    damaged("tag changed", changed(bytes.len() - 1));
    // Sealed properly, but what it holds is no code: the app must not show it.
    for (name, digits, code) in [
        (
            "opens, but the code has more digits than it says",
            6,
            1_000_000,
        ),
        ("opens, but says 5 digits", 5, 12_345),
        ("opens, but says 10 digits", 10, 123),
    ] {
        let m = Made::login(name, digits, code);
        damaged(name, challenge::to_text(&m.challenge()).unwrap());
    }

    let body = text_of(&bytes);
    let body = body.strip_prefix(CHALLENGE_PREFIX).unwrap();
    let mut wrong_version = bytes.clone();
    wrong_version[0] = 2;
    let mut trailing = bytes.clone();
    trailing.push(0);
    for (name, text) in [
        ("no LK1: prefix", body.to_string()),
        ("prefix in lower case", format!("lk1:{body}")),
        ("another prefix", format!("LK2:{body}")),
        ("nothing after the prefix", CHALLENGE_PREFIX.to_string()),
        (
            "not base45 (lower-case letters)",
            format!("{CHALLENGE_PREFIX}{}", body.to_ascii_lowercase()),
        ),
        (
            "not base45 (a character outside the alphabet)",
            format!("{CHALLENGE_PREFIX}{}#", &body[..body.len() - 1]),
        ),
        ("truncated by one byte", text_of(&bytes[..bytes.len() - 1])),
        ("truncated inside the header", text_of(&bytes[..12])),
        ("version byte 2", text_of(&wrong_version)),
        ("a byte after the tag", text_of(&trailing)),
    ] {
        out.push(challenge_vector(
            name,
            alice,
            "alice",
            NOW,
            text,
            refused(NotAChallenge),
        ));
    }
    out
}

fn push_vector(
    seed_label: &str,
    tx: &str,
    decision: Decision,
    number: Option<u32>,
    nonce: &str,
) -> PushVector {
    let seed = fixed(seed_label);
    let key = SigningKey::from_bytes(&seed);
    let msg = push_signing_bytes(tx, decision, number, nonce);
    PushVector {
        ed25519_seed: hex(&seed),
        ed25519_public: hex(key.verifying_key().as_bytes()),
        tx: tx.into(),
        decision: decision.as_str().into(),
        number,
        nonce: nonce.into(),
        signing_bytes: String::from_utf8(msg.clone()).unwrap(),
        signature: B64.encode(key.sign(&msg).to_bytes()),
    }
}

fn badge_vector(seed_label: &str, app_id: &str, state: BadgeState, time: i64) -> BadgeVector {
    let seed = fixed(seed_label);
    let key = SigningKey::from_bytes(&seed);
    let msg = badge_signing_bytes(app_id, state, time);
    BadgeVector {
        ed25519_seed: hex(&seed),
        ed25519_public: hex(key.verifying_key().as_bytes()),
        app_id: app_id.into(),
        state: state_str(state).into(),
        time,
        signing_bytes: String::from_utf8(msg.clone()).unwrap(),
        signature: B64.encode(key.sign(&msg).to_bytes()),
    }
}

fn state_str(s: BadgeState) -> &'static str {
    match s {
        BadgeState::In => "in",
        BadgeState::Out => "out",
    }
}

// RFC 6238 Appendix B seeds (ASCII) and its 8-digit, 30 s codes.
pub(crate) const SEED_SHA1: &[u8] = b"12345678901234567890";
const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";
const RFC6238: &[(u64, &str, &str, &str)] = &[
    (59, "94287082", "46119246", "90693936"),
    (1_111_111_109, "07081804", "68084774", "25091201"),
    (1_111_111_111, "14050471", "67062674", "99943326"),
    (1_234_567_890, "89005924", "91819424", "93441116"),
    (2_000_000_000, "69279037", "90698825", "38618901"),
    (20_000_000_000, "65353130", "77737706", "47863826"),
];

pub(crate) fn totp_uri(seed: &[u8], algorithm: &str, digits: u32, period: u32) -> String {
    format!(
        "otpauth://totp/latchkey:alice?secret={}&issuer=latchkey&algorithm={algorithm}&digits={digits}&period={period}",
        latchkey_crypto::base32_encode(seed)
    )
}

pub(crate) fn totp_code(uri: &str, time: u64) -> String {
    let u = OtpAuthUri::parse(uri).unwrap();
    latchkey_crypto::otp::totp(&u.secret, time, u.period, u.algorithm, u.digits)
}

fn totp_vectors() -> Vec<TotpVector> {
    let mut out = Vec::new();
    let algorithms = [
        ("SHA1", SEED_SHA1),
        ("SHA256", SEED_SHA256),
        ("SHA512", SEED_SHA512),
    ];
    for (i, (alg, seed)) in algorithms.iter().enumerate() {
        // The RFC's own table: 8 digits, 30 s.
        let uri = totp_uri(seed, alg, 8, 30);
        for row in RFC6238 {
            let rfc = [row.1, row.2, row.3][i];
            assert_eq!(totp_code(&uri, row.0), rfc, "RFC 6238 {alg} at {}", row.0);
            out.push(TotpVector {
                otpauth_uri: uri.clone(),
                time: row.0,
                code: rfc.into(),
            });
        }
        // 6 digits are the last six of the same value (RFC 4226 §5.3).
        let uri6 = totp_uri(seed, alg, 6, 30);
        for row in &RFC6238[..2] {
            let code = totp_code(&uri6, row.0);
            assert_eq!(code, [row.1, row.2, row.3][i][2..]);
            out.push(TotpVector {
                otpauth_uri: uri6.clone(),
                time: row.0,
                code,
            });
        }
        // A 60 s period: step = time / 60, so 59 s and 60 s are RFC 4226's counters 0 and 1.
        if *alg == "SHA1" {
            let uri60 = totp_uri(seed, alg, 6, 60);
            assert_eq!(totp_code(&uri60, 59), "755224");
            assert_eq!(totp_code(&uri60, 60), "287082");
        }
        for digits in [6, 8] {
            let uri60 = totp_uri(seed, alg, digits, 60);
            for t in [59, 60, 1_111_111_109, 2_000_000_000] {
                out.push(TotpVector {
                    code: totp_code(&uri60, t),
                    otpauth_uri: uri60.clone(),
                    time: t,
                });
            }
        }
    }
    // The short form a terminal's QR code shows: SHA1, 6 digits and 30 s left out.
    let compact = format!(
        "otpauth://totp/latchkey:alice?secret={}&issuer=latchkey",
        latchkey_crypto::base32_encode(SEED_SHA1)
    );
    let code = totp_code(&compact, 1_111_111_109);
    assert_eq!(code, "081804");
    out.push(TotpVector {
        otpauth_uri: compact,
        time: 1_111_111_109,
        code,
    });
    out
}

pub(crate) fn all() -> Vectors {
    // Ids as the server makes them: lowercase base32 of random bytes.
    let tx = "k7v3q2mxe5ghfa4tb6wn9c2dpl";
    let nonce = "x3frq7m2ok5vba9ce4wgh6tnzi";
    let app_id = "q4m2x7vk9bfa3tce";
    Vectors {
        about: ABOUT.into(),
        hpke_rfc9180_a21: hpke_vector(),
        challenges: challenge_vectors(),
        push: vec![
            push_vector("ed25519 alice", tx, Decision::Approve, Some(42), nonce),
            push_vector(
                "ed25519 alice",
                "m2b7k4q9x3vfe6ta5cgh2wndpz",
                Decision::Approve,
                Some(97),
                "b5n2v7c4x9m3kq6wa2te4fghz5",
            ),
            push_vector("ed25519 alice", tx, Decision::Deny, None, nonce),
            push_vector(
                "ed25519 another app",
                tx,
                Decision::Approve,
                Some(10),
                nonce,
            ),
        ],
        badge: vec![
            badge_vector("ed25519 alice", app_id, BadgeState::In, NOW),
            badge_vector("ed25519 alice", app_id, BadgeState::Out, NOW + 3600),
        ],
        totp: totp_vectors(),
    }
}
