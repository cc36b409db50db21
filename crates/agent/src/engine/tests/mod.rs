//! The login engine against a fake server: which answers lead offline, what the offline
//! store keeps, and that every outcome reaches the event spool once.

use super::*;
use crate::agent_db::AgentDb;
use crate::config::AgentConfig;
use crate::events::spool;
use crate::offline::Clock;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::keys::SigningKeyPair;
use latchkey_proto::app::PushStartResult;
use latchkey_proto::enroll::{EnrollBegun, EnrollMethod, EnrollWait};
use latchkey_proto::events::{Event, EventKind};
use latchkey_proto::fido2::LoginFido2;
use latchkey_proto::login::{AccountStatus, LoginStart, LoginStartResult, LoginStepResult};
use latchkey_proto::offline::{OfflineAttachment, SignedBundle};
use latchkey_proto::smartcard::LoginSmartcard;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Answers queued per call; a call with nothing queued is a test bug and reads as a 4xx.
#[derive(Default)]
struct FakeServer {
    start: Mutex<VecDeque<Reply<LoginStartResult>>>,
    step: Mutex<VecDeque<Reply<LoginStepResult>>>,
    push: Mutex<VecDeque<Reply<PushStartResult>>>,
    account: Mutex<VecDeque<Reply<AccountStatus>>>,
    begun: Mutex<VecDeque<Reply<EnrollBegun>>>,
    waited: Mutex<VecDeque<Reply<EnrollWait>>>,
    calls: Mutex<Vec<&'static str>>,
}

fn pop<T>(q: &Mutex<VecDeque<Reply<T>>>) -> Reply<T> {
    q.lock().unwrap().pop_front().unwrap_or(Outcome::Refused {
        code: "test".into(),
        message: "no answer queued".into(),
    })
}

impl FakeServer {
    fn called(&self, what: &'static str) {
        self.calls.lock().unwrap().push(what);
    }
}

impl Server for FakeServer {
    async fn login_start(&self, _req: &LoginStart) -> Reply<LoginStartResult> {
        self.called("start");
        pop(&self.start)
    }
    async fn login_otp(&self, _tx: &str, _user: &str, _code: &str) -> Reply<LoginStepResult> {
        self.called("otp");
        pop(&self.step)
    }
    async fn push_start(&self, _tx: &str, _user: &str) -> Reply<PushStartResult> {
        self.called("push");
        pop(&self.push)
    }
    async fn push_wait(&self, _tx: &str, _user: &str) -> Reply<LoginStepResult> {
        self.called("push_wait");
        pop(&self.step)
    }
    async fn login_fido2(&self, _: &str, _: &str, _: &LoginFido2) -> Reply<LoginStepResult> {
        self.called("fido2");
        pop(&self.step)
    }
    async fn login_smartcard(
        &self,
        _: &str,
        _: &str,
        _: &LoginSmartcard,
    ) -> Reply<LoginStepResult> {
        self.called("smartcard");
        pop(&self.step)
    }
    async fn account_check(&self, _user: &UserName, _client_id: &ClientId) -> Reply<AccountStatus> {
        self.called("account");
        pop(&self.account)
    }
    async fn enroll_begin(&self, _: &str, _: &str, _: EnrollMethod) -> Reply<EnrollBegun> {
        self.called("enroll_begin");
        pop(&self.begun)
    }
    async fn enroll_confirm(&self, _: &str, _: &str, _: &str) -> Reply<LoginStepResult> {
        self.called("enroll_confirm");
        pop(&self.step)
    }
    async fn enroll_wait(&self, _: &str, _: &str) -> Reply<EnrollWait> {
        self.called("enroll_wait");
        pop(&self.waited)
    }
    async fn enroll_skip(&self, _: &str, _: &str) -> Reply<LoginStepResult> {
        self.called("enroll_skip");
        pop(&self.step)
    }
    fn registration_base(&self) -> String {
        "https://mfa.example:8443".into()
    }
}

mod enrol;

struct Fixture {
    engine: LoginEngine<FakeServer>,
    offline: Arc<Offline>,
    events: Arc<Events>,
    clock: Arc<Clock>,
    signer: SigningKeyPair,
    app_secret: [u8; 32],
}

fn fixture() -> Fixture {
    let signer = SigningKeyPair::generate().unwrap();
    let cfg: AgentConfig = toml::from_str(&format!(
        "servers = [\"https://a\"]\nmachine_id = \"m1\"\nserver_signing_key = \"{}\"\n",
        B64.encode(signer.public_bytes())
    ))
    .unwrap();
    let db = Arc::new(AgentDb::in_memory().unwrap());
    let clock = Arc::new(Clock::default());
    let offline = Arc::new(Offline::new(&cfg, db.clone(), clock.clone()).unwrap());
    let limits = spool::Limits {
        cap: 1000,
        caller_quota: 10,
    };
    let events = Arc::new(Events::open(db, limits).unwrap());
    Fixture {
        engine: LoginEngine::new(FakeServer::default(), Some(offline.clone()), events.clone()),
        offline,
        events,
        clock,
        signer,
        app_secret: [7u8; 32],
    }
}

