//! The one error type of the token app. Each variant reads as one line for people; the CLI
//! prefixes it with `latchkey-token: ` and maps [`Error::exit_code`].

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line cannot work as given (missing account name, bad option value).
    #[error("{0}")]
    Usage(String),

    /// The AEAD tag did not verify. A wrong passphrase and a modified file are the same event
    /// to the cipher, and telling them apart would help an attacker, so one message covers both.
    #[error("wrong passphrase or damaged token file")]
    WrongPassphrase,

    /// The token file is missing, unreadable, not a token file, or cannot be written.
    #[error("token file {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },

    /// No passphrase could be obtained (no terminal, empty file, mismatch on confirmation).
    #[error("{0}")]
    Passphrase(String),

    /// The registration link is malformed.
    #[error("invalid registration link: {0}")]
    Link(String),

    /// The server refused the registration code (used, expired or unknown).
    #[error(
        "the server refused this registration link (already used, expired or unknown): ask your administrator for a new one"
    )]
    LinkRefused,

    /// The server no longer accepts this app's key (the app was revoked or removed).
    #[error(
        "the server at {server} refused this app's key: the app was revoked or removed (register it again with a new link)"
    )]
    Revoked { server: String },

    /// The server answered but refused the approval, denial or badge.
    #[error("{0}")]
    Refused(String),

    /// The push request named on the command line is not waiting for this account.
    #[error("{0}")]
    NotPending(String),

    /// Talking to the server failed (transport, TLS, unexpected answer).
    #[error("{0}")]
    Server(#[from] latchkey_client::Error),

    /// Key material or an otpauth URI is unusable.
    #[error("{0}")]
    Crypto(String),

    /// An offline challenge cannot be answered (expired, unknown key, damaged…).
    #[error("{message}")]
    Challenge {
        kind: crate::offline::Unanswerable,
        message: String,
    },

    /// Reading the answer from the terminal failed.
    #[error("{0}")]
    Terminal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// 2 for usage errors (as clap does), 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }

    /// True when waiting and trying again may help (no connection, timeout, TLS, 5xx). The
    /// watch loop backs off on these and gives up on anything else.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Server(e) => e.is_unreachable(),
            _ => false,
        }
    }

    pub(crate) fn file(path: &std::path::Path, reason: impl Into<String>) -> Error {
        Error::File {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

impl From<latchkey_crypto::Error> for Error {
    fn from(e: latchkey_crypto::Error) -> Self {
        Error::Crypto(e.to_string())
    }
}
