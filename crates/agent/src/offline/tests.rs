//! The agent's side of bundles and challenges, without a server: what it stores, what it
//! refuses, and that arbitrary input never panics it.

use super::*;
use latchkey_crypto::keys::SigningKeyPair;
use latchkey_proto::offline::{BUNDLE_VERSION, OfflineApp};
use proptest::prelude::*;

struct Fixture {
    server: SigningKeyPair,
    offline: Offline,
    app_secret: [u8; 32],
}

fn fixture() -> Fixture {
    let server = SigningKeyPair::generate().unwrap();
    let cfg: AgentConfig = toml::from_str(&format!(
        "servers = [\"https://a\"]\nmachine_id = \"m1\"\nserver_signing_key = \"{}\"\n",
        B64.encode(server.public_bytes())
    ))
    .unwrap();
    let db = Arc::new(AgentDb::in_memory().unwrap());
    let offline = Offline::new(&cfg, db, Arc::new(Clock::default())).unwrap();
    Fixture {
        server,
        offline,
        app_secret: [5u8; 32],
    }
}

impl Fixture {
    fn bundle(&self) -> Bundle {
        sample_bundle(self.offline.now(), &self.app_secret)
    }

    fn sign_with(&self, key: &SigningKeyPair, b: &Bundle) -> SignedBundle {
        let payload = b.encode().unwrap();
        SignedBundle {
            payload: B64.encode(&payload),
            signature: B64.encode(latchkey_crypto::bundle::sign(key, &payload)),
        }
    }

    fn signed(&self, b: &Bundle) -> SignedBundle {
        self.sign_with(&self.server, b)
    }

    /// Opens a challenge payload as the token app would.
    fn code_of(&self, ch: &OfflineChallenge) -> String {
        let c = latchkey_crypto::challenge::from_text(&ch.payload).unwrap();
        latchkey_crypto::challenge::open(&self.app_secret, &c)
            .unwrap()
            .to_string()
    }
}

#[test]
fn stores_a_good_bundle_and_refuses_every_bad_one() {
    let f = fixture();
    let b = f.bundle();
    assert!(f.offline.store(&f.signed(&b), "alice").is_ok());
    assert!(f.offline.db.bundle_get("alice").unwrap().is_some());

    let other = SigningKeyPair::generate().unwrap();
    assert_eq!(
        f.offline.store(&f.sign_with(&other, &b), "alice"),
        Err(BundleError::Signature)
    );
    let mut tampered = f.signed(&b);
    let mut raw = B64.decode(&tampered.payload).unwrap();
    raw[10] ^= 1;
    tampered.payload = B64.encode(raw);
    assert_eq!(
        f.offline.store(&tampered, "alice"),
        Err(BundleError::Signature)
    );
    let unsigned = SignedBundle {
        payload: f.signed(&b).payload,
        signature: String::new(),
    };
    assert_eq!(
        f.offline.store(&unsigned, "alice"),
        Err(BundleError::Signature)
    );
    assert!(matches!(
        f.offline.store(&f.signed(&b), "bob"),
        Err(BundleError::OtherUser(_))
    ));
    let mut m = b.clone();
    m.machine_id = "m2".into();
    assert!(matches!(
        f.offline.store(&f.signed(&m), "alice"),
        Err(BundleError::OtherMachine(_))
    ));
    let mut e = b.clone();
    e.issued_at -= 10 * 86_400;
    e.not_after = f.offline.now() - 1;
    assert_eq!(
        f.offline.store(&f.signed(&e), "alice"),
        Err(BundleError::Expired)
    );
}

#[test]
fn forget_list_wipes_before_a_new_bundle_is_stored() {
    let f = fixture();
    f.offline.store(&f.signed(&f.bundle()), "alice").unwrap();
    f.offline.absorb(
        "bob",
        &OfflineAttachment {
            offline_bundle: None,
            offline_forget: vec!["alice".into()],
        },
    );
    assert!(f.offline.db.bundle_get("alice").unwrap().is_none());
}

#[test]
fn challenge_is_single_use_and_counts_toward_the_limits() {
    let f = fixture();
    f.offline.store(&f.signed(&f.bundle()), "alice").unwrap();
    // One attempt view for the whole test: it collects every outcome decided.
    let attempt = f.offline.attempt();
    let offline = &attempt;
    let ch = offline.begin("alice", "login").unwrap();
    let code = f.code_of(&ch);
    assert_eq!(code.len(), 8);
    assert!(matches!(offline.answer(&ch, &code), Verdict::Passed(_)));
    // Another context is not in the bundle.
    assert_eq!(
        offline.begin("alice", "elevation").unwrap_err().0,
        "Offline login is not allowed for elevation on this machine"
    );
    // Two wrong answers (max_failures 2) wipe the bundle.
    let ch = offline.begin("alice", "login").unwrap();
    assert!(matches!(offline.answer(&ch, "1"), Verdict::Failed(_)));
    let ch2 = offline.begin("alice", "login").unwrap();
    let right = f.code_of(&ch2);
    assert!(matches!(offline.answer(&ch2, "2"), Verdict::Failed(_)));
    assert!(f.offline.db.bundle_get("alice").unwrap().is_none());
    // The right code of a challenge made before the wipe does not help.
    assert!(matches!(offline.answer(&ch2, &right), Verdict::Failed(_)));
    let outcomes = attempt.take_outcomes();
    assert_eq!(outcomes.iter().filter(|o| o.success).count(), 1);
    assert!(outcomes.iter().filter(|o| !o.success).count() >= 3);
    assert!(attempt.take_outcomes().is_empty());
}

