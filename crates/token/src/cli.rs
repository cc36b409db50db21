//! The command line: argument parsing and one function per command. `main.rs` only calls
//! [`main`].

use crate::account::{self, Account, NewKeys, SecretString, printable};
use crate::api::{self, AppApi};
use crate::error::{Error, Result};
use crate::gateway::LongPoll;
use crate::link;
use crate::passphrase::{self, Purpose};
use crate::store::{self, KdfParams, TokenFile};
use crate::watch::{self, Answer, FixedAnswer, TerminalPrompter, WatchOptions};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Parser, Subcommand, ValueEnum};
use latchkey_crypto::otpauth::OtpAuthUri;
use latchkey_proto::app::{AppRegister, Badge, BadgeState, PushVerdict};
use std::path::PathBuf;

/// latchkey-token: the latchkey soft token. Registers with a latchkey server through an
/// administrator's link, shows TOTP codes, and approves or denies logins by push with number
/// matching.
#[derive(Debug, Parser)]
#[command(name = "latchkey-token", version)]
pub struct Cli {
    /// Token file [default: $XDG_DATA_HOME/latchkey-token/tokens.json]
    #[arg(long, global = true, env = store::FILE_ENV, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Read the token file's passphrase from FILE (one trailing newline is ignored);
    /// otherwise from $LATCHKEY_TOKEN_PASSPHRASE, otherwise asked on the terminal.
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register this app with a server through a registration link from `latchkey token add-app`.
    Register {
        /// https://SERVER/app/register?code=…&pin=sha256:…
        link: String,
        /// Local name of the account [default: USER@SERVER-HOST]
        #[arg(long)]
        name: Option<String>,
        /// Name the administrator sees for this app [default: latchkey-token on HOSTNAME]
        #[arg(long)]
        device_name: Option<String>,
    },
    /// Print the current TOTP code.
    Code {
        /// Account name (needed when there are several).
        account: Option<String>,
    },
    /// List the accounts.
    List,
    /// Wait for login requests and answer them with the number shown on the login screen.
    Watch {
        account: Option<String>,
        /// Handle one request, then exit (0 if the server accepted the answer).
        #[arg(long)]
        once: bool,
        /// Answer every request with N (or 'd' to deny) without asking.
        #[arg(long, value_name = "N|d")]
        answer: Option<String>,
    },
    /// Approve a waiting login request with the number shown on the login screen.
    Approve {
        /// Transaction id of the request.
        tx: String,
        #[arg(long, value_name = "N")]
        number: u32,
        account: Option<String>,
    },
    /// Deny a waiting login request.
    Deny {
        tx: String,
        /// Why (recorded in the server's audit log).
        #[arg(long)]
        reason: Option<String>,
        account: Option<String>,
    },
    /// Record presence on the server (badge in or out).
    Badge {
        state: BadgeArg,
        account: Option<String>,
    },
    /// Answer an offline login: open the QR challenge the login screen shows and print the
    /// code to type there.
    Answer {
        /// The challenge text under the QR code (LK1:…); quote it, it may contain spaces.
        #[arg(required_unless_present = "image", conflicts_with = "image")]
        payload: Option<String>,
        /// A PNG picture of the QR code (a photo or screenshot).
        #[arg(long, value_name = "FILE.png")]
        image: Option<PathBuf>,
    },
    /// Forget an account locally (an administrator still has to remove the app on the server).
    Remove { account: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BadgeArg {
    In,
    Out,
}

/// Parses the process arguments, runs the command, prints errors as one line; returns the
/// exit code (0, 1 for failures, 2 for usage).
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkey-token: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("latchkey-token: {e}");
            e.exit_code()
        }
    }
}

pub async fn run(cli: Cli) -> Result<()> {
    let path = match &cli.file {
        Some(p) => p.clone(),
        None => store::default_path()?,
    };
    let ctx = Ctx {
        path,
        passphrase_file: cli.passphrase_file,
    };
    match cli.command {
        Command::Register {
            link,
            name,
            device_name,
        } => register(&ctx, &link, name, device_name).await,
        Command::Code { account } => code(&ctx, account.as_deref()),
        Command::List => list(&ctx),
        Command::Watch {
            account,
            once,
            answer,
        } => watch_cmd(&ctx, account.as_deref(), once, answer.as_deref()).await,
        Command::Approve {
            tx,
            number,
            account,
        } => answer_cmd(&ctx, account.as_deref(), &tx, Answer::Number(number), None).await,
        Command::Deny {
            tx,
            reason,
            account,
        } => answer_cmd(&ctx, account.as_deref(), &tx, Answer::Deny, reason).await,
        Command::Badge { state, account } => badge(&ctx, account.as_deref(), state).await,
        Command::Remove { account } => remove(&ctx, &account),
        Command::Answer { payload, image } => offline_answer(&ctx, payload, image),
    }
}