impl Fixture {
    fn server(&self) -> &FakeServer {
        self.engine.server()
    }

    fn signed_bundle(&self) -> SignedBundle {
        let b = crate::offline::tests::sample_bundle(self.offline.now(), &self.app_secret);
        let payload = b.encode().unwrap();
        SignedBundle {
            payload: B64.encode(&payload),
            signature: B64.encode(latchkey_crypto::bundle::sign(&self.signer, &payload)),
        }
    }

    fn with_bundle<T>(&self, value: T) -> Reply<T> {
        Outcome::Answer(Answered {
            value,
            offline: OfflineAttachment {
                offline_bundle: Some(self.signed_bundle()),
                offline_forget: vec![],
            },
            server_time: None,
        })
    }

    fn has_bundle(&self) -> bool {
        self.offline.db.bundle_get("alice").unwrap().is_some()
    }

    fn queue_start(&self, r: Reply<LoginStartResult>) {
        self.server().start.lock().unwrap().push_back(r);
    }

    fn queue_step(&self, r: Reply<LoginStepResult>) {
        self.server().step.lock().unwrap().push_back(r);
    }

    fn spooled(&self) -> Vec<Event> {
        self.events.spool().batch(self.events.db(), 100).unwrap()
    }

    /// The token app's code for a challenge shown in a Qr step.
    fn code_for(&self, payload: &str) -> String {
        let c = latchkey_crypto::challenge::from_text(payload).unwrap();
        latchkey_crypto::challenge::open(&self.app_secret, &c)
            .unwrap()
            .to_string()
    }
}

fn answer<T>(value: T) -> Reply<T> {
    Outcome::Answer(Answered::bare(value))
}

fn unreachable<T>() -> Reply<T> {
    Outcome::Unreachable("connection refused".into())
}

fn challenge(methods: Vec<Method>) -> LoginStartResult {
    LoginStartResult::Challenge {
        tx: "tx1".parse().unwrap(),
        methods,
        message: "Code:".into(),
        expires_in: 120,
        fido2: None,
        smartcard: None,
    }
}

fn login() -> Login {
    Login::new(LoginRequest {
        user: "alice".parse().unwrap(),
        client_id: "login".parse().unwrap(),
        service: Some("sshd".into()),
        rhost: Some("192.0.2.1".into()),
        tty: None,
        enroll: false,
    })
}

/// A full online OTP login that passes, with the server sending a bundle along.
async fn online_success_with_bundle(f: &Fixture) -> Step {
    f.queue_start(answer(challenge(vec![Method::Otp])));
    f.queue_step(f.with_bundle(LoginStepResult::Success {
        message: "ok".into(),
    }));
    let mut l = login();
    assert!(matches!(l.begin(&f.engine).await, Step::Prompt { .. }));
    l.answer(&f.engine, "123456").await
}

/// Runs an offline QR login to its end, answering with the token app's code or `wrong`.
async fn offline_qr(f: &Fixture, l: &mut Login, first: Step, wrong: Option<&str>) -> Step {
    let Step::Qr { payload, .. } = first else {
        return first;
    };
    assert!(matches!(
        l.on_continue(&f.engine).await,
        Step::Prompt { .. }
    ));
    let code = wrong.map_or_else(|| f.code_for(&payload), str::to_string);
    l.answer(&f.engine, &code).await
}

#[tokio::test]
async fn online_success_stores_the_bundle_and_records_one_online_event() {
    let f = fixture();
    let step = online_success_with_bundle(&f).await;
    assert!(matches!(step, Step::Success { .. }), "{step:?}");
    assert!(f.has_bundle());
    let ev = f.spooled();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].kind, EventKind::AuthSuccess);
    assert_eq!(ev[0].online, Some(true));
    assert_eq!(ev[0].method.as_deref(), Some("otp"));
    assert_eq!(ev[0].service.as_deref(), Some("sshd"));
    assert_eq!(ev[0].rhost.as_deref(), Some("192.0.2.1"));
}

