//! Offline login with a security key (testkit's software CTAP2 authenticator) and with a
//! smartcard (SoftHSM2), end to end: a real latchkeyd issues the bundle at an online login
//! and is stopped; the real PAM module in the real libpam talks to the real agent, which
//! verifies with the bundle's cached COSE key or certificate.

use crate::support::hw::{agent_with_card, agent_with_key, register_card, register_key};
use crate::support::offline::decoded;
use crate::support::texts;
use latchkey_proto::agent::Step;
use latchkey_testkit::TestServer;
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::pam_harness::{ConvMessage, MsgStyle, PamCode, PamHarness};
use latchkey_testkit::softhsm::{Card, KeyKind, PIN, TestCa, Validity, unix_now};
use latchkey_testkit::softkey::SoftKey;
use std::path::PathBuf;

/// One PAM login of `user` answering every prompt with `answer`.
async fn pam_login(conf: PathBuf, user: &str, answer: &str) -> (PamCode, Vec<ConvMessage>) {
    let (user, answer) = (user.to_string(), answer.to_string());
    tokio::task::spawn_blocking(move || {
        let mut pam = PamHarness::new("login", &user, &conf).unwrap();
        pam.answer(&answer);
        let code = pam.authenticate(0);
        (code, pam.messages())
    })
    .await
    .unwrap()
}

/// (method, outcome, reason) of every offline event.
fn events(agent: &TestAgent) -> Vec<(String, String, String)> {
    agent
        .offline_outcomes()
        .unwrap()
        .into_iter()
        .map(|(_, method, outcome, reason)| (method, outcome, reason))
        .collect()
}

fn counter(agent: &TestAgent, user: &str) -> Option<u32> {
    agent
        .state_db()
        .unwrap()
        .query_row(
            "SELECT sign_count FROM offline_fido2_counters WHERE user_name = ?1",
            [user],
            |r| r.get(0),
        )
        .ok()
}

