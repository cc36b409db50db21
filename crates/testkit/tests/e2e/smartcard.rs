//! Smartcard logins end to end: SoftHSM2 tokens made by the test (keys generated on the
//! token, certificates issued by a test CA), a real latchkeyd, a real agent signing on the
//! token through PKCS#11, and the real PAM module in the real libpam.

use crate::support::hw::{agent_with_card, register_card};
use crate::support::last;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_proto::admin::TokenInfo;
use latchkey_proto::agent::Step;
use latchkey_proto::login::{LoginStart, LoginStartResult, LoginStepResult};
use latchkey_proto::smartcard::{LoginSmartcard, SmartcardCodeCreate, SmartcardEnrollCode};
use latchkey_proto::{Method, TokenKind};
use latchkey_testkit::TestServer;
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::pam_harness::{MsgStyle, PamCode, PamHarness};
use latchkey_testkit::softhsm::{self, Card, KeyKind, PIN, TestCa, Validity, unix_now};

/// A fresh token with a key of `kind` and a current certificate from `ca`.
fn card(label: &str, kind: KeyKind, ca: &TestCa, subject: &str) -> (Card, String) {
    let mut c = Card::new(label, kind).unwrap();
    let pem = c.issue(ca, subject, Validity::current()).unwrap();
    (c, pem)
}

fn prompt_labels(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Prompt { label, echo } => {
                assert!(!echo, "PIN prompts never echo");
                Some(label.clone())
            }
            _ => None,
        })
        .collect()
}

/// Starts a login as a machine would and returns (tx, challenge, fingerprints).
async fn start(
    client: &latchkey_client::Client,
    user: &str,
) -> (String, Vec<u8>, Vec<String>, Vec<Method>) {
    let req = LoginStart {
        user: user.parse().unwrap(),
        client_id: "login".parse().unwrap(),
        rhost: None,
        tty: None,
        enroll: false,
    };
    let res: LoginStartResult = client.post("/v1/login/start", &req).await.unwrap();
    let LoginStartResult::Challenge {
        tx,
        methods,
        smartcard,
        ..
    } = res
    else {
        panic!("expected a challenge, got {res:?}")
    };
    let sc = smartcard.expect("a smartcard request");
    (
        tx.into_string(),
        B64.decode(sc.challenge).unwrap(),
        sc.fingerprints,
        methods,
    )
}