#[tokio::test]
async fn a_bundle_riding_on_anything_but_an_mfa_success_is_not_stored() {
    let f = fixture();
    f.queue_start(f.with_bundle(LoginStartResult::Allow {
        message: "no MFA needed".into(),
    }));
    assert!(matches!(
        login().begin(&f.engine).await,
        Step::Success { .. }
    ));
    assert!(!f.has_bundle());

    f.queue_start(answer(challenge(vec![Method::Otp])));
    f.queue_step(f.with_bundle(LoginStepResult::Retry {
        attempts_left: 2,
        message: "wrong code".into(),
    }));
    let mut l = login();
    l.begin(&f.engine).await;
    assert!(matches!(
        l.answer(&f.engine, "000000").await,
        Step::Info { .. }
    ));
    assert!(!f.has_bundle());

    f.queue_start(answer(challenge(vec![Method::Otp])));
    f.queue_step(f.with_bundle(LoginStepResult::Deny {
        reason: "no".into(),
    }));
    let mut l = login();
    l.begin(&f.engine).await;
    assert!(matches!(
        l.answer(&f.engine, "000000").await,
        Step::Failure { .. }
    ));
    assert!(!f.has_bundle());
}

#[tokio::test]
async fn a_forget_list_wipes_on_any_answer() {
    let f = fixture();
    online_success_with_bundle(&f).await;
    assert!(f.has_bundle());
    f.queue_start(Outcome::Answer(Answered {
        value: LoginStartResult::Deny {
            reason: "disabled".into(),
        },
        offline: OfflineAttachment {
            offline_bundle: None,
            offline_forget: vec!["alice".into()],
        },
        server_time: None,
    }));
    assert!(matches!(
        login().begin(&f.engine).await,
        Step::Failure { .. }
    ));
    assert!(!f.has_bundle());
}

#[tokio::test]
async fn the_forget_list_of_an_account_check_wipes_too() {
    let f = fixture();
    online_success_with_bundle(&f).await;
    f.server()
        .account
        .lock()
        .unwrap()
        .push_back(Outcome::Answer(Answered {
            value: AccountStatus {
                allowed: false,
                message: "disabled".into(),
            },
            offline: OfflineAttachment {
                offline_bundle: None,
                offline_forget: vec!["alice".into()],
            },
            server_time: None,
        }));
    let (user, context) = ("alice".parse().unwrap(), "login".parse().unwrap());
    let reply = f.engine.account_check(&user, &context).await;
    assert!(matches!(reply, AgentReply::Account { allowed: false, .. }));
    assert!(!f.has_bundle());
}

#[tokio::test]
async fn every_kind_of_unreachable_goes_offline() {
    // At the start, after a code, when sending a push, while waiting for the push.
    for at in ["start", "otp", "push", "push_wait"] {
        let f = fixture();
        online_success_with_bundle(&f).await;
        let mut l = login();
        let first =
            if at == "start" {
                f.queue_start(unreachable());
                l.begin(&f.engine).await
            } else {
                f.queue_start(answer(challenge(vec![Method::Otp, Method::Push])));
                assert!(matches!(l.begin(&f.engine).await, Step::Prompt { .. }));
                match at {
                    "otp" => {
                        f.queue_step(unreachable());
                        l.answer(&f.engine, "123456").await
                    }
                    "push" => {
                        f.server().push.lock().unwrap().push_back(unreachable());
                        l.answer(&f.engine, "push").await
                    }
                    _ => {
                        f.server().push.lock().unwrap().push_back(answer(
                            PushStartResult::Started(latchkey_proto::app::PushStarted {
                                message: "Approve on your phone".into(),
                                expires_in: 60,
                                number: 42,
                            }),
                        ));
                        assert!(matches!(
                            l.answer(&f.engine, "push").await,
                            Step::Wait { .. }
                        ));
                        f.queue_step(unreachable());
                        l.on_continue(&f.engine).await
                    }
                }
            };
        assert!(matches!(first, Step::Qr { .. }), "{at}: {first:?}");
        let end = offline_qr(&f, &mut l, first, None).await;
        assert!(matches!(end, Step::Success { .. }), "{at}: {end:?}");
        // One online event (the login that stored the bundle), one offline success.
        let ev = f.spooled();
        let offline: Vec<_> = ev.iter().filter(|e| e.online == Some(false)).collect();
        assert_eq!(offline.len(), 1, "{at}: {ev:?}");
        assert_eq!(offline[0].kind, EventKind::AuthSuccess);
        assert_eq!(offline[0].method.as_deref(), Some("app_qr"));
        assert_eq!(offline[0].reason.as_deref(), Some("offline login 1 of 3"));
        assert_eq!(offline[0].service.as_deref(), Some("sshd"));
        assert_eq!(ev.len(), 2, "{at}: {ev:?}");
    }
}

