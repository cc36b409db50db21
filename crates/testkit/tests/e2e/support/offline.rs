//! What the offline end-to-end tests share: a server with alice and her token app (the
//! `latchkey-token` program), a joined agent, PAM logins online and offline.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_proto::offline::Bundle;
use latchkey_testkit::TestServer;
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::pam_harness::{ConvMessage, MsgStyle, PamCode, PamConfDir, PamHarness};
use latchkey_testkit::token_cli::TokenCli;
use std::sync::{Arc, Mutex};

pub struct Setup {
    pub srv: TestServer,
    pub agent: TestAgent,
    pub token: Arc<TokenCli>,
    pub conf: Arc<PamConfDir>,
}

/// A server with alice and her token app (the CLI), a joined agent, and policy settings.
pub async fn setup(settings: &[(&str, &str)]) -> Setup {
    let srv = TestServer::start().await.unwrap();
    if !settings.is_empty() {
        srv.set_policy("login", settings).await.unwrap();
    }
    srv.add_user("alice", &[]).await.unwrap();
    let token = Arc::new(TokenCli::register(&srv, "alice").await.unwrap());
    let agent = TestAgent::start(&srv).await.unwrap();
    let conf = Arc::new(agent.pam_conf("login").unwrap());
    Setup {
        srv,
        agent,
        token,
        conf,
    }
}

/// One PAM login of alice answered online with the app's TOTP code.
pub async fn online_login(s: &Setup) -> PamCode {
    let (token, conf) = (s.token.clone(), s.conf.clone());
    super::run_blocking(move || {
        let mut pam = PamHarness::new("login", "alice", conf.path()).unwrap();
        pam.respond_with(move |_| Some(token.totp().unwrap()));
        pam.authenticate(0)
    })
    .await
}

/// An offline PAM login: `answer` gets the payload the conversation showed and returns what
/// to type. Returns the verdict and every message.
pub async fn offline_login(
    conf: Arc<PamConfDir>,
    user: &str,
    answer: impl FnMut(&str) -> String + Send + 'static,
) -> (PamCode, Vec<ConvMessage>) {
    let user = user.to_string();
    super::run_blocking(move || {
        let payload = Arc::new(Mutex::new(None::<String>));
        let seen = payload.clone();
        let mut answer = answer;
        let mut pam = PamHarness::new("login", &user, conf.path()).unwrap();
        pam.observe(move |m| {
            if m.style == MsgStyle::TextInfo && m.text.starts_with("LK1:") {
                *seen.lock().unwrap() = Some(m.text.clone());
            }
        });
        pam.respond_with(move |_| {
            let p = payload.lock().unwrap().clone();
            p.map(|p| answer(&p))
        });
        let code = pam.authenticate(0);
        (code, pam.messages())
    })
    .await
}

/// The error messages a PAM conversation showed.
pub fn errors(msgs: &[ConvMessage]) -> Vec<String> {
    super::texts(msgs, MsgStyle::ErrorMsg)
}

pub fn stored_bundle(agent: &TestAgent, user: &str) -> Option<(String, String)> {
    agent
        .state_db()
        .unwrap()
        .query_row(
            "SELECT payload, signature FROM offline_bundles WHERE user_name = ?1",
            [user],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok()
}

pub fn decoded(agent: &TestAgent, user: &str) -> Bundle {
    let (payload, _) = stored_bundle(agent, user).expect("a stored bundle");
    Bundle::decode(&B64.decode(payload).unwrap()).unwrap()
}

/// A code that is certainly wrong for an 8-digit challenge.
pub const WRONG: &str = "123";

/// Online once, then the server is stopped: ready for offline logins.
pub async fn offline_ready(settings: &[(&str, &str)]) -> Setup {
    let mut s = setup(settings).await;
    assert_eq!(online_login(&s).await, PamCode::SUCCESS);
    assert!(
        stored_bundle(&s.agent, "alice").is_some(),
        "bundle stored at the online login"
    );
    s.srv.stop().await;
    s
}

pub fn answered_by(token: Arc<TokenCli>) -> impl FnMut(&str) -> String + Send + 'static {
    move |payload| token.answer(payload).unwrap().1
}
