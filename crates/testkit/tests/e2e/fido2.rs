//! FIDO2 security keys end to end: a software CTAP2 authenticator behind the agent's
//! SOCK_SEQPACKET HID transport, the real agent, the real latchkeyd, and (once) the real PAM
//! module in the real libpam.

use crate::support::hw::{agent_with_key, enroll_with, fido2_code, register_card, register_key};
use crate::support::{admin_cli, failure_reason, last};
use latchkey_agent::fido2::{self, AssertionRequest, Uv, ctap2::Authenticator};
use latchkey_crypto::webauthn::{b64url, b64url_decode};
use latchkey_proto::TokenKind;
use latchkey_proto::admin::TokenInfo;
use latchkey_proto::agent::Step;
use latchkey_proto::fido2::{Fido2Registered, LoginFido2};
use latchkey_proto::login::{LoginStart, LoginStartResult, LoginStepResult};
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::pam_harness::{MsgStyle, PamCode, PamHarness};
use latchkey_testkit::softkey::SoftKey;
use latchkey_testkit::{TestServer, totp_now};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_code_then_agent_enroll_then_login_with_the_key() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("alice", &[]).await.unwrap();
    let key = SoftKey::start().unwrap();
    let agent = agent_with_key(&srv, &key).await;

    // The admin's CLI prints the one-time code and the command to run.
    let shown = admin_cli(
        &srv,
        &["token", "add-fido2", "alice", "--label", "blue key"],
        None,
    )
    .await;
    let code = shown
        .split_whitespace()
        .find(|w| w.starts_with("lkf_"))
        .unwrap_or_else(|| panic!("no code in {shown}"))
        .to_string();
    assert!(
        shown.contains("latchkey-agent enroll-fido2 alice --code"),
        "{shown}"
    );

    // The user finishes on the machine with the key, with the real agent binary.
    let bin = latchkey_testkit::workspace_bin("latchkey-agent").unwrap();
    let dir = agent.config_dir.clone();
    let c = code.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .arg("--config-dir")
            .arg(&dir)
            .args(["enroll-fido2", "alice", "--code", &c])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Security key registered for alice"));
    assert_eq!(key.credential_count(), 1);

    // The code was single-use.
    let again = enroll_with(&agent, "alice", code, None).await.unwrap_err();
    assert!(
        again.contains("unknown, already used or expired"),
        "{again}"
    );

    let listed = admin_cli(&srv, &["token", "list", "alice"], None).await;
    assert!(
        listed.contains("fido2") && listed.contains("blue key"),
        "{listed}"
    );

    // Only a key is registered: the login goes straight to it.
    let steps = agent.login("alice", "login", &[]).await.unwrap();
    assert_eq!(
        steps,
        vec![
            Step::Info {
                text: "Touch your security key".into()
            },
            Step::Success {
                message: "Security key verified".into()
            }
        ]
    );
    assert_eq!(key.state().touches, 2);
    assert_eq!(srv.login_count("fido2", "success").await.unwrap(), 1);
    let tokens: Vec<TokenInfo> = srv
        .admin()
        .unwrap()
        .get("/v1/admin/users/alice/tokens")
        .await
        .unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].kind, TokenKind::Fido2);
    assert!(tokens[0].last_used_at.is_some());
    let a = srv.audit("alice").await.unwrap();
    assert!(
        a.iter().any(|e| e.action == "login.fido2"
            && e.result == "ok"
            && e.detail.contains("counter 2")),
        "{a:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pam_prompt_lists_the_key_and_the_code_and_enter_uses_the_key() {
    let srv = TestServer::start().await.unwrap();
    let uri = srv
        .add_user_with_token("carol", TokenKind::Totp)
        .await
        .unwrap();
    let key = SoftKey::start().unwrap();
    let agent = agent_with_key(&srv, &key).await;
    register_key(&srv, &agent, "carol", None).await;
    let conf = agent.pam_conf("sudo").unwrap();

    let confpath = conf.path().to_path_buf();
    let (code, prompts, infos) = tokio::task::spawn_blocking(move || {
        let mut pam = PamHarness::new("sudo", "carol", &confpath).unwrap();
        pam.answer("");
        let code = pam.authenticate(0);
        (code, pam.prompts(), pam.texts(MsgStyle::TextInfo))
    })
    .await
    .unwrap();
    assert_eq!(code, PamCode::SUCCESS);
    assert_eq!(
        prompts,
        vec![
            "Press Enter to use your security key, or type a one-time code for carol:".to_string()
        ]
    );
    assert!(
        infos.iter().any(|t| t == "Touch your security key"),
        "{infos:?}"
    );

    // The same prompt still takes a code.
    let confpath = conf.path().to_path_buf();
    let code = tokio::task::spawn_blocking(move || {
        let mut pam = PamHarness::new("sudo", "carol", &confpath).unwrap();
        pam.respond_with(move |_| Some(totp_now(&uri)));
        pam.authenticate(0)
    })
    .await
    .unwrap();
    assert_eq!(code, PamCode::SUCCESS);
    assert_eq!(
        key.state().touches,
        2,
        "the code login did not touch the key"
    );
}

