//! Every end-to-end test of latchkey, in one test binary: real servers on loopback ports, real
//! agents, the real PAM module in the real libpam, the token app and the Windows parts under
//! Wine. One binary links once (nineteen did before) and lets the tests share their set-up
//! from `support` and from `latchkey_testkit` instead of copying it.
//!
//! A new file of end-to-end tests goes here as a module (`tests/e2e/NAME.rs` and `mod NAME;`
//! below), not as `tests/NAME.rs`: `layout::` fails while one is left outside.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod agent;
mod api;
mod browser;
mod enrollment;
mod events;
mod fido2;
mod http_limits;
mod layout;
mod local_attacks;
mod local_events;
mod login;
mod offline;
mod offline_clock;
mod offline_hw;
mod pam_e2e;
mod pam_fake_agent;
mod push;
mod server_attacks;
mod session_context;
mod smartcard;
mod token_app;
mod windows;
mod wire_ids;