fn failures(agent: &TestAgent, user: &str) -> u32 {
    agent
        .state_db()
        .unwrap()
        .query_row(
            "SELECT failures FROM offline_bundles WHERE user_name = ?1",
            [user],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fido2_offline_login_then_a_cloned_counter_is_refused() {
    let mut srv = TestServer::start().await.unwrap();
    srv.add_user("dave", &[]).await.unwrap();
    let key = SoftKey::start().unwrap();
    let agent = agent_with_key(&srv, &key).await;
    register_key(&srv, &agent, "dave", None).await;
    let conf = agent.pam_conf("login").unwrap();
    let path = conf.path().to_path_buf();

    // Online with the key only (no token app): the bundle carries the credential.
    let (code, _) = pam_login(path.clone(), "dave", "").await;
    assert_eq!(code, PamCode::SUCCESS);
    let b = decoded(&agent, "dave");
    assert!(b.apps.is_empty(), "dave has no token app");
    assert_eq!(b.fido2.len(), 1, "{b:?}");
    assert_eq!(b.fido2[0].rp_id, "latchkey");
    let online_count = b.fido2[0].sign_count;
    assert!(online_count >= 1, "{b:?}");
    srv.stop().await;

    // Offline: the key answers a fresh challenge, checked with the cached COSE key.
    let (code, msgs) = pam_login(path.clone(), "dave", "").await;
    assert_eq!(code, PamCode::SUCCESS, "{msgs:?}");
    assert!(
        texts(&msgs, MsgStyle::TextInfo)
            .iter()
            .any(|t| t == "Offline: touch your security key"),
        "{msgs:?}"
    );
    let after = counter(&agent, "dave").expect("counter stored");
    assert!(after > online_count, "{after} > {online_count}");
    let ev = events(&agent);
    assert_eq!(ev.last().unwrap().0, "fido2");
    assert_eq!(ev.last().unwrap().1, "success", "{ev:?}");

    // A copy of the key that has signed less: refused, counted, recorded.
    key.state().counter = 1;
    let (code, msgs) = pam_login(path.clone(), "dave", "").await;
    assert_eq!(code, PamCode::AUTH_ERR, "{msgs:?}");
    assert!(
        texts(&msgs, MsgStyle::ErrorMsg).iter().any(|t| t
            == "Security key refused: its signature counter did not increase (possible cloned key)"),
        "{msgs:?}"
    );
    assert_eq!(failures(&agent, "dave"), 1);
    assert_eq!(counter(&agent, "dave"), Some(after), "never lowered");
    let ev = events(&agent);
    let (m, o, r) = ev.last().unwrap();
    assert_eq!((m.as_str(), o.as_str()), ("fido2", "failure"));
    assert!(r.contains("possible cloned key"), "{r}");

    // The same counter as the last accepted one is a clone too.
    key.state().counter = after - 1;
    let (code, _) = pam_login(path.clone(), "dave", "").await;
    assert_eq!(code, PamCode::AUTH_ERR);
    assert_eq!(failures(&agent, "dave"), 2);

    // Moving past the stored counter works again.
    key.state().counter = after + 10;
    let (code, msgs) = pam_login(path, "dave", "").await;
    assert_eq!(code, PamCode::SUCCESS, "{msgs:?}");
    assert_eq!(counter(&agent, "dave"), Some(after + 11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smartcard_offline_login_then_wrong_pin_and_expired_certificate() {
    let mut srv = TestServer::start().await.unwrap();
    srv.add_user("erin", &[]).await.unwrap();
    let ca = TestCa::new("Test CA").unwrap();
    let mut c = Card::new("erin-offline", KeyKind::EcP256).unwrap();
    let now = unix_now();
    // Valid for an hour: the agent's clock moved two hours later sees it expired, while the
    // bundle (days) still holds.
    let pem = c
        .issue(
            &ca,
            "Erin",
            Validity {
                not_before: now - 60,
                not_after: now + 3600,
            },
        )
        .unwrap();
    register_card(&srv, "erin", &pem).await.unwrap();
    let agent = agent_with_card(&srv).await;
    let conf = agent.pam_conf("login").unwrap();
    let path = conf.path().to_path_buf();

    let (code, _) = pam_login(path.clone(), "erin", PIN).await;
    assert_eq!(code, PamCode::SUCCESS);
    let b = decoded(&agent, "erin");
    assert_eq!(b.smartcards.len(), 1, "{b:?}");
    assert_eq!(b.smartcards[0].fingerprint, c.fingerprint());
    srv.stop().await;

    // Offline: PIN, signature of a fresh challenge, checked with the cached certificate.
    let (code, msgs) = pam_login(path.clone(), "erin", PIN).await;
    assert_eq!(code, PamCode::SUCCESS, "{msgs:?}");
    assert!(
        texts(&msgs, MsgStyle::PromptEchoOff)
            .iter()
            .any(|t| t == "Offline: smartcard PIN for erin-offline (CN=Erin):"),
        "{msgs:?}"
    );
    let ev = events(&agent);
    assert_eq!(
        (ev.last().unwrap().0.as_str(), ev.last().unwrap().1.as_str()),
        ("smartcard", "success")
    );

    // A wrong PIN: the online message, counted as an offline failure.
    let (code, msgs) = pam_login(path.clone(), "erin", "000000").await;
    assert_eq!(code, PamCode::AUTH_ERR, "{msgs:?}");
    assert!(
        msgs.iter()
            .any(|m| m.text.starts_with("Wrong smartcard PIN")),
        "{msgs:?}"
    );
    assert!(failures(&agent, "erin") >= 1);

    // The cached certificate expired by the agent's (guarded) clock: refused before the PIN.
    agent.set_clock_offset(2 * 3600);
    let (code, msgs) = pam_login(path, "erin", PIN).await;
    assert_eq!(code, PamCode::AUTH_ERR, "{msgs:?}");
    assert!(
        texts(&msgs, MsgStyle::ErrorMsg)
            .iter()
            .any(|t| t.starts_with("Smartcard certificate expired on")),
        "{msgs:?}"
    );
    assert!(texts(&msgs, MsgStyle::PromptEchoOff).is_empty(), "{msgs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fido2_offline_with_uv_required_asks_for_the_key_pin() {
    let mut srv = TestServer::start().await.unwrap();
    srv.set_policy("*", &[("fido2.user_verification", "required")])
        .await
        .unwrap();
    srv.add_user("frank", &[]).await.unwrap();
    let key = SoftKey::start().unwrap();
    key.state().pin = Some("4321".into());
    let agent = agent_with_key(&srv, &key).await;
    register_key(&srv, &agent, "frank", Some("4321")).await;
    let steps = agent.login("frank", "login", &["4321"]).await.unwrap();
    assert!(
        matches!(steps.last(), Some(Step::Success { .. })),
        "{steps:?}"
    );
    let b = decoded(&agent, "frank");
    assert!(b.fido2[0].uv_required, "{b:?}");
    srv.stop().await;

    let steps = agent.login("frank", "login", &["4321"]).await.unwrap();
    assert_eq!(
        steps[0],
        Step::Prompt {
            label: "Offline: security key PIN:".into(),
            echo: false
        }
    );
    assert!(
        matches!(steps.last(), Some(Step::Success { .. })),
        "{steps:?}"
    );

    // A wrong PIN is the key's refusal (its own retry counter), with the online message.
    let steps = agent.login("frank", "login", &["0000"]).await.unwrap();
    assert!(
        matches!(steps.last(), Some(Step::Failure { reason }) if reason.starts_with("Wrong security key PIN")),
        "{steps:?}"
    );
    let ev = events(&agent);
    assert_eq!(ev.last().unwrap().1, "failure", "{ev:?}");
}
