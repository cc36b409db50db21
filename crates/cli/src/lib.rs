//! `latchkey`: the admin command line over the server's admin API.
//!
//! [`run`] is the whole program (the binary's `main` only calls it); [`execute`] runs a parsed
//! command inside an existing async runtime and writes to any output, for tests.

mod admins;
pub mod args;
mod commands;
mod conn;
mod error;
mod events;
mod output;
pub mod qr;
mod smartcard;

pub use args::Cli;
pub use commands::{Outcome, execute};
pub use conn::DEFAULT_DATA_DIR;
pub use error::{CliError, Result};

use clap::Parser;
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

/// Parses `args` (program name first), runs the command and returns the exit status:
/// 0 success, 1 failure or refused code, 2 usage error. Errors are one line on stderr,
/// prefixed `latchkey: `.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (status 0) and errors to stderr (status 2).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkey: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let mut stdout = std::io::stdout();
    match runtime.block_on(execute(&cli, Path::new(DEFAULT_DATA_DIR), &mut stdout)) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Refused) => ExitCode::from(1),
        // `latchkey … | head` closing the pipe early is not worth a message.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(1),
        Err(e) => {
            eprintln!("latchkey: {e}");
            e.exit_code()
        }
    }
}
