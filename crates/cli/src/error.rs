//! The CLI's error type and how it maps to an exit status.

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Wrong or missing options found after parsing (exit status 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] latchkey_client::Error),
    #[error("cannot draw the QR code: {0}")]
    Qr(#[from] qrcode::types::QrError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

pub type Result<T> = std::result::Result<T, CliError>;