/// A machine posting an assertion made by a key registered to *another* user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_credential_is_refused_and_counted_as_a_failure() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("alice", &[]).await.unwrap();
    srv.add_user("bob", &[]).await.unwrap();
    let alice_key = SoftKey::start().unwrap();
    let bob_key = SoftKey::start().unwrap();
    let alice_agent = agent_with_key(&srv, &alice_key).await;
    let bob_agent = agent_with_key(&srv, &bob_key).await;
    register_key(&srv, &alice_agent, "alice", None).await;
    let bob_cred = register_key(&srv, &bob_agent, "bob", None).await;

    // Through the agent: bob's key holds none of alice's credentials.
    let steps = bob_agent.login("alice", "login", &[]).await.unwrap();
    assert_eq!(
        failure_reason(&steps),
        "This security key is not registered for this account"
    );

    // Through the API: bob's key signs alice's challenge with bob's credential.
    let (_, m) = srv.join_machine("attacker").await.unwrap();
    let start: LoginStartResult = m
        .post(
            "/v1/login/start",
            &LoginStart {
                user: "alice".parse().unwrap(),
                client_id: "login".parse().unwrap(),
                rhost: None,
                tty: None,
                enroll: false,
            },
        )
        .await
        .unwrap();
    let LoginStartResult::Challenge { tx, fido2, .. } = start else {
        panic!("{start:?}")
    };
    let req = fido2.unwrap();
    assert_eq!(req.allow_credentials.len(), 1);
    assert_ne!(req.allow_credentials[0], bob_cred.credential_id);
    let challenge = b64url_decode(&req.challenge).unwrap();
    let bob_id = b64url_decode(&bob_cred.credential_id).unwrap();
    let spec = bob_key.spec();
    let a = tokio::task::spawn_blocking(move || {
        let mut auth = Authenticator::open(fido2::hid::open(&spec).unwrap()).unwrap();
        fido2::get_assertion(
            &mut auth,
            &AssertionRequest {
                rp_id: "latchkey",
                challenge: &challenge,
                allow_list: &[bob_id],
                uv: &Uv::None,
            },
            Instant::now() + Duration::from_secs(5),
            &mut || {},
        )
        .unwrap()
    })
    .await
    .unwrap();
    let answer = LoginFido2 {
        credential_id: b64url(&a.credential_id),
        authenticator_data: b64url(&a.authenticator_data),
        signature: b64url(&a.signature),
        client_data_json: b64url(a.client_data_json.as_bytes()),
    };
    let r: LoginStepResult = m
        .post(&format!("/v1/login/{tx}/fido2"), &answer)
        .await
        .unwrap();
    match r {
        LoginStepResult::Retry {
            attempts_left,
            message,
        } => {
            assert_eq!(attempts_left, 2);
            assert!(
                message.contains("not registered for this account"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let a = srv.audit("alice").await.unwrap();
    assert!(
        a.iter().any(|e| e.action == "login.fido2"
            && e.result == "fail"
            && e.detail.contains("credential of another user")),
        "{a:?}"
    );
    // A garbage signature for alice's own credential id is a wrong answer too.
    let mut forged = answer.clone();
    forged.credential_id = req.allow_credentials[0].clone();
    let r: LoginStepResult = m
        .post(&format!("/v1/login/{tx}/fido2"), &forged)
        .await
        .unwrap();
    assert!(
        matches!(
            r,
            LoginStepResult::Retry {
                attempts_left: 1,
                ..
            }
        ),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_counter_going_backwards_is_refused_as_a_clone_and_audited() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("dave", &[]).await.unwrap();
    let key = SoftKey::start().unwrap();
    let agent = agent_with_key(&srv, &key).await;
    register_key(&srv, &agent, "dave", None).await;
    let steps = agent.login("dave", "login", &[]).await.unwrap();
    assert!(matches!(last(&steps), Step::Success { .. }), "{steps:?}");
    // A copy of the key that has signed less: its counter is behind the server's.
    key.state().counter = 1;
    let steps = agent.login("dave", "login", &[]).await.unwrap();
    assert_eq!(
        failure_reason(&steps),
        "Login refused: this security key may have been cloned; contact your administrator"
    );
    let a = srv.audit("dave").await.unwrap();
    assert!(
        a.iter().any(|e| e.action == "login.fido2"
            && e.result == "deny"
            && e.detail
                .contains("sign counter did not increase (stored 2, received 2)")),
        "{a:?}"
    );
    // Once the key moves past the stored counter it works again (the admin decides about
    // the clone from the audit log).
    key.state().counter = 10;
    let steps = agent.login("dave", "login", &[]).await.unwrap();
    assert!(matches!(last(&steps), Step::Success { .. }), "{steps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uv_required_by_policy_and_not_done_is_refused() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy("login", &[("fido2.user_verification", "required")])
        .await
        .unwrap();
    srv.add_user("erin", &[]).await.unwrap();
    let key = SoftKey::start().unwrap();
    let agent = agent_with_key(&srv, &key).await;
    // Registered while the key still verified nobody (the `*` policy does not require UV).
    register_key(&srv, &agent, "erin", None).await;

    // A key with neither PIN nor built-in verification: the agent says so at once.
    let steps = agent.login("erin", "login", &[]).await.unwrap();
    assert_eq!(
        failure_reason(&steps),
        "This login needs a PIN or fingerprint on your security key, and none is set up"
    );

    // A key that claims built-in verification but does not do it: the server refuses.
    key.state().lie_about_uv = true;
    let steps = agent.login("erin", "login", &[]).await.unwrap();
    let reason = failure_reason(&steps);
    assert!(
        reason.contains("PIN or fingerprint verification is required"),
        "{reason} {steps:?}"
    );
    let a = srv.audit("erin").await.unwrap();
    assert!(
        a.iter().any(|e| e.action == "login.fido2"
            && e.detail
                .contains("user verification required by policy but not done")),
        "{a:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uv_required_with_a_pin_prompts_with_echo_off_and_wrong_pin_fails() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy("*", &[("fido2.user_verification", "required")])
        .await
        .unwrap();
    srv.add_user("frank", &[]).await.unwrap();
    let key = SoftKey::start().unwrap();
    key.state().pin = Some("4321".into());
    key.state().prefer_eddsa = true;
    let agent = agent_with_key(&srv, &key).await;
    let reg = register_key(&srv, &agent, "frank", Some("4321")).await;
    assert!(reg.user_verified);
    assert_eq!(reg.attestation, "packed-self");

    let steps = agent.login("frank", "login", &["4321"]).await.unwrap();
    assert_eq!(
        steps[0],
        Step::Prompt {
            label: "Security key PIN:".into(),
            echo: false
        }
    );
    assert!(matches!(last(&steps), Step::Success { .. }), "{steps:?}");

    let steps = agent.login("frank", "login", &["0000"]).await.unwrap();
    assert_eq!(
        failure_reason(&steps),
        "Wrong security key PIN (7 tries left before it locks)"
    );
    assert_eq!(key.state().pin_retries, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_nobody_touches_times_out_with_a_clear_message() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("gina", &[]).await.unwrap();
    let key = SoftKey::start().unwrap();
    let spec = key.spec();
    let agent = TestAgent::start_with(&srv, |s| {
        s.fido2_devices = vec![spec];
        s.fido2_timeout = Some("2s".into());
    })
    .await
    .unwrap();
    register_key(&srv, &agent, "gina", None).await;
    key.state().unresponsive = true;
    let t0 = Instant::now();
    let steps = agent.login("gina", "login", &[]).await.unwrap();
    assert_eq!(failure_reason(&steps), "No security key answered in 2 s");
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_without_fido2_does_not_offer_the_key() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("hank", &[]).await.unwrap();
    srv.add_user_with_token("ivy", TokenKind::Totp)
        .await
        .unwrap();
    let key = SoftKey::start().unwrap();
    let agent = agent_with_key(&srv, &key).await;
    register_key(&srv, &agent, "hank", None).await;
    register_key(&srv, &agent, "ivy", None).await;
    srv.set_policy("remote", &[("methods", "otp")])
        .await
        .unwrap();
    // hank has only a key, which `remote` does not allow.
    let steps = agent.login("hank", "remote", &[]).await.unwrap();
    assert_eq!(
        failure_reason(&steps),
        "Login refused: no MFA method is available for this account"
    );
    // ivy is asked for a code only.
    let steps = agent.login("ivy", "remote", &[]).await.unwrap();
    assert_eq!(
        steps[0],
        Step::Prompt {
            label: "One-time code for ivy:".into(),
            echo: false
        }
    );
    // Posting an assertion anyway is refused: the policy decides, not the client.
    let (_, m) = srv.join_machine("m").await.unwrap();
    let start: LoginStartResult = m
        .post(
            "/v1/login/start",
            &LoginStart {
                user: "ivy".parse().unwrap(),
                client_id: "remote".parse().unwrap(),
                rhost: None,
                tty: None,
                enroll: false,
            },
        )
        .await
        .unwrap();
    let LoginStartResult::Challenge { tx, fido2, .. } = start else {
        panic!("{start:?}")
    };
    assert!(fido2.is_none());
    let r: LoginStepResult = m
        .post(
            &format!("/v1/login/{tx}/fido2"),
            &LoginFido2 {
                credential_id: "AA".into(),
                authenticator_data: "AA".into(),
                signature: "AA".into(),
                client_data_json: "AA".into(),
            },
        )
        .await
        .unwrap();
    assert!(matches!(r, LoginStepResult::Deny { .. }), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_codes_are_bound_to_their_user_and_refuse_bad_attestations() {
    use latchkey_proto::fido2::{Fido2RegisterFinish, Fido2RegisterOptions, Fido2RegisterStart};
    let srv = TestServer::start().await.unwrap();
    srv.add_user("jay", &[]).await.unwrap();
    srv.add_user("kim", &[]).await.unwrap();
    let (_, m) = srv.join_machine("m").await.unwrap();
    let code = fido2_code(&srv, "jay").await;

    // Kim cannot use Jay's code.
    let err = m
        .post::<_, Fido2RegisterOptions>(
            "/v1/fido2/register/start",
            &Fido2RegisterStart {
                user: "kim".parse().unwrap(),
                code: code.clone().into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.api_code(), Some("fido2_registration_refused"), "{err}");

    // A finish before a start, and a finish with junk, are refused; the code survives both.
    let finish = |att: &str| Fido2RegisterFinish {
        user: "jay".parse().unwrap(),
        code: code.clone().into(),
        attestation_object: att.into(),
        client_data_json: b64url(b"{}"),
    };
    let err = m
        .post::<_, Fido2Registered>("/v1/fido2/register/finish", &finish("AAAA"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("Registration not started"),
        "{err}"
    );
    let opts: Fido2RegisterOptions = m
        .post(
            "/v1/fido2/register/start",
            &Fido2RegisterStart {
                user: "jay".parse().unwrap(),
                code: code.clone().into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(opts.rp_id, "latchkey");
    assert_eq!(opts.algorithms, vec![-7, -8]);
    let err = m
        .post::<_, Fido2Registered>("/v1/fido2/register/finish", &finish("AAAA"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Security key registration refused"),
        "{err}"
    );

    // The real key registers with the same code afterwards.
    let key = SoftKey::start().unwrap();
    let agent = agent_with_key(&srv, &key).await;
    let reg = enroll_with(&agent, "jay", code, None).await.unwrap();
    assert_eq!(reg.aaguid, "6c617463-686b-6579-2d73-6f66746b6579");
    // Registering the same key for jay again is refused by the key (exclude list).
    let err = register_err(&srv, &agent, "jay").await;
    assert_eq!(
        err,
        "This security key is already registered for this account"
    );
    let a = srv.audit("kim").await.unwrap();
    assert!(
        a.iter()
            .any(|e| e.action == "fido2.register" && e.result == "deny"),
        "{a:?}"
    );
}

async fn register_err(srv: &TestServer, agent: &TestAgent, user: &str) -> String {
    let code = fido2_code(srv, user).await;
    enroll_with(agent, user, code, None).await.unwrap_err()
}

/// A user with a smartcard and a security key, at a machine without a card reader module:
/// the card is skipped and the key answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_card_and_a_key_and_no_card_here_the_key_is_used() {
    use latchkey_testkit::softhsm::{Card, KeyKind, TestCa, Validity};
    let srv = TestServer::start().await.unwrap();
    srv.add_user("lee", &[]).await.unwrap();
    let ca = TestCa::new("Test CA").unwrap();
    let mut card = Card::new("lee-card", KeyKind::EcP256).unwrap();
    let pem = card.issue(&ca, "lee", Validity::current()).unwrap();
    register_card(&srv, "lee", &pem).await.unwrap();
    let key = SoftKey::start().unwrap();
    let agent = agent_with_key(&srv, &key).await;
    register_key(&srv, &agent, "lee", None).await;
    let steps = agent.login("lee", "login", &[]).await.unwrap();
    assert_eq!(
        steps,
        vec![
            Step::Info {
                text: "Touch your security key".into()
            },
            Step::Success {
                message: "Security key verified".into()
            }
        ]
    );
}
