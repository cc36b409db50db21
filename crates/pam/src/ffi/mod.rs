//! The only unsafe code of the module: libpam's C API, the exported `pam_sm_*` entry
//! points and a Unix-socket connect with a timeout. Everything here converts between C and
//! Rust and calls into `crate::core`; no decision is made here.
#![allow(unsafe_code)]

mod exports;
mod handle;
mod socket;
mod sys;

pub(crate) use socket::{connect_unix, euid, peer_uid};
