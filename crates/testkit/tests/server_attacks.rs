//! A holder of a machine key against latchkeyd: answers sent in parallel must not get past
//! the per-user lockout or a transaction's `max_attempts`. Real server, real TLS, answers
//! released together from many connections.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey_client::Client;
use latchkey_crypto::otpauth::OtpAuthUri;
use latchkey_proto::TokenKind;
use latchkey_proto::admin::AuditEntry;
use latchkey_proto::login::{LoginOtp, LoginStart, LoginStartResult};
use latchkey_testkit::{TestServer, totp_now};
use std::sync::Arc;
use tokio::sync::Barrier;

async fn start_tx(machine: &Client, user: &str) -> String {
    let r: LoginStartResult = machine
        .post(
            "/v1/login/start",
            &LoginStart {
                user: user.into(),
                client_id: "login".into(),
                rhost: None,
                tty: None,
            },
        )
        .await
        .unwrap();
    match r {
        LoginStartResult::Challenge { tx, .. } => tx,
        other => panic!("expected a challenge, got {other:?}"),
    }
}

/// A 6-digit code that is not `right` (nor its neighbours in the window).
fn wrong(right: &str, k: u32) -> String {
    let n: u32 = right.parse().unwrap();
    format!("{:06}", (n + 500_000 + k) % 1_000_000)
}

/// Sends every `(tx, code)` at once (a barrier releases them together); returns the
/// answers' `result` fields.
async fn burst(machine: &Client, answers: Vec<(String, String)>) -> Vec<String> {
    let barrier = Arc::new(Barrier::new(answers.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for (tx, code) in answers {
        let (m, b) = (machine.clone(), barrier.clone());
        tasks.spawn(async move {
            b.wait().await;
            let v: serde_json::Value = m
                .post(&format!("/v1/login/{tx}/otp"), &LoginOtp { code })
                .await
                .unwrap();
            v["result"].as_str().unwrap_or("?").to_string()
        });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        out.push(r.unwrap());
    }
    out
}

async fn otp_audit(srv: &TestServer, user: &str) -> Vec<AuditEntry> {
    let all: Vec<AuditEntry> = srv
        .admin()
        .unwrap()
        .get(&format!("/v1/admin/audit?user={user}&limit=10000"))
        .await
        .unwrap();
    all.into_iter()
        .filter(|e| e.action == "login.otp")
        .collect()
}

/// Answers whose code was looked at: accepted, or refused as a wrong or used code.
fn judged(entries: &[AuditEntry]) -> usize {
    entries
        .iter()
        .filter(|e| {
            e.result == "ok"
                || e.detail.starts_with("wrong code")
                || e.detail.starts_with("code already used")
        })
        .count()
}

async fn user_with_totp(srv: &TestServer, name: &str) -> OtpAuthUri {
    srv.add_user(name, &[]).await.unwrap();
    srv.add_token(name, TokenKind::Totp).await.unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_answers_across_transactions_never_judge_more_than_the_lockout_allows() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy("login", &[("lockout_threshold", "5")])
        .await
        .unwrap();
    let (_, machine) = srv.join_machine("m1").await.unwrap();
    let uri = user_with_totp(&srv, "bob").await;
    // 40 transactions, one guess each, released together (before: up to 38 judged, and the
    // right code among 40 guesses won 8 rounds in 10).
    let mut txs = Vec::new();
    for _ in 0..40 {
        txs.push(start_tx(&machine, "bob").await);
    }
    let right = totp_now(&uri);
    let answers: Vec<(String, String)> = txs
        .into_iter()
        .enumerate()
        .map(|(i, tx)| (tx, wrong(&right, i as u32)))
        .collect();
    let results = burst(&machine, answers).await;
    assert_eq!(results.len(), 40);
    let entries = otp_audit(&srv, "bob").await;
    assert_eq!(entries.len(), 40, "every answer is audited");
    let n = judged(&entries);
    assert!(
        n <= 5,
        "{n} answers judged for a user whose lockout threshold is 5: {:#?}",
        entries.iter().map(|e| &e.detail).collect::<Vec<_>>()
    );
    // Every answer that was not judged says why, and the user is locked now.
    assert!(
        entries
            .iter()
            .all(|e| e.detail.starts_with("wrong code") || e.detail.starts_with("user locked out")),
        "{entries:#?}"
    );
    let r: LoginStartResult = machine
        .post(
            "/v1/login/start",
            &LoginStart {
                user: "bob".into(),
                client_id: "login".into(),
                rhost: None,
                tty: None,
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(&r, LoginStartResult::Deny { reason } if reason.starts_with("Too many failures")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_answers_to_one_transaction_never_judge_more_than_max_attempts() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy(
        "login",
        &[("max_attempts", "3"), ("lockout_threshold", "100")],
    )
    .await
    .unwrap();
    let (_, machine) = srv.join_machine("m1").await.unwrap();
    let uri = user_with_totp(&srv, "carol").await;
    let tx = start_tx(&machine, "carol").await;
    let right = totp_now(&uri);
    let answers: Vec<(String, String)> = (0..40)
        .map(|i| {
            let code = if i == 39 {
                right.clone()
            } else {
                wrong(&right, i)
            };
            (tx.clone(), code)
        })
        .collect();
    let results = burst(&machine, answers).await;
    let entries = otp_audit(&srv, "carol").await;
    let n = judged(&entries);
    assert!(
        n <= 3,
        "{n} answers judged on a transaction with max_attempts 3"
    );
    let wins = results.iter().filter(|r| *r == "success").count();
    assert!(wins <= 1);
    // A success is never audited after the transaction ran out of attempts.
    let first_exhausted = entries
        .iter()
        .filter(|e| e.detail.contains("no attempts left"))
        .map(|e| e.id)
        .min();
    if let Some(first) = first_exhausted {
        assert!(
            !entries.iter().any(|e| e.result == "ok" && e.id > first),
            "{entries:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_answers_still_lock_out_at_the_threshold_and_a_success_clears() {
    let srv = TestServer::start().await.unwrap();
    srv.set_policy(
        "login",
        &[("lockout_threshold", "3"), ("max_attempts", "10")],
    )
    .await
    .unwrap();
    let (_, machine) = srv.join_machine("m1").await.unwrap();
    let uri = user_with_totp(&srv, "dave").await;
    let tx = start_tx(&machine, "dave").await;
    let right = totp_now(&uri);
    // Two wrong codes, then the right one: accepted, and the run of failures ends.
    for k in 0..2 {
        let r = burst(&machine, vec![(tx.clone(), wrong(&right, k))]).await;
        assert_eq!(r, vec!["retry"]);
    }
    assert_eq!(
        burst(&machine, vec![(tx.clone(), right.clone())]).await,
        vec!["success"]
    );
    // Three wrong codes on a fresh transaction: the third locks.
    let tx = start_tx(&machine, "dave").await;
    for k in 0..2 {
        assert_eq!(
            burst(&machine, vec![(tx.clone(), wrong(&right, 10 + k))]).await,
            vec!["retry"],
            "the success cleared the earlier failures"
        );
    }
    assert_eq!(
        burst(&machine, vec![(tx.clone(), wrong(&right, 20))]).await,
        vec!["deny"]
    );
    let entries = otp_audit(&srv, "dave").await;
    assert!(
        entries
            .last()
            .unwrap()
            .detail
            .contains("3 failures: locked out"),
        "{entries:#?}"
    );
}