#[test]
fn an_expired_challenge_is_refused() {
    let f = fixture();
    f.offline.store(&f.signed(&f.bundle()), "alice").unwrap();
    let ch = f.offline.attempt().begin("alice", "login").unwrap();
    let code = f.code_of(&ch);
    f.offline.clock.set_offset(301);
    assert_eq!(
        f.offline.attempt().answer(&ch, &code),
        Verdict::Failed("Offline code expired: start the login again".into())
    );
}

#[test]
fn expiry_counts_the_time_the_guard_saw_even_within_the_skew() {
    let f = fixture();
    let mut b = f.bundle();
    b.not_after = f.offline.now() + 200;
    f.offline.store(&f.signed(&b), "alice").unwrap();
    // The agent saw time run 250 s on (past not_after), then the clock went back by 250 s,
    // less than the 5-minute skew: the bundle stays expired.
    f.offline.clock.set_offset(250);
    f.offline.tick();
    f.offline.clock.set_offset(0);
    let err = f.offline.attempt().begin("alice", "login").unwrap_err().0;
    assert!(
        err.starts_with("Offline login for alice expired on"),
        "{err}"
    );
}

#[test]
fn a_server_time_brings_a_guard_from_the_future_back() {
    let f = fixture();
    f.offline.store(&f.signed(&f.bundle()), "alice").unwrap();
    f.offline.clock.set_offset(8 * 86_400);
    f.offline.tick();
    f.offline.clock.set_offset(0);
    assert!(
        f.offline
            .attempt()
            .begin("alice", "login")
            .unwrap_err()
            .0
            .contains("went back")
    );
    let server_now = f.offline.now();
    assert!(!f.offline.guard_fits(server_now));
    f.offline.anchor(server_now);
    assert!(f.offline.guard_fits(server_now));
    f.offline.attempt().begin("alice", "login").unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_signed_bundles_never_panic_or_store(payload in "\\PC{0,200}", signature in "[A-Za-z0-9+/=]{0,100}") {
        let f = fixture();
        let s = SignedBundle { payload, signature };
        prop_assert!(f.offline.store(&s, "alice").is_err());
        prop_assert!(f.offline.db.bundle_get("alice").unwrap().is_none());
    }

    #[test]
    fn arbitrary_stored_rows_never_panic_and_never_grant(payload in "[A-Za-z0-9+/=]{0,200}", signature in "[A-Za-z0-9+/=]{0,100}") {
        let f = fixture();
        f.offline.db.bundle_put("alice", &payload, &signature, i64::MAX, 0).unwrap();
        prop_assert!(f.offline.attempt().begin("alice", "login").is_err());
    }
}

#[test]
fn fido2_counters_only_go_up_and_survive_a_new_bundle() {
    let f = fixture();
    let db = &f.offline.db;
    assert_eq!(db.fido2_counter("alice", "c1").unwrap(), None);
    assert!(db.fido2_counter_advance("alice", "c1", 5).unwrap());
    assert_eq!(db.fido2_counter("alice", "c1").unwrap(), Some(5));
    // Same or lower: refused, unchanged.
    assert!(!db.fido2_counter_advance("alice", "c1", 5).unwrap());
    assert!(!db.fido2_counter_advance("alice", "c1", 2).unwrap());
    assert_eq!(db.fido2_counter("alice", "c1").unwrap(), Some(5));
    assert!(db.fido2_counter_advance("alice", "c1", 6).unwrap());
    // Per user and credential.
    assert_eq!(db.fido2_counter("bob", "c1").unwrap(), None);
    assert_eq!(db.fido2_counter("alice", "c2").unwrap(), None);
    // A fresh bundle (online login) does not reset the agent's counter.
    f.offline.store(&f.signed(&f.bundle()), "alice").unwrap();
    assert_eq!(db.fido2_counter("alice", "c1").unwrap(), Some(6));
}

#[test]
fn per_client_methods_choose_the_offline_method() {
    let f = fixture();
    let mut b = f.bundle();
    // Old bundles (no map): the token app only.
    assert!(b.allows("login", latchkey_proto::Method::Push));
    assert!(!b.allows("login", latchkey_proto::Method::Fido2));
    b.methods
        .insert("login".into(), vec![latchkey_proto::Method::Fido2]);
    f.offline.store(&f.signed(&b), "alice").unwrap();
    // The token app is not allowed for this client_id: no QR challenge.
    let err = f.offline.attempt().begin("alice", "login").unwrap_err().0;
    assert!(err.contains("security key or smartcard"), "{err}");
}

/// alice's bundle for machine m1 and `login`, valid for a day from `now`, with one token app
/// (`app_secret`'s X25519 key): what the offline store's tests and the login engine's share.
pub(crate) fn sample_bundle(now: i64, app_secret: &[u8; 32]) -> Bundle {
    Bundle {
        version: BUNDLE_VERSION,
        id: "b1".into(),
        user: "alice".into(),
        machine_id: "m1".into(),
        client_ids: vec!["login".into()],
        issued_at: now - 10,
        not_after: now + 86_400,
        max_logins: 3,
        max_failures: 2,
        apps: vec![OfflineApp {
            id: "app1".into(),
            x25519_public: B64.encode(latchkey_crypto::hpke::public_key(app_secret)),
            device_name: "phone".into(),
        }],
        fido2: vec![],
        smartcards: vec![],
        methods: Default::default(),
    }
}
