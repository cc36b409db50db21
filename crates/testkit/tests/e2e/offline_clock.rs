//! The offline clock guard end to end: the real PAM module, a real agent and server, the
//! token app as its own process. The agent's clock is moved as a person (or a thief) would
//! move the machine's clock.

use crate::support::offline::*;
use crate::support::run_blocking;
use latchkey_agent::offline::utc_date;
use latchkey_testkit::pam_harness::{PamCode, PamHarness};

const WENT_BACK: &str = "Offline login refused: the clock of this machine went back; correct the time or connect to the network";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_login_refused_after_bundle_expiry() {
    let s = offline_ready(&[("offline.max_days", "2")]).await;
    let b = decoded(&s.agent, "alice");
    s.agent.set_clock_offset(3 * 86_400);
    let (code, msgs) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::AUTH_ERR);
    assert_eq!(
        errors(&msgs),
        vec![format!(
            "Offline login for alice expired on {}",
            utc_date(b.not_after)
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_login_refused_when_the_clock_went_back() {
    let s = offline_ready(&[]).await;
    s.agent.set_clock_offset(-3600);
    let (code, msgs) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::AUTH_ERR);
    assert_eq!(errors(&msgs), vec![WENT_BACK]);
    // Within the allowed skew (5 minutes) it works.
    s.agent.set_clock_offset(-60);
    let (code, _) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::SUCCESS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_login_re_anchors_the_guard_after_an_attempt_with_the_clock_ahead() {
    let mut s = offline_ready(&[]).await;
    // Someone tries an offline login with the clock eight days ahead: the guard records it.
    s.agent.set_clock_offset(8 * 86_400);
    let (code, _) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::AUTH_ERR, "the bundle expired by then");
    // The clock is corrected, and alice logs in while connected, as the message advises.
    s.agent.set_clock_offset(0);
    let (code, msgs) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::AUTH_ERR);
    assert_eq!(errors(&msgs), vec![WENT_BACK]);
    s.srv.restart().await.unwrap();
    // (A fresh agent, so its circuit breaker does not skip the server for the next 30 s; a
    // restart alone changes nothing about the guard, which is on disk.)
    s.agent.restart().await.unwrap();
    // (A second token: the app's code of this 30-second step was used by the first login.)
    let (_, uri) = s
        .srv
        .add_token("alice", latchkey_proto::TokenKind::Totp)
        .await
        .unwrap();
    let conf = s.conf.clone();
    let code = run_blocking(move || {
        let mut pam = PamHarness::new("login", "alice", conf.path()).unwrap();
        pam.respond_with(move |_| Some(latchkey_testkit::totp_now(&uri)));
        pam.authenticate(0)
    })
    .await;
    assert_eq!(code, PamCode::SUCCESS);
    // Offline again: the server's time re-anchored the guard, so offline login works.
    s.srv.stop().await;
    let (code, msgs) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(code, PamCode::SUCCESS, "{:?}", errors(&msgs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setting_the_clock_back_does_not_revive_a_bundle_that_expired_while_the_agent_ran() {
    let s = offline_ready(&[("offline.max_days", "2")]).await;
    let b = decoded(&s.agent, "alice");
    // Three days pass with the agent running and nobody trying an offline login (the
    // guard's minute tick, run here at once).
    s.agent.set_clock_offset(3 * 86_400);
    s.agent
        .agent()
        .unwrap()
        .engine
        .offline_shared()
        .unwrap()
        .tick();
    // Then the clock is set back to within the bundle's validity.
    s.agent.set_clock_offset(0);
    let (code, msgs) = offline_login(s.conf.clone(), "alice", answered_by(s.token.clone())).await;
    assert_eq!(
        code,
        PamCode::AUTH_ERR,
        "expired on {}",
        utc_date(b.not_after)
    );
    assert_eq!(errors(&msgs), vec![WENT_BACK]);
}
