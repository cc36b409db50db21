use std::path::PathBuf;

/// Why a login could not be decided by the agent. Every variant ends in a refusal; the
/// variant only chooses the syslog line and the words shown to the person.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad module option {0}")]
    Option(String),
    #[error("cannot determine the user: {0}")]
    User(String),
    #[error("PAM item missing: {0}")]
    Item(&'static str),
    #[error("cannot reach the agent at {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("agent socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("unexpected reply from the agent: {0}")]
    Protocol(String),
    /// The agent answered `Error{message}` (e.g. a non-root caller asking for another user).
    #[error("agent refused: {0}")]
    Refused(String),
    #[error("conversation failed: {0}")]
    Conversation(String),
}

pub type Result<T> = std::result::Result<T, Error>;