/// Signs on the card as the agent does.
async fn sign(fingerprint: &str, challenge: &[u8]) -> LoginSmartcard {
    let module = softhsm::module().unwrap();
    let (fp, ch) = (fingerprint.to_string(), challenge.to_vec());
    let sig = tokio::task::spawn_blocking(move || {
        latchkey_agent::smartcard::sign_challenge(&module, &fp, PIN, &ch)
    })
    .await
    .unwrap()
    .unwrap();
    LoginSmartcard {
        fingerprint: fingerprint.to_string(),
        signature: B64.encode(sig.bytes),
        mechanism: sig.mechanism.as_str().into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_card_logs_in_through_the_agent() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("alice", &[]).await.unwrap();
    let ca = TestCa::new("Test CA").unwrap();
    let (c, pem) = card("alice-rsa", KeyKind::Rsa2048, &ca, "Alice");
    let t = register_card(&srv, "alice", &pem).await.unwrap();
    assert_eq!(t.kind, TokenKind::Smartcard);
    let info = t.smartcard.clone().unwrap();
    assert_eq!(info.fingerprint, c.fingerprint());
    assert_eq!(info.subject, "CN=Alice");
    // Listed with the user's tokens, certificate included.
    let list: Vec<TokenInfo> = srv
        .admin()
        .unwrap()
        .get("/v1/admin/users/alice/tokens")
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].smartcard.as_ref().unwrap().fingerprint,
        c.fingerprint()
    );

    let agent = agent_with_card(&srv).await;
    let steps = agent.login("alice", "login", &[PIN]).await.unwrap();
    assert_eq!(
        prompt_labels(&steps),
        vec!["Smartcard PIN for alice-rsa (CN=Alice):".to_string()]
    );
    assert!(
        matches!(last(&steps), Step::Success { message } if message == "Smartcard verified"),
        "{steps:?}"
    );
    assert_eq!(srv.login_count("smartcard", "success").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec_card_logs_in_through_pam_module_and_libpam() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("bob", &[]).await.unwrap();
    let ca = TestCa::new("Test CA").unwrap();
    let (_c, pem) = card("bob-ec", KeyKind::EcP256, &ca, "Bob");
    register_card(&srv, "bob", &pem).await.unwrap();
    let agent = agent_with_card(&srv).await;
    let conf = agent.pam_conf("login").unwrap();
    let (code, prompts, styles) = tokio::task::spawn_blocking(move || {
        let mut pam = PamHarness::new("login", "bob", conf.path()).unwrap();
        pam.answer(PIN);
        let code = pam.authenticate(0);
        let styles: Vec<MsgStyle> = pam.messages().iter().map(|m| m.style).collect();
        (code, pam.prompts(), styles)
    })
    .await
    .unwrap();
    assert_eq!(code, PamCode::SUCCESS);
    assert_eq!(
        prompts,
        vec!["Smartcard PIN for bob-ec (CN=Bob):".to_string()]
    );
    assert!(styles.contains(&MsgStyle::PromptEchoOff), "{styles:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pin_is_reported_then_the_right_pin_passes_through_pam() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("carol", &[]).await.unwrap();
    let ca = TestCa::new("Test CA").unwrap();
    let (_c, pem) = card("carol-ec", KeyKind::EcP256, &ca, "Carol");
    register_card(&srv, "carol", &pem).await.unwrap();
    let agent = agent_with_card(&srv).await;
    let conf = agent.pam_conf("sudo").unwrap();
    let (code, infos) = tokio::task::spawn_blocking(move || {
        let mut pam = PamHarness::new("sudo", "carol", conf.path()).unwrap();
        pam.answer("0000").answer(PIN);
        let code = pam.authenticate(0);
        let mut infos = pam.texts(MsgStyle::TextInfo);
        infos.extend(pam.texts(MsgStyle::ErrorMsg));
        (code, infos)
    })
    .await
    .unwrap();
    assert_eq!(code, PamCode::SUCCESS);
    // SoftHSM sets CKF_USER_PIN_COUNT_LOW after a wrong PIN (it never locks the PIN, so the
    // locked-PIN path is not reachable with it; its wording is unit-tested in the agent).
    assert!(
        infos
            .iter()
            .any(|t| t == "Wrong smartcard PIN: few tries left before the card locks"),
        "{infos:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_wrong_pins_end_the_login() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("dora", &[]).await.unwrap();
    let ca = TestCa::new("Test CA").unwrap();
    let (_c, pem) = card("dora-rsa", KeyKind::Rsa2048, &ca, "Dora");
    register_card(&srv, "dora", &pem).await.unwrap();
    let agent = agent_with_card(&srv).await;
    let steps = agent
        .login("dora", "login", &["1", "2", "3", PIN])
        .await
        .unwrap();
    assert_eq!(prompt_labels(&steps).len(), 3);
    assert!(
        matches!(last(&steps), Step::Failure { reason } if reason.starts_with("Wrong smartcard PIN")),
        "{steps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_is_refused_by_agent_and_server() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("erin", &[]).await.unwrap();
    let ca = TestCa::new("Test CA").unwrap();
    let mut c = Card::new("erin-ec", KeyKind::EcP256).unwrap();
    let now = unix_now();
    let pem = c
        .issue(
            &ca,
            "Erin",
            Validity {
                not_before: now - 60,
                not_after: now + 2,
            },
        )
        .unwrap();
    register_card(&srv, "erin", &pem).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;

    // The agent sees the date on the card's certificate and says so.
    let agent = agent_with_card(&srv).await;
    let steps = agent.login("erin", "login", &[PIN]).await.unwrap();
    assert!(
        matches!(last(&steps), Step::Failure { reason } if reason.starts_with("Smartcard certificate expired on")),
        "{steps:?}"
    );
    // The server refuses a valid signature made with the expired certificate's key.
    let (_, client) = srv.join_machine("m1").await.unwrap();
    let (tx, challenge, fps, _) = start(&client, "erin").await;
    assert_eq!(fps, vec![c.fingerprint()]);
    let answer = sign(&c.fingerprint(), &challenge).await;
    let res: LoginStepResult = client
        .post(&format!("/v1/login/{tx}/smartcard"), &answer)
        .await
        .unwrap();
    assert!(
        matches!(&res, LoginStepResult::Deny { reason } if reason.contains("certificate expired on")),
        "{res:?}"
    );
    // And registering an expired certificate is refused.
    let err = register_card(&srv, "erin", &pem).await.unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_ca_is_refused_at_registration_and_at_login() {
    let trusted = TestCa::new("Corp CA").unwrap();
    let rogue = TestCa::new("Rogue CA").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, trusted.pem()).unwrap();

    // Registered while no CA was configured; then the admin sets smartcard_ca.
    let mut srv = TestServer::start().await.unwrap();
    srv.add_user("fay", &[]).await.unwrap();
    srv.add_user("gus", &[]).await.unwrap();
    let (_rogue_card, rogue_pem) = card("fay-rogue", KeyKind::EcP256, &rogue, "Fay");
    register_card(&srv, "fay", &rogue_pem).await.unwrap();
    srv.cfg.smartcard_ca = Some(ca_file.clone());
    srv.restart().await.unwrap();

    // Registration now refuses a certificate from another CA…
    let (_c2, rogue_pem2) = card("gus-rogue", KeyKind::Rsa2048, &rogue, "Gus");
    let err = register_card(&srv, "gus", &rogue_pem2).await.unwrap_err();
    assert!(
        err.to_string().contains("not issued by the trusted CA"),
        "{err}"
    );
    // …and a CA-issued one is accepted and logs in.
    let (_c3, good_pem) = card("gus-good", KeyKind::Rsa2048, &trusted, "Gus");
    register_card(&srv, "gus", &good_pem).await.unwrap();
    let agent = agent_with_card(&srv).await;
    let steps = agent.login("gus", "login", &[PIN]).await.unwrap();
    assert!(matches!(last(&steps), Step::Success { .. }), "{steps:?}");

    // The certificate registered before the CA was set is refused at login.
    let steps = agent.login("fay", "login", &[PIN]).await.unwrap();
    assert!(
        matches!(last(&steps), Step::Failure { reason }
            if reason == "Smartcard refused: its certificate was not issued by the trusted CA"),
        "{steps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_signature_and_another_users_card_count_as_failures() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy("login", &[("max_attempts", "2")])
        .await
        .unwrap();
    srv.add_user("hal", &[]).await.unwrap();
    srv.add_user("ivy", &[]).await.unwrap();
    let ca = TestCa::new("Test CA").unwrap();
    let (hal_card, hal_pem) = card("hal-ec", KeyKind::EcP256, &ca, "Hal");
    let (ivy_card, ivy_pem) = card("ivy-ec", KeyKind::EcP256, &ca, "Ivy");
    register_card(&srv, "hal", &hal_pem).await.unwrap();
    register_card(&srv, "ivy", &ivy_pem).await.unwrap();
    let (_, client) = srv.join_machine("m1").await.unwrap();

    let (tx, challenge, fps, methods) = start(&client, "hal").await;
    assert_eq!(fps, vec![hal_card.fingerprint()]);
    assert_eq!(
        methods,
        vec![Method::Smartcard],
        "no OTP offered without an OTP token"
    );
    // Ivy's card signs Hal's challenge: her certificate is not Hal's.
    let ivy_answer = sign(&ivy_card.fingerprint(), &challenge).await;
    let res: LoginStepResult = client
        .post(&format!("/v1/login/{tx}/smartcard"), &ivy_answer)
        .await
        .unwrap();
    assert!(
        matches!(
            res,
            LoginStepResult::Retry {
                attempts_left: 1,
                ..
            }
        ),
        "{res:?}"
    );
    // Hal's card signing something else: a wrong signature, the last attempt.
    let mut bad = sign(&hal_card.fingerprint(), b"not the challenge").await;
    let res: LoginStepResult = client
        .post(&format!("/v1/login/{tx}/smartcard"), &bad)
        .await
        .unwrap();
    assert!(matches!(res, LoginStepResult::Deny { .. }), "{res:?}");
    // The transaction is over, even with a good signature now.
    bad = sign(&hal_card.fingerprint(), &challenge).await;
    let res: LoginStepResult = client
        .post(&format!("/v1/login/{tx}/smartcard"), &bad)
        .await
        .unwrap();
    assert!(matches!(res, LoginStepResult::Deny { .. }), "{res:?}");
    let user: latchkey_proto::admin::User = srv
        .admin()
        .unwrap()
        .get("/v1/admin/users/hal")
        .await
        .unwrap();
    let audit = srv.audit("hal").await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "login.smartcard"
                && a.detail.contains("not registered to this user")),
        "{audit:?}"
    );
    assert_eq!(user.token_count, 1);

    // A fresh transaction with the right card passes.
    let (tx, challenge, _, _) = start(&client, "hal").await;
    let ok = sign(&hal_card.fingerprint(), &challenge).await;
    let res: LoginStepResult = client
        .post(&format!("/v1/login/{tx}/smartcard"), &ok)
        .await
        .unwrap();
    assert!(matches!(res, LoginStepResult::Success { .. }), "{res:?}");
    // A signature is bound to its transaction: replayed on a new one, it is rejected.
    let (tx2, _, _, _) = start(&client, "hal").await;
    let res: LoginStepResult = client
        .post(&format!("/v1/login/{tx2}/smartcard"), &ok)
        .await
        .unwrap();
    assert!(matches!(res, LoginStepResult::Retry { .. }), "{res:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_decides_whether_the_smartcard_is_offered() {
    let srv = TestServer::start().await.unwrap();
    let uri = srv
        .add_user_with_token("jo", TokenKind::Totp)
        .await
        .unwrap();
    let ca = TestCa::new("Test CA").unwrap();
    let (_c, pem) = card("jo-ec", KeyKind::EcP256, &ca, "Jo");
    register_card(&srv, "jo", &pem).await.unwrap();
    let agent = agent_with_card(&srv).await;

    // Both allowed: the PIN prompt comes first, Enter goes on to the code.
    let code = latchkey_testkit::totp_now(&uri);
    let steps = agent.login("jo", "login", &["", &code]).await.unwrap();
    assert_eq!(
        prompt_labels(&steps),
        vec![
            "Smartcard PIN for jo-ec (CN=Jo) (or press Enter for another method):".to_string(),
            "One-time code for jo:".to_string()
        ]
    );
    assert!(matches!(last(&steps), Step::Success { .. }), "{steps:?}");

    // Policy allows only OTP: no smartcard prompt, no smartcard request.
    srv.set_policy("elevation", &[("methods", "otp")])
        .await
        .unwrap();
    let steps = agent.login("jo", "elevation", &[]).await.unwrap();
    assert_eq!(
        prompt_labels(&steps),
        vec!["One-time code for jo:".to_string()]
    );
    let (_, client) = srv.join_machine("m1").await.unwrap();
    let res: LoginStartResult = client
        .post(
            "/v1/login/start",
            &LoginStart {
                user: "jo".parse().unwrap(),
                client_id: "elevation".parse().unwrap(),
                rhost: None,
                tty: None,
                enroll: false,
            },
        )
        .await
        .unwrap();
    let LoginStartResult::Challenge {
        methods, smartcard, ..
    } = res
    else {
        panic!("{res:?}")
    };
    assert_eq!(methods, vec![Method::Otp]);
    assert!(smartcard.is_none());

    // Policy allows only smartcards and the agent has no PKCS#11 module: a clear refusal.
    srv.set_policy("remote", &[("methods", "smartcard")])
        .await
        .unwrap();
    let bare = TestAgent::start(&srv).await.unwrap();
    let steps = bare.login("jo", "remote", &[PIN]).await.unwrap();
    assert_eq!(
        last(&steps),
        &Step::Failure {
            reason: "No smartcard found: insert your card".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_without_the_registered_certificate_is_named() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("kim", &[]).await.unwrap();
    let ca = TestCa::new("Test CA").unwrap();
    // Kim's registered certificate is not on any card present.
    let mut other = Card::new("kim-old", KeyKind::EcP256).unwrap();
    let pem = other.issue(&ca, "Kim", Validity::current()).unwrap();
    register_card(&srv, "kim", &pem).await.unwrap();
    other.issue(&ca, "Kim (new)", Validity::current()).unwrap();
    let agent = agent_with_card(&srv).await;
    let steps = agent.login("kim", "login", &[PIN]).await.unwrap();
    assert!(
        matches!(last(&steps), Step::Failure { reason } if reason.starts_with("No registered certificate on the smartcard")),
        "{steps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_enrolls_the_card_with_a_one_time_code() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("lee", &[]).await.unwrap();
    srv.add_user("max", &[]).await.unwrap();
    let ca = TestCa::new("Test CA").unwrap();
    let (c, _) = card("lee-rsa", KeyKind::Rsa2048, &ca, "Lee");
    let agent = agent_with_card(&srv).await;
    let code: SmartcardEnrollCode = srv
        .admin()
        .unwrap()
        .post(
            "/v1/admin/users/lee/smartcards/enroll",
            &SmartcardCodeCreate::default(),
        )
        .await
        .unwrap();
    let opts = |user: &str, code: &str| latchkey_agent::smartcard::enroll::EnrollOptions {
        user: user.parse().unwrap(),
        code: code.into(),
        module: None,
        slot: Some(c.slot.id()),
        id: None,
        label: Some("badge".into()),
    };
    // The code is bound to its user.
    let err = latchkey_agent::smartcard::enroll::enroll(
        &agent.config_dir,
        &opts("max", code.code.expose()),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("enrollment code"), "{err}");
    let t = latchkey_agent::smartcard::enroll::enroll(
        &agent.config_dir,
        &opts("lee", code.code.expose()),
    )
    .await
    .unwrap();
    assert_eq!(t.user, "lee");
    assert_eq!(t.label, "badge");
    assert_eq!(t.smartcard.unwrap().fingerprint, c.fingerprint());
    // Used once.
    let err = latchkey_agent::smartcard::enroll::enroll(
        &agent.config_dir,
        &opts("lee", code.code.expose()),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("enrollment code"), "{err}");

    let steps = agent.login("lee", "login", &[PIN]).await.unwrap();
    assert!(matches!(last(&steps), Step::Success { .. }), "{steps:?}");
}
