//! Push approval with number matching, end to end: a real agent conversation, a real server,
//! and an app speaking the app API with its own Ed25519 key (the `latchkey-token` CLI has its
//! own tests; here the app side is explicit so every refusal case can be forged).

use crate::support::last;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey};
use latchkey_client::StatusCode;
use latchkey_proto::agent::{AGENT_PROTOCOL_VERSION, AgentReply, AgentRequest, Step, blocking};
use latchkey_proto::app::*;
use latchkey_testkit::TestServer;
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::token_app::SoftApp;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

type App = SoftApp;

async fn register_app(srv: &TestServer, user: &str) -> App {
    SoftApp::register(srv, user).await.unwrap()
}

/// Runs a login that chooses push; hands the Wait text out through `tx` before continuing.
fn push_login(
    socket: PathBuf,
    user: &str,
    number_out: std::sync::mpsc::Sender<String>,
) -> Vec<Step> {
    let mut s = UnixStream::connect(socket).unwrap();
    let mut steps = Vec::new();
    let mut req = AgentRequest::Begin {
        version: AGENT_PROTOCOL_VERSION,
        user: user.parse().unwrap(),
        service: "sudo".into(),
        client_id: None,
        rhost: Some("10.9.9.9".into()),
        tty: None,
        enroll: None,
    };
    loop {
        blocking::write(&mut s, &req).unwrap();
        let AgentReply::Step(step) = blocking::read(&mut s).unwrap() else {
            panic!("not a step")
        };
        steps.push(step.clone());
        req = match step {
            Step::Prompt { .. } => AgentRequest::Answer { text: "".into() },
            Step::Wait { text } => {
                number_out.send(text).unwrap();
                AgentRequest::Continue
            }
            Step::Success { .. } | Step::Failure { .. } => return steps,
            _ => AgentRequest::Continue,
        };
    }
}

fn number_in(text: &str) -> u32 {
    text.split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("a number in the Wait text")
}

async fn start_push(agent: &TestAgent, user: &str) -> (tokio::task::JoinHandle<Vec<Step>>, u32) {
    let (tx, rx) = std::sync::mpsc::channel();
    let socket = agent.socket.clone();
    let user = user.to_string();
    let h = tokio::task::spawn_blocking(move || push_login(socket, &user, tx));
    let text = tokio::task::spawn_blocking(move || {
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap()
    })
    .await
    .unwrap();
    (h, number_in(&text))
}

