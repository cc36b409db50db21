//! Wire types of latchkey.
//!
//! Everything that crosses a process boundary is defined here once: the server's HTTP API
//! (machine and admin sides, its routes and error codes), the agent socket protocol, the
//! offline bundle and the QR payload, and the identifiers and secrets they carry. All types
//! are plain serde structs; version changes add optional fields or new enum variants, never
//! change the meaning of an existing field.
//!
//! Feature `openapi` (latchkeyd only) adds JSON Schemas of the types and
//! [`openapi::document`], the OpenAPI 3.1 description of the HTTP API.

pub mod admin;
pub mod agent;
pub mod app;
pub mod common;
pub mod enroll;
pub mod error_code;
pub mod events;
pub mod fido2;
pub mod ids;
pub mod login;
pub mod machine;
pub mod offline;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod policy_text;
pub mod routes;
pub mod secret;
pub mod smartcard;

pub use common::*;
pub use error_code::ErrorCode;
pub use ids::{ClientId, InvalidId, MachineId, TxId, UserName};
pub use secret::Secret;

/// Version of the HTTP API, the `/v1` prefix of every route.
pub const API_VERSION: u32 = 1;
