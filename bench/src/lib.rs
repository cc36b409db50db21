//! Load generators for latchkey: they start (or target) a real `latchkeyd` over HTTPS and
//! print figures next to the performance targets. Not tests: nothing here asserts.
//!
//! - [`server`]: a `latchkeyd` child process in a throw-away data directory.
//! - [`procfs`]: CPU time and resident memory of a process, from `/proc`.
//! - [`seed`]: bench users with deterministic TOTP seeds, and one joined machine.
//! - [`load`]: the closed-loop login/start + login/otp generator.
//! - [`latency`]: the per-verification latency record and its percentiles.
//! - [`report`]: figures, targets, text and JSON output.
//! - [`run`]: the whole `otp-load` scenario from start to stop.

pub mod h1;
pub mod latency;
pub mod load;
pub mod procfs;
pub mod report;
pub mod run;
pub mod seed;
pub mod server;
