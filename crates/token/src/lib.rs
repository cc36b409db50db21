//! latchkey-token: what a phone authenticator app does, as a library and a command-line
//! program.
//!
//! - [`link`]: the administrator's registration link (server, one-time code, certificate pin).
//! - [`store`]: the token file, sealed with a passphrase (Argon2id + XChaCha20-Poly1305).
//! - [`account`]: one server × user registration and its keys: an Ed25519 key signs push
//!   answers and badges, an X25519 key receives offline challenges, a TOTP seed gives codes.
//! - [`api`]: the server's token-app API over HTTPS.
//! - [`gateway`]: how push requests reach the app ([`gateway::PushGateway`]; long poll here,
//!   FCM/APNs would be other implementations).
//! - [`offline`]: answering an offline login's QR challenge.
//! - [`watch`]: showing requests and sending signed answers with number matching.
//! - [`cli`]: the `latchkey-token` command line.

pub mod account;
pub mod api;
pub mod cli;
pub mod error;
pub mod gateway;
pub mod link;
pub mod offline;
pub mod passphrase;
pub mod store;
pub mod watch;

pub use account::Account;
pub use error::{Error, Result};
pub use gateway::{LongPoll, PushGateway};
pub use link::RegistrationLink;
pub use store::{KdfParams, TokenFile};