fn offline_answer(ctx: &Ctx, payload: Option<String>, image: Option<PathBuf>) -> Result<()> {
    let text = match (payload, image) {
        (_, Some(path)) => crate::offline::read_png(&path)?,
        (Some(p), None) => p,
        (None, None) => {
            return Err(Error::Usage(
                "give the challenge text or --image FILE.png".into(),
            ));
        }
    };
    // Parse before asking for the passphrase: a typo fails at once.
    latchkey_crypto::challenge::from_text(&text).map_err(crate::offline::not_a_challenge)?;
    let file = ctx.open()?;
    let o = crate::offline::open(&file.accounts, &text, now())?;
    println!(
        "{}@{}, {}, expires {}",
        o.user,
        o.host,
        o.client_id,
        crate::offline::hhmm(o.expires_at)
    );
    println!("{}", o.code.expose());
    Ok(())
}

struct Ctx {
    path: PathBuf,
    passphrase_file: Option<PathBuf>,
}

impl Ctx {
    fn open(&self) -> Result<TokenFile> {
        if !self.path.exists() {
            // Fail before asking for a passphrase that could not open anything.
            return Err(store::not_found(&self.path));
        }
        let pass = passphrase::obtain(self.passphrase_file.as_deref(), Purpose::Open)?;
        TokenFile::open(&self.path, pass.expose().as_bytes())
    }

