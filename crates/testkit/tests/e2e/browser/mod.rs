//! The browser harness (`latchkey_testkit::browser`) against a real latchkeyd: Debian's
//! Chromium, driven by playwright-core, trusting the server's self-signed certificate by its
//! public key. The token app's and the web console's browser tests build on these.
//!
//! Every test here is `#[ignore]`d: it needs Chromium and the driver's node_modules, so
//! `scripts/test` installs them and runs this module alone (`--run-ignored only` with the
//! filter `test(/^browser::/)`). Screenshots land in `<target>/browser-artefacts/<test>/`.

mod camera;
mod service_worker;
mod smoke;
mod token_app;
mod web_console;
