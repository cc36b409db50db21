//! Security keys and smartcards registered the way an admin and a user would: a one-time
//! code from the admin API redeemed by the agent's `enroll` (FIDO2), a certificate added by
//! the admin (smartcard).

use latchkey_agent::fido2::enroll::{EnrollOptions, EnrollUi, enroll};
use latchkey_proto::admin::TokenInfo;
use latchkey_proto::fido2::{Fido2Registered, Fido2RegistrationCreate, Fido2RegistrationCreated};
use latchkey_proto::smartcard::SmartcardAdd;
use latchkey_testkit::TestServer;
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::softhsm;
use latchkey_testkit::softkey::SoftKey;
use zeroize::Zeroizing;

/// The enrolment's questions: the key's PIN when the test gives one, no touch to wait for
/// (the software key is always touched).
pub struct Ui(pub Option<&'static str>);

impl EnrollUi for Ui {
    fn ask_pin(&mut self) -> latchkey_agent::Result<Zeroizing<String>> {
        self.0
            .map(|p| Zeroizing::new(p.to_string()))
            .ok_or_else(|| latchkey_agent::AgentError::Local("no PIN in this test".into()))
    }
    fn touch(&mut self) {}
}

/// A FIDO2 registration code for `user`, as `latchkey token add-fido2` gets it.
pub async fn fido2_code(srv: &TestServer, user: &str) -> String {
    let created: Fido2RegistrationCreated = srv
        .admin()
        .unwrap()
        .post(
            &format!("/v1/admin/users/{user}/fido2"),
            &Fido2RegistrationCreate {
                label: Some("test key".into()),
                expires_in: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(created.rp_id, "latchkey");
    created.code.expose().to_string()
}

/// Enrols `agent`'s security key for `user` with `code`; the enrolment's error as text.
pub async fn enroll_with(
    agent: &TestAgent,
    user: &str,
    code: String,
    pin: Option<&'static str>,
) -> Result<Fido2Registered, String> {
    let opts = EnrollOptions {
        config_dir: agent.config_dir.clone(),
        user: user.parse().unwrap(),
        code: code.into(),
    };
    enroll(&opts, Ui(pin)).await.map_err(|e| e.to_string())
}

/// Registers `agent`'s security key for `user` (with the key's PIN when it has one).
pub async fn register_key(
    srv: &TestServer,
    agent: &TestAgent,
    user: &str,
    pin: Option<&'static str>,
) -> Fido2Registered {
    let code = fido2_code(srv, user).await;
    enroll_with(agent, user, code, pin).await.unwrap()
}

/// Adds a smartcard certificate (PEM) to `user`, as an admin would.
pub async fn register_card(
    srv: &TestServer,
    user: &str,
    pem: &str,
) -> latchkey_client::Result<TokenInfo> {
    let req = SmartcardAdd {
        cert_pem: pem.to_string(),
        label: Some("card".into()),
    };
    srv.admin()
        .unwrap()
        .post(&format!("/v1/admin/users/{user}/smartcards"), &req)
        .await
}

/// An agent joined to `srv` that reaches `key` as its security key.
pub async fn agent_with_key(srv: &TestServer, key: &SoftKey) -> TestAgent {
    let spec = key.spec();
    TestAgent::start_with(srv, |s| s.fido2_devices = vec![spec])
        .await
        .unwrap()
}

/// An agent joined to `srv` that reads smartcards through SoftHSM2's PKCS#11 module.
pub async fn agent_with_card(srv: &TestServer) -> TestAgent {
    let module = softhsm::module().unwrap();
    TestAgent::start_with(srv, |s| s.smartcard_module = Some(module))
        .await
        .unwrap()
}
