//! `pam_latchkey.so`: the PAM shell of latchkey.
//!
//! The module is thin on purpose (DESIGN.md, "Parts"): no network but the local agent's Unix
//! socket, no async runtime, no decisions. It renders the agent's steps on the PAM
//! conversation and returns the agent's verdict. Every path that is not an explicit
//! `Step::Success` from the agent ends in a refusal (fail closed); see `docs/pam.md`.
//!
//! Layout: [`core`] holds the logic behind the [`PamHandle`] trait so it is tested without
//! libpam; `ffi` (the only place with `unsafe`) implements that trait over a real
//! `pam_handle_t` and exports the `pam_sm_*` entry points.

mod agent;
mod code;
mod core;
mod error;
mod ffi;
mod options;

pub use crate::code::{Flags, Item, LogLevel, MsgStyle, PamCode};
pub use crate::core::{PamHandle, acct_mgmt, authenticate, session};
pub use crate::error::{Error, Result};
pub use crate::options::{DEFAULT_TIMEOUT, Options};
pub use latchkey_proto::agent::SessionEvent;

#[cfg(test)]
mod tests;