    fn open_or_create(&self) -> Result<TokenFile> {
        let exists = self.path.try_exists().map_err(|e| Error::File {
            path: self.path.clone(),
            reason: format!("cannot check: {e}"),
        })?;
        if exists {
            return self.open();
        }
        let params = KdfParams::from_env()?;
        let pass = passphrase::obtain(self.passphrase_file.as_deref(), Purpose::Create)?;
        TokenFile::create(&self.path, pass.expose().as_bytes(), params)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn default_device_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    if host.is_empty() {
        "latchkey-token".into()
    } else {
        format!("latchkey-token on {host}")
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(Error::Usage(format!(
            "invalid account name {name:?}: 1 to 100 printable characters"
        )));
    }
    Ok(())
}

async fn register(
    ctx: &Ctx,
    link_text: &str,
    name: Option<String>,
    device_name: Option<String>,
) -> Result<()> {
    let link = link::parse(link_text)?;
    if let Some(n) = &name {
        check_name(n)?;
    }
    let mut file = ctx.open_or_create()?;
    if let Some(n) = &name
        && file.accounts.iter().any(|a| &a.name == n)
    {
        return Err(Error::Usage(format!(
            "an account named {n:?} already exists: choose another --name"
        )));
    }
    let device_name = device_name.unwrap_or_else(default_device_name);
    let keys = NewKeys::generate()?;
    let req = AppRegister {
        code: link.code.clone(),
        device_name: device_name.clone(),
        x25519_public: B64.encode(keys.x25519_public()),
        ed25519_public: B64.encode(keys.ed25519_public()),
    };
    let reg = api::register(&link, &req).await?;
    let otpauth = SecretString::new(reg.otpauth_uri);
    OtpAuthUri::parse(otpauth.expose())
        .map_err(|e| Error::Crypto(format!("the server sent an unusable TOTP seed: {e}")))?;
    let name = name.unwrap_or_else(|| account::default_name(&file.accounts, &reg.user, &link.host));
    let app_id = reg.app_id.clone();
    file.accounts.push(Account {
        name: name.clone(),
        server: link.server.clone(),
        pin: link.pin.clone(),
        user: reg.user.to_string(),
        app_id: reg.app_id,
        device_name,
        registered_at: now(),
        app_key: SecretString::new(reg.app_key),
        x25519_secret: keys.x25519_secret,
        ed25519_seed: keys.ed25519_seed,
        otpauth_uri: otpauth,
    });
    file.save().map_err(|e| {
        Error::Refused(format!(
            "the server registered app {app_id} but it could not be saved ({e}): ask an administrator to remove that app, then register again"
        ))
    })?;
    println!(
        "Registered {}: user {} on {} (app {})",
        printable(&name),
        printable(&reg.user),
        link.server,
        printable(&app_id)
    );
    Ok(())
}

fn code(ctx: &Ctx, account: Option<&str>) -> Result<()> {
    let file = ctx.open()?;
    let a = account::select(&file.accounts, account)?;
    println!("{}", a.totp_code(now().max(0) as u64)?);
    Ok(())
}

fn list(ctx: &Ctx) -> Result<()> {
    let file = ctx.open()?;
    if file.accounts.is_empty() {
        println!("No accounts.");
    }
    for a in &file.accounts {
        println!(
            "{}\tuser {} on {} (app {}, {})",
            printable(&a.name),
            printable(&a.user),
            printable(&a.server),
            printable(&a.app_id),
            printable(&a.device_name)
        );
    }
    Ok(())
}

async fn watch_cmd(
    ctx: &Ctx,
    account: Option<&str>,
    once: bool,
    answer: Option<&str>,
) -> Result<()> {
    let answer: Option<Answer> = answer.map(str::parse).transpose()?;
    let file = ctx.open()?;
    let a = account::select(&file.accounts, account)?;
    let api = AppApi::new(a)?;
    let mut gateway = LongPoll::new(api.clone());
    let opts = WatchOptions { once };
    if !once {
        println!(
            "Waiting for login requests for {} (Ctrl-C to stop)…",
            printable(&a.name)
        );
    }
    match answer {
        Some(ans) => watch::watch(a, &mut gateway, &api, &mut FixedAnswer(ans), opts).await,
        None => watch::watch(a, &mut gateway, &api, &mut TerminalPrompter, opts).await,
    }
}

async fn answer_cmd(
    ctx: &Ctx,
    account: Option<&str>,
    tx: &str,
    answer: Answer,
    reason: Option<String>,
) -> Result<()> {
    let file = ctx.open()?;
    let a = account::select(&file.accounts, account)?;
    let api = AppApi::new(a)?;
    let pending = api.pending(0).await?;
    let req = pending.iter().find(|r| r.tx == tx).ok_or_else(|| {
        Error::NotPending(format!(
            "login request {} is not waiting for {} (already answered, expired, or never sent)",
            printable(tx),
            printable(&a.name)
        ))
    })?;
    let r = watch::response(a, &req.tx, &req.nonce, &answer, reason);
    verdict(api.respond(&r).await?)
}

async fn badge(ctx: &Ctx, account: Option<&str>, state: BadgeArg) -> Result<()> {
    let file = ctx.open()?;
    let a = account::select(&file.accounts, account)?;
    let state = match state {
        BadgeArg::In => BadgeState::In,
        BadgeArg::Out => BadgeState::Out,
    };
    let time = now();
    let b = Badge {
        state,
        time,
        signature: a.sign_badge(state, time),
    };
    verdict(AppApi::new(a)?.badge(&b).await?)
}

fn remove(ctx: &Ctx, name: &str) -> Result<()> {
    let mut file = ctx.open()?;
    let a = account::select(&file.accounts, Some(name))?;
    let app_id = a.app_id.clone();
    file.accounts.retain(|a| a.name != name);
    file.save()?;
    println!(
        "Removed {}. App {} stays registered on the server until an administrator removes it.",
        printable(name),
        printable(&app_id)
    );
    Ok(())
}

/// Prints an accepted verdict; a refused one is the command's error (exit 1).
fn verdict(v: PushVerdict) -> Result<()> {
    if v.ok {
        println!("{}", printable(&v.message));
        Ok(())
    } else {
        Err(Error::Refused(printable(&v.message)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn approve_takes_tx_number_and_optional_account() {
        let cli = Cli::try_parse_from([
            "latchkey-token",
            "approve",
            "tx1",
            "--number",
            "42",
            "alice@h",
        ])
        .unwrap();
        match cli.command {
            Command::Approve {
                tx,
                number,
                account,
            } => {
                assert_eq!(
                    (tx.as_str(), number, account.as_deref()),
                    ("tx1", 42, Some("alice@h"))
                );
            }
            other => panic!("{other:?}"),
        }
        let e = Cli::try_parse_from(["latchkey-token", "approve", "tx1"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn account_names_are_checked() {
        assert!(check_name("alice@h").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a\nb").is_err());
    }
}