#[tokio::test]
async fn a_definite_deny_never_goes_offline() {
    let f = fixture();
    online_success_with_bundle(&f).await;
    f.queue_start(answer(LoginStartResult::Deny {
        reason: "Account locked".into(),
    }));
    let step = login().begin(&f.engine).await;
    assert_eq!(
        step,
        Step::Failure {
            reason: "Account locked".into()
        }
    );
    f.queue_start(answer(challenge(vec![Method::Otp])));
    f.queue_step(answer(LoginStepResult::Deny {
        reason: "too many codes".into(),
    }));
    let mut l = login();
    l.begin(&f.engine).await;
    assert!(matches!(
        l.answer(&f.engine, "1").await,
        Step::Failure { .. }
    ));
    assert!(f.spooled().iter().all(|e| e.online == Some(true)));
    assert_eq!(
        f.offline
            .db
            .bundle_get("alice")
            .unwrap()
            .unwrap()
            .logins_used,
        0
    );
}

#[tokio::test]
async fn a_refusal_or_a_local_error_never_goes_offline() {
    for code in ["forbidden", LOCAL_ERROR, "bad_request"] {
        let f = fixture();
        online_success_with_bundle(&f).await;
        f.queue_start(Outcome::Refused {
            code: code.into(),
            message: "no descriptors".into(),
        });
        let step = login().begin(&f.engine).await;
        let Step::Failure { reason } = &step else {
            panic!("{code}: {step:?}");
        };
        assert!(reason.starts_with("Login refused"), "{code}: {reason}");
        assert!(f.spooled().iter().all(|e| e.online == Some(true)), "{code}");
        assert_eq!(f.server().calls.lock().unwrap().len(), 3, "{code}");
    }
}

#[tokio::test]
async fn unreachable_without_an_offline_store_fails_closed() {
    let f = fixture();
    let engine = LoginEngine::new(FakeServer::default(), None, f.events.clone());
    engine.server.start.lock().unwrap().push_back(unreachable());
    let step = login().begin(&engine).await;
    assert_eq!(
        step,
        Step::Failure {
            reason: UNREACHABLE.into()
        }
    );
    let ev = f.spooled();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, EventKind::AuthFailure);
}

#[tokio::test]
async fn offline_refusals_and_wrong_codes_are_recorded_once_each() {
    let f = fixture();
    // No bundle yet: refused offline, recorded as an offline failure.
    f.queue_start(unreachable());
    let step = login().begin(&f.engine).await;
    assert!(matches!(step, Step::Failure { .. }), "{step:?}");
    let ev = f.spooled();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].online, Some(false));
    assert_eq!(ev[0].reason.as_deref(), Some("no bundle"));

    online_success_with_bundle(&f).await;
    f.queue_start(unreachable());
    let mut l = login();
    let first = l.begin(&f.engine).await;
    let end = offline_qr(&f, &mut l, first, Some("00000000")).await;
    assert!(matches!(end, Step::Failure { .. }), "{end:?}");
    let wrong: Vec<_> = f
        .spooled()
        .into_iter()
        .filter(|e| e.online == Some(false) && e.kind == EventKind::AuthFailure)
        .collect();
    assert_eq!(wrong.len(), 2);
    assert_eq!(wrong[1].reason.as_deref(), Some("wrong code (1 of 2)"));
}

#[tokio::test]
async fn the_clock_guard_refuses_offline_when_the_clock_went_back() {
    let f = fixture();
    online_success_with_bundle(&f).await;
    // The agent saw this time; then the clock goes back an hour (past the 5 minute skew).
    f.offline.tick();
    f.clock.set_offset(-3600);
    f.queue_start(unreachable());
    let step = login().begin(&f.engine).await;
    let Step::Failure { reason } = &step else {
        panic!("{step:?}");
    };
    assert!(
        reason.contains("clock of this machine went back"),
        "{reason}"
    );
    let last = f.spooled().pop().unwrap();
    assert_eq!(last.online, Some(false));
    assert!(
        last.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("clock went back")),
        "{last:?}"
    );
    assert_eq!(
        f.offline
            .db
            .bundle_get("alice")
            .unwrap()
            .unwrap()
            .logins_used,
        0
    );
}

#[tokio::test]
async fn a_server_time_in_an_answer_re_anchors_a_guard_from_the_future() {
    let f = fixture();
    // An offline attempt with the clock a week ahead left the guard there.
    f.clock.set_offset(7 * 86_400);
    f.offline.tick();
    f.clock.set_offset(0);
    let now = f.offline.now();
    assert!(!f.offline.guard_fits(now));
    f.queue_start(Outcome::Answer(Answered {
        value: LoginStartResult::Allow {
            message: "ok".into(),
        },
        offline: OfflineAttachment::default(),
        server_time: Some(now),
    }));
    login().begin(&f.engine).await;
    assert!(f.offline.guard_fits(now));
}
