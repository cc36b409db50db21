//! Set-up and checks the end-to-end tests share. They panic on error, as a test does;
//! fixtures that return errors and could serve tests outside this binary (servers, agents,
//! PAM stacks, token apps) are in `latchkey_testkit`.

pub mod hw;
pub mod local;
pub mod offline;

use latchkey_proto::agent::Step;
use latchkey_testkit::pam_harness::{ConvMessage, MsgStyle};

/// The step a login conversation ended with.
pub fn last(steps: &[Step]) -> &Step {
    steps.last().expect("at least one step")
}

/// Fails the test unless the conversation ended in success.
pub fn assert_success(steps: &[Step]) {
    assert!(matches!(last(steps), Step::Success { .. }), "{steps:?}");
}

/// The reason of the failure a conversation ended with; any other end fails the test.
pub fn failure_reason(steps: &[Step]) -> String {
    match last(steps) {
        Step::Failure { reason } => reason.clone(),
        other => panic!("expected a failure, got {other:?} in {steps:?}"),
    }
}

/// libpam calls and the agent's blocking socket protocol block; run them off the runtime.
pub async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Runs the admin's `latchkey` command line against `srv` (its URL, certificate pin and
/// admin key in the environment, as an operator sets them), with `stdin` typed in; fails
/// the test unless it succeeds, and answers what it printed.
pub async fn admin_cli(
    srv: &latchkey_testkit::TestServer,
    args: &[&str],
    stdin: Option<&str>,
) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let cli = latchkey_testkit::workspace_bin("latchkey").unwrap();
    let mut cmd = Command::new(&cli);
    cmd.args(args)
        .env("LATCHKEY_SERVER", srv.url())
        .env("LATCHKEY_PIN", &srv.info.tls_fingerprint)
        .env("LATCHKEY_ADMIN_TOKEN", &srv.admin_token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stdin = stdin.map(str::to_string);
    run_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        let mut pipe = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).unwrap();
        }
        drop(pipe);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    })
    .await
}

/// The texts of the messages of one style a PAM conversation showed, in order.
pub fn texts(msgs: &[ConvMessage], style: MsgStyle) -> Vec<String> {
    msgs.iter()
        .filter(|m| m.style == style)
        .map(|m| m.text.clone())
        .collect()
}

/// A code of the same length that is not `code` (each digit moved on by one).
pub fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| {
            if c == '9' {
                '0'
            } else {
                char::from(c as u8 + 1)
            }
        })
        .collect()
}