async fn setup(user: &str) -> (TestServer, TestAgent, App) {
    let srv = TestServer::start().await.unwrap();
    srv.add_user(user, &[]).await.unwrap();
    let app = register_app(&srv, user).await;
    let agent = TestAgent::start(&srv).await.unwrap();
    (srv, agent, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_approved_with_the_right_number_logs_in() {
    let (_srv, agent, app) = setup("alice").await;
    let (login, number) = start_push(&agent, "alice").await;
    let reqs = app.pending(5).await.unwrap();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        (
            r.user.as_str(),
            r.host.as_str(),
            r.client_id.as_str(),
            r.rhost.as_deref()
        ),
        ("alice", "test-host", "elevation", Some("10.9.9.9"))
    );
    let v = app
        .respond(&app.sign(&r.tx, Decision::Approve, Some(number), &r.nonce))
        .await
        .unwrap();
    assert!(v.ok, "{v:?}");
    let steps = login.await.unwrap();
    assert_eq!(
        steps[0],
        Step::Prompt {
            label: "Press Enter to send a push, or type a one-time code for alice:".into(),
            echo: false
        }
    );
    assert!(matches!(last(&steps), Step::Success { .. }), "{steps:?}");
    // The same signed approval again: refused (the request is settled).
    let again = app
        .respond(&app.sign(&r.tx, Decision::Approve, Some(number), &r.nonce))
        .await
        .unwrap();
    assert!(!again.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_number_refuses_the_login() {
    let (_srv, agent, app) = setup("bob").await;
    let (login, number) = start_push(&agent, "bob").await;
    let r = app.pending(5).await.unwrap().remove(0);
    let wrong = if number == 99 { 10 } else { number + 1 };
    let v = app
        .respond(&app.sign(&r.tx, Decision::Approve, Some(wrong), &r.nonce))
        .await
        .unwrap();
    assert!(!v.ok && v.message.contains("Wrong number"), "{v:?}");
    let steps = login.await.unwrap();
    assert_eq!(
        last(&steps),
        &Step::Failure {
            reason: "Push refused: the number typed in the app was wrong".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denial_refuses_the_login_and_is_audited() {
    let (srv, agent, app) = setup("carol").await;
    let (login, _) = start_push(&agent, "carol").await;
    let r = app.pending(5).await.unwrap().remove(0);
    let mut deny = app.sign(&r.tx, Decision::Deny, None, &r.nonce);
    deny.reason = Some("not me".into());
    assert!(app.respond(&deny).await.unwrap().ok);
    let steps = login.await.unwrap();
    assert_eq!(
        last(&steps),
        &Step::Failure {
            reason: "Push denied in the latchkey app".into()
        }
    );
    let audit = srv.audit("carol").await.unwrap();
    assert!(
        audit.iter().any(|a| a.action == "push.respond"
            && a.result == "deny"
            && a.detail.contains("not me")),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_answers_are_refused() {
    let (_srv, agent, app) = setup("dave").await;
    let (login, number) = start_push(&agent, "dave").await;
    let r = app.pending(5).await.unwrap().remove(0);
    // Signed by another key.
    let other = SigningKey::from_bytes(&[7u8; 32]);
    let mut forged = app.sign(&r.tx, Decision::Approve, Some(number), &r.nonce);
    forged.signature = B64.encode(
        other
            .sign(&push_signing_bytes(
                &r.tx,
                Decision::Approve,
                Some(number),
                &r.nonce,
            ))
            .to_bytes(),
    );
    assert!(!app.respond(&forged).await.unwrap().ok);
    // A signature over another nonce (an old request's answer replayed).
    let replay = app.sign(&r.tx, Decision::Approve, Some(number), "old-nonce");
    assert!(!app.respond(&replay).await.unwrap().ok);
    // A signature for a different number than the one sent.
    let mut mixed = app.sign(&r.tx, Decision::Approve, Some(number), &r.nonce);
    mixed.number = Some(if number == 99 { 10 } else { number + 1 });
    assert!(!app.respond(&mixed).await.unwrap().ok);
    // None of that settled the request: the real answer still works.
    assert!(
        app.respond(&app.sign(&r.tx, Decision::Approve, Some(number), &r.nonce))
            .await
            .unwrap()
            .ok
    );
    assert!(matches!(last(&login.await.unwrap()), Step::Success { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_app_is_refused_and_gets_no_push() {
    let (srv, agent, app) = setup("erin").await;
    srv.admin()
        .unwrap()
        .delete(&format!("/v1/admin/tokens/{}", app.id))
        .await
        .unwrap();
    let e = app
        .client
        .get::<Vec<PushRequest>>("/v1/apps/pending?wait=0")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED), "{e}");
    // With the app (and its TOTP seed) gone, erin has no MFA method left.
    let steps = agent.login("erin", "login", &[""]).await.unwrap();
    assert!(matches!(last(&steps), Step::Failure { .. }), "{steps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_expires_with_its_message() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy("elevation", &[("tx_ttl", "3s")])
        .await
        .unwrap();
    srv.add_user("fred", &[]).await.unwrap();
    let _app = register_app(&srv, "fred").await;
    let agent = TestAgent::start(&srv).await.unwrap();
    let (login, _) = start_push(&agent, "fred").await;
    let steps = login.await.unwrap();
    assert_eq!(
        last(&steps),
        &Step::Failure {
            reason: "Push expired: nobody answered in time".into()
        },
        "{steps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_links_are_single_use_and_expire() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user("gail", &[]).await.unwrap();
    let admin = srv.admin().unwrap();
    let link: AppLinkCreated = admin
        .post("/v1/admin/users/gail/apps", &AppLinkCreate::default())
        .await
        .unwrap();
    let reg = |code: latchkey_proto::Secret| AppRegister {
        code,
        device_name: "p".into(),
        x25519_public: B64.encode([1u8; 32]),
        ed25519_public: B64.encode([2u8; 32]),
    };
    let anon = srv.anonymous().unwrap();
    let _: AppRegistered = anon
        .post("/v1/apps/register", &reg(link.code.clone()))
        .await
        .unwrap();
    let e = anon
        .post::<_, AppRegistered>("/v1/apps/register", &reg(link.code))
        .await
        .unwrap_err();
    assert_eq!(e.api_code(), Some("invalid_registration_code"));
    let short: AppLinkCreated = admin
        .post(
            "/v1/admin/users/gail/apps",
            &AppLinkCreate {
                expires_in: Some(1),
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let e = anon
        .post::<_, AppRegistered>("/v1/apps/register", &reg(short.code))
        .await
        .unwrap_err();
    assert_eq!(e.api_code(), Some("invalid_registration_code"));
    let bad = AppRegister {
        x25519_public: "short".into(),
        ..reg("x".into())
    };
    let e = anon
        .post::<_, AppRegistered>("/v1/apps/register", &bad)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST));
}
