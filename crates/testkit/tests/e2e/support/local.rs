//! A local user played by `lk-local-caller` running as `nobody`, and an agent whose session
//! lock command records what it was asked to lock.

use latchkey_testkit::TestServer;
use latchkey_testkit::agent::TestAgent;
use latchkey_testkit::local::{FAST, NOBODY, lock_recorder};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `lk-local-caller ARGS…` to be run as nobody (the caller must be root).
pub fn as_nobody(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lk-local-caller"));
    c.args(args).uid(NOBODY).gid(NOBODY);
    c
}

/// An agent whose session lock runs a [`lock_recorder`] in `dir` every 100 ms poll, reading
/// logind's sessions from `logind` when given; the agent and the recorder's log.
pub async fn lock_agent(
    srv: &TestServer,
    dir: &Path,
    logind: Option<&Path>,
) -> (TestAgent, PathBuf) {
    let (script, log) = lock_recorder(dir).unwrap();
    let mut config = format!(
        "{FAST}[session_lock]\ncommand = [\"{}\", \"{{user}}\", \"{{session}}\"]\npoll_interval = \"100ms\"\n",
        script.display()
    );
    if let Some(logind) = logind {
        config.push_str(&format!("logind_sessions = \"{}\"\n", logind.display()));
    }
    let agent = TestAgent::start_with(srv, |s| s.config_append = config)
        .await
        .unwrap();
    (agent, log)
}
