//! Wire types of latchkey.
//!
//! Everything that crosses a process boundary is defined here once: the server's HTTP API
//! (machine and admin sides). Later: the agent socket protocol, the offline bundle and the QR
//! payload. All types are plain serde structs; version changes add optional fields or new
//! enum variants, never change the meaning of an existing field.

pub mod admin;
pub mod agent;
pub mod app;
pub mod common;
pub mod events;
pub mod fido2;
pub mod login;
pub mod machine;
pub mod offline;
pub mod smartcard;

pub use common::*;

/// Version of the HTTP API, the `/v1` prefix of every route.
pub const API_VERSION: u32 = 1;
