//! The `latchkey-token` program as a separate process with its own token file, as a person
//! would run it (offline answers; the CLI's own tests are in tests/e2e/token_app.rs).

use crate::TestServer;
use anyhow::{Context, Result, ensure};
use latchkey_proto::app::{AppLinkCreate, AppLinkCreated};
use latchkey_proto::routes;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use tempfile::TempDir;

pub const PASSPHRASE: &str = "correct horse battery staple";

pub struct TokenCli {
    pub file: PathBuf,
    _dir: TempDir,
}

/// What one run printed.
#[derive(Debug)]
pub struct CliOut {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl TokenCli {
    pub fn new() -> Result<TokenCli> {
        let dir = tempfile::tempdir()?;
        Ok(TokenCli {
            file: dir.path().join("tokens.json"),
            _dir: dir,
        })
    }

    /// Runs `latchkey-token ARGS` (blocking: call it off the async threads).
    pub fn run(&self, args: &[&str]) -> Result<CliOut> {
        let out = Command::new(crate::workspace_bin("latchkey-token")?)
            .args(args)
            .env("LATCHKEY_TOKEN_FILE", &self.file)
            .env("LATCHKEY_TOKEN_PASSPHRASE", PASSPHRASE)
            .env("LATCHKEY_TOKEN_KDF_MEMORY_KIB", "1024")
            .stdin(Stdio::null())
            .output()
            .context("running latchkey-token")?;
        Ok(CliOut {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Registers with `srv` for `user` through an admin link, as a person would.
    pub async fn register(srv: &TestServer, user: &str) -> Result<TokenCli> {
        let l: AppLinkCreated = srv
            .admin()?
            .post(&routes::admin_user_apps(user), &AppLinkCreate::default())
            .await?;
        let link = format!(
            "{}/app/register?code={}&pin={}",
            srv.url(),
            l.code.expose(),
            l.tls_fingerprint
        );
        let t = TokenCli::new()?;
        let t = tokio::task::spawn_blocking(move || -> Result<TokenCli> {
            let out = t.run(&["register", &link])?;
            ensure!(
                out.code == 0,
                "register failed: {}{}",
                out.stdout,
                out.stderr
            );
            Ok(t)
        })
        .await??;
        Ok(t)
    }

    /// The current TOTP code of the (only) account.
    pub fn totp(&self) -> Result<String> {
        let out = self.run(&["code"])?;
        ensure!(out.code == 0, "code failed: {}", out.stderr);
        Ok(out.stdout.trim().to_string())
    }

    /// `latchkey-token answer PAYLOAD`: (context line, code).
    pub fn answer(&self, payload: &str) -> Result<(String, String)> {
        let out = self.run(&["answer", payload])?;
        ensure!(out.code == 0, "answer failed: {}", out.stderr.trim());
        let mut lines = out.stdout.lines();
        let context = lines.next().unwrap_or_default().to_string();
        let code = lines.next().unwrap_or_default().trim().to_string();
        Ok((context, code))
    }
}
