//! Module arguments from the PAM stack line, e.g.
//! `auth required pam_latchkey.so client_id=elevation timeout=120 debug`, and `enroll` to
//! offer inline enrolment (only after a `requisite` password module).
//!
//! An unknown or malformed argument is an error, not a warning: a typo such as `clientid=`
//! must not quietly run the login under another access context (docs/pam.md).

use crate::error::{Error, Result};
use latchkey_proto::ClientId;
use latchkey_proto::agent::DEFAULT_SOCKET;
use std::path::PathBuf;
use std::time::Duration;

/// How long one read from the agent may take by default. The agent answers `Begin` after
/// the server round trip and a `Wait` step only when the push is settled, so this is the
/// time a person has to approve a push.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
const MAX_TIMEOUT_SECS: u64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Access context sent in `Begin`/`AccountCheck`; `None` lets the agent map the service.
    pub client_id: Option<ClientId>,
    pub socket: PathBuf,
    /// Per-read and per-write limit on the agent socket.
    pub timeout: Duration,
    /// Log each step's kind and prompt label (never answers) at LOG_DEBUG.
    pub debug: bool,
    /// Offer inline enrolment to a user without a token: the admin's statement that the
    /// password module before this one is `requisite` (docs/enrollment.md, docs/pam.md).
    pub enroll: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            client_id: None,
            socket: PathBuf::from(DEFAULT_SOCKET),
            timeout: DEFAULT_TIMEOUT,
            debug: false,
            enroll: false,
        }
    }
}

impl Options {
    /// Parses the stack line's arguments; a repeated option takes its last value.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Options> {
        let mut opts = Options::default();
        for arg in args {
            let arg = arg.as_ref();
            let bad = |why: &str| Error::Option(format!("{arg:?}: {why}"));
            match arg.split_once('=') {
                None if arg == "debug" => opts.debug = true,
                None if arg == "enroll" => opts.enroll = true,
                // The server's own rule (one validator), so a context PAM accepts is one the
                // server accepts too.
                Some(("client_id", v)) => match ClientId::parse(v) {
                    Ok(id) => opts.client_id = Some(id),
                    Err(e) => return Err(bad(&e.message)),
                },
                Some(("socket", v)) => {
                    if !v.starts_with('/') {
                        return Err(bad("an absolute path"));
                    }
                    opts.socket = PathBuf::from(v);
                }
                Some(("timeout", v)) => match v.parse::<u64>() {
                    Ok(s) if (1..=MAX_TIMEOUT_SECS).contains(&s) => {
                        opts.timeout = Duration::from_secs(s)
                    }
                    _ => return Err(bad("whole seconds from 1 to 3600")),
                },
                _ => return Err(bad("unknown option")),
            }
        }
        Ok(opts)
    }
}
