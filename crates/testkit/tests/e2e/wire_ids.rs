//! The agent socket reads user names and client_ids through their types
//! (`latchkey_proto::ids`): a `Begin` or a `Session` whose user or client_id the server would
//! refuse is refused at the socket, with the validator's sentence, before any login starts or
//! any session is recorded. Raw frames over the real socket of a real agent, because a typed
//! client could not even build such a request.

use crate::support::run_blocking;
use latchkey_client::{Client, Method as HttpMethod};
use latchkey_proto::agent::{AgentReply, AgentRequest, Step, blocking};
use latchkey_proto::routes;
use latchkey_proto::{ClientId, InvalidId, TokenKind, UserName};
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::{TestServer, totp_now};
use serde_json::json;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Sends `json` as one frame on a new connection and reads the one reply.
fn send_raw(socket: &Path, json: &str) -> AgentReply {
    let mut s = UnixStream::connect(socket).unwrap();
    let mut frame = (json.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(json.as_bytes());
    s.write_all(&frame).unwrap();
    blocking::read(&mut s).unwrap()
}

/// `json` is refused with the validator's own sentence for `why`.
async fn refused(socket: PathBuf, json: &'static str, why: InvalidId) {
    let reply = run_blocking(move || send_raw(&socket, json)).await;
    assert_eq!(
        reply,
        AgentReply::Error {
            message: format!("bad request: {}", why.message)
        },
        "{json}"
    );
}

async fn open_sessions_of(socket: PathBuf) -> Vec<String> {
    let reply = run_blocking(move || send_raw(&socket, r#"{"op":"status"}"#)).await;
    match reply {
        AgentReply::Status(st) => st.open_sessions.into_iter().map(|s| s.user).collect(),
        other => panic!("expected the status, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_or_session_with_an_invalid_user_or_client_id_is_refused_at_the_socket() {
    let srv = TestServer::start().await.unwrap();
    let uri = srv
        .add_user_with_token("alice", TokenKind::Totp)
        .await
        .unwrap();
    let agent = TestAgent::start(&srv).await.unwrap();
    let socket = agent.socket.clone();

    let bad_context = || ClientId::parse("a:b").unwrap_err();
    let bad_user = || UserName::parse("al ice").unwrap_err();
    for (json, why) in [
        (
            r#"{"op":"begin","version":1,"user":"alice","service":"sshd","client_id":"x;rm"}"#,
            bad_context(),
        ),
        (
            r#"{"op":"begin","version":1,"user":"alice","service":"sshd","client_id":"a:b"}"#,
            bad_context(),
        ),
        (
            r#"{"op":"begin","version":1,"user":"al ice","service":"sshd"}"#,
            bad_user(),
        ),
        (
            r#"{"op":"session","event":"open","user":"alice","service":"sshd","client_id":"a:b"}"#,
            bad_context(),
        ),
        (
            r#"{"op":"session","event":"open","user":"../alice","service":"sshd"}"#,
            bad_user(),
        ),
    ] {
        refused(socket.clone(), json, why).await;
    }
    // Nothing was recorded for the refused reports; a valid one still is.
    assert!(open_sessions_of(socket.clone()).await.is_empty());
    let ok = r#"{"op":"session","event":"open","user":"alice","service":"sshd","client_id":"elevation"}"#;
    let s = socket.clone();
    assert_eq!(
        run_blocking(move || send_raw(&s, ok)).await,
        AgentReply::Ack
    );
    assert_eq!(open_sessions_of(socket).await, vec!["alice".to_string()]);

    // And a valid login still passes, on the same agent after the refusals.
    let steps = agent
        .login("alice", "login", &[&totp_now(&uri)])
        .await
        .unwrap();
    assert!(
        matches!(steps.last(), Some(Step::Success { .. })),
        "{steps:?}"
    );
}

/// POSTs `body` as `m`: the status and the answer, or the refusal's `error` and `message`.
async fn post(m: &Client, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    match m.request(HttpMethod::POST, path, Some(body)).await {
        Ok((status, bytes)) => (status.as_u16(), serde_json::from_slice(&bytes).unwrap()),
        Err(latchkey_client::Error::Api {
            status,
            error,
            message,
        }) => (status.as_u16(), json!({"error": error, "message": message})),
        Err(e) => panic!("{path}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_an_invalid_identifier_in_a_body_with_a_400_not_a_5xx() {
    let srv = TestServer::start().await.unwrap();
    srv.add_user_with_token("alice", TokenKind::Totp)
        .await
        .unwrap();
    let (_, m) = srv.join_machine("ws1").await.unwrap();
    let bad_context = ClientId::parse("a:b").unwrap_err().message;
    let bad_user = UserName::parse("a/b").unwrap_err().message;
    for (path, body, why) in [
        (
            routes::LOGIN_START,
            json!({"user": "alice", "client_id": "a:b"}),
            &bad_context,
        ),
        (
            routes::LOGIN_START,
            json!({"user": "a/b", "client_id": "login"}),
            &bad_user,
        ),
        (
            routes::ACCOUNT_CHECK,
            json!({"user": "a/b", "client_id": "login"}),
            &bad_user,
        ),
        (
            routes::FIDO2_REGISTER_START,
            json!({"user": "a/b", "code": "lkf_x"}),
            &bad_user,
        ),
        (
            routes::SMARTCARD_ENROLL,
            json!({"user": "a/b", "code": "lks_x", "cert": ""}),
            &bad_user,
        ),
    ] {
        let (status, refusal) = post(&m, path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {refusal}");
        assert_eq!(refusal["error"], "invalid_request", "{path} {body}");
        let message = refusal["message"].as_str().unwrap();
        assert!(message.contains(why.as_str()), "{path} {body}: {message}");
    }
    // The same bodies with valid identifiers are served.
    let (status, answer) = post(
        &m,
        routes::LOGIN_START,
        json!({"user": "alice", "client_id": "login"}),
    )
    .await;
    assert_eq!(
        (status, &answer["result"]),
        (200, &json!("challenge")),
        "{answer}"
    );
}

#[test]
fn an_answer_frame_of_the_agent_protocol_never_prints_the_code() {
    let req: AgentRequest = serde_json::from_str(r#"{"op":"answer","text":"402917"}"#).unwrap();
    assert!(!format!("{req:?}").contains("402917"), "{req:?}");
}
