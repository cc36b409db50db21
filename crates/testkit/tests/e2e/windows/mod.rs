//! The Windows parts under Wine. Every test here is `#[ignore]`d: it needs the Windows build,
//! so `scripts/test` runs this module alone after that build (`--run-ignored only` with the
//! filter `test(/^windows::/)`).

mod cp;
mod enrol;
mod msi;
mod wine;
