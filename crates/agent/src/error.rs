//! The agent's one error type. Each variant says which part failed; the text is for the log
//! or the operator, never a login decision (those are typed outcomes of the engine).

use crate::agent_db::AgentDbError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// `agent.toml` or a command-line value is not usable; the text names the key.
    #[error("{0}")]
    Config(String),
    /// A file or directory of the agent.
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] AgentDbError),
    /// The agent's socket or named pipe: binding it, or a frame on it.
    #[error("{0}")]
    Socket(String),
    /// A server call of a one-shot command (join, enrolment) got no usable answer.
    #[error("{0}")]
    Server(String),
    /// A local caller's request the agent does not carry out (a session id that is not the
    /// caller's, a lock it may not run).
    #[error("{0}")]
    Refused(String),
    /// Something of this machine: randomness, a thread, a security key or a smartcard.
    #[error("{0}")]
    Local(String),
}

impl AgentError {
    pub fn file(path: impl Into<PathBuf>, source: std::io::Error) -> AgentError {
        AgentError::File {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = AgentError> = std::result::Result<T, E>;
