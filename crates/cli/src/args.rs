//! Command line definition (clap derive) and the value parsers that run before any request.

use clap::{Args, Parser, Subcommand};
use latchkey_proto::OtpAlgorithm;
use latchkey_proto::Secret;
use std::path::PathBuf;
use std::time::Duration;

mod since;

pub use since::{Since, parse_since};

/// `key=value` for `policy set` (the rule is the proto's, shared with the web console).
pub use latchkey_proto::policy_text::parse_setting;

const AFTER_HELP: &str = "\
Where the admin token and the server's certificate come from:
  --token / LATCHKEY_ADMIN_TOKEN, else ./latchkey-data/admin.token if it exists.
  --ca FILE / LATCHKEY_CA, or --pin sha256:HEX / LATCHKEY_PIN, else ./latchkey-data/tls.crt
  if it exists (so running next to the server's data directory just works).

Exit status: 0 on success, 1 on failure (including a rejected code in `token verify`),
2 on a usage error.";

/// Administer a latchkey MFA server: users, tokens, client policies, machines, audit log.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Server URL (https:// or http://).
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_SERVER",
        default_value = "https://127.0.0.1:8443",
        value_name = "URL"
    )]
    pub server: String,

    /// Admin API token. Default: the contents of ./latchkey-data/admin.token.
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// PEM file with the CA (or the server's own certificate) to trust.
    /// Default: ./latchkey-data/tls.crt.
    #[arg(
        long,
        global = true,
        env = "LATCHKEY_CA",
        value_name = "FILE",
        conflicts_with = "pin"
    )]
    pub ca: Option<PathBuf>,

    /// Trust exactly the server certificate with this SHA-256 (sha256:HEX).
    #[arg(long, global = true, env = "LATCHKEY_PIN", value_name = "sha256:HEX")]
    pub pin: Option<String>,

    /// Print the server's JSON answer instead of a table (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Enrol, list, remove and test OTP tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Show and change client policies (per access context: login, unlock, elevation, remote).
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Join tokens and joined machines.
    #[command(subcommand)]
    Machine(MachineCmd),
    /// Show the audit log (admin changes, logins, verifications).
    Audit(AuditArgs),
    /// Show events uploaded by agents (logons, logoffs, authentications, journal, locks).
    Events(EventsArgs),
    /// List open sessions (from the agents' logon/logoff events) with expiry and badge.
    Sessions(SessionsArgs),
    /// Admin accounts of the web console (password + TOTP; the API key keeps working).
    #[command(subcommand)]
    Admin(AdminCmd),
}

#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Create a web console admin: asks the password twice on the terminal, then shows the
    /// TOTP secret (QR code) to scan into an authenticator app.
    Add {
        name: String,
        /// Read the password from standard input (one line) instead of the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List web console admins.
    List,
    /// Remove a web console admin and end their sessions.
    Remove { name: String },
    /// Clear a web console admin's lockout (5 failed sign-ins lock for 15 minutes).
    Unlock { name: String },
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events of this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Only events of this machine (id or hostname).
    #[arg(long)]
    pub machine: Option<String>,
    /// Only events of this type (logon, logoff, unlock, auth_success, auth_failure, journal,
    /// session_lock, spool_dropped).
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// Only events since a time: a duration ago (30m, 1h, 2d) or an RFC 3339 time.
    #[arg(long, value_parser = parse_since, value_name = "WHEN")]
    pub since: Option<Since>,
    /// At most this many (the newest).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Keep printing new events as they arrive (Ctrl-C ends).
    #[arg(long)]
    pub follow: bool,
    /// With --follow: exit after this many events were printed.
    #[arg(long, value_name = "N", requires = "follow")]
    pub count: Option<usize>,
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// Only sessions of this user.
    #[arg(long)]
    pub user: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user.
    Add {
        name: String,
        #[arg(long, value_name = "TEXT")]
        display_name: Option<String>,
        /// Group membership; repeat for several groups.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// List users.
    List,
    /// Show a user and its tokens.
    Show { name: String },
    /// Refuse every login of the user until enabled again.
    Disable { name: String },
    /// Allow the user to log in again.
    Enable { name: String },
    /// Delete the user and its tokens.
    Remove { name: String },
    /// Create a one-time link to the self-service portal, where the user enrols and manages
    /// their own tokens; prints it with its QR code. Replaces the user's older link.
    Invite {
        name: String,
        /// How long the link stays valid (1m to 7d).
        #[arg(long, value_parser = parse_lifetime, default_value = "24h", value_name = "DURATION")]
        expires: Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Enrol a time-based token (RFC 6238) and show its QR code.
    AddTotp {
        user: String,
        #[command(flatten)]
        otp: OtpOpts,
        /// Time step in seconds.
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..=3600))]
        period: Option<u32>,
    },
    /// Enrol a counter-based token (RFC 4226) and show its QR code.
    AddHotp {
        user: String,
        #[command(flatten)]
        otp: OtpOpts,
    },
    /// Create a one-time link that registers the latchkey token app (push approvals,
    /// offline logins, TOTP) for a user; prints it with its QR code.
    AddApp {
        user: String,
        /// How long the link stays valid (e.g. 15m, 1h).
        #[arg(long, value_parser = parse_lifetime, default_value = "15m", value_name = "DURATION")]
        expires: Duration,
    },
    /// Start registering a FIDO2 security key for a user: prints a one-time code to finish
    /// with `latchkey-agent enroll-fido2 USER --code CODE` on the machine the key is in.
    AddFido2 {
        user: String,
        /// Free text shown in listings, e.g. "blue yubikey".
        #[arg(long, value_name = "TEXT")]
        label: Option<String>,
        /// How long the code stays valid (e.g. 15m, 1h).
        #[arg(long, value_parser = parse_lifetime, default_value = "15m", value_name = "DURATION")]
        expires: Duration,
    },
    /// Register a smartcard certificate (PEM) for a user, or with --enroll create a one-time
    /// code for `latchkey-agent enroll-smartcard` on the machine where the card is.
    AddSmartcard {
        user: String,
        /// The card's certificate, PEM.
        #[arg(
            long,
            value_name = "FILE.pem",
            required_unless_present = "enroll",
            conflicts_with = "enroll"
        )]
        cert: Option<std::path::PathBuf>,
        #[arg(long)]
        label: Option<String>,
        /// Print a one-time enrollment code instead of registering a certificate.
        #[arg(long)]
        enroll: bool,
        /// How long the enrollment code stays valid (e.g. 15m, 1h).
        #[arg(long, value_parser = parse_lifetime, default_value = "15m", value_name = "DURATION")]
        expires: Duration,
    },
    /// List a user's tokens (OATH tokens, token apps, smartcards, security keys).
    List { user: String },
    /// Delete a token by id.
    Remove { id: String },
    /// Check a code as a login would (the code is used up). Exits 1 when it is rejected.
    Verify { user: String, code: Secret },
    /// Bring an HOTP token's counter back in step with two consecutive codes (RFC 4226 §7.4).
    /// Exits 1 when the codes are not found.
    Resync {
        id: String,
        code1: Secret,
        code2: Secret,
    },
}

#[derive(Debug, Clone, Args)]
pub struct OtpOpts {
    /// Code length.
    #[arg(long, value_parser = parse_digits, value_name = "6|8")]
    pub digits: Option<u32>,
    /// Hash function: SHA1 (what every app supports), SHA256 or SHA512.
    #[arg(long, value_name = "ALG")]
    pub algorithm: Option<OtpAlgorithm>,
    /// Free text shown in listings, e.g. "phone".
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
    /// Import an existing seed (base32, e.g. a hardware token's) from FILE, or `-` for
    /// standard input, instead of generating one. Never on the command line: other users
    /// can read process arguments.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// List client policies.
    List,
    /// Show one client policy with every setting.
    Show { client_id: String },
    /// Change settings, e.g. `policy set login mfa_required=true offline.max_days=7`.
    Set {
        client_id: String,
        #[arg(required = true, value_parser = parse_setting, value_name = "KEY=VALUE")]
        settings: Vec<(String, String)>,
    },
    /// Delete a client policy so the `*` defaults apply again.
    Remove { client_id: String },
}

#[derive(Debug, Subcommand)]
pub enum MachineCmd {
    /// Create a one-time token for `latchkey-agent join`.
    JoinToken {
        /// Lifetime, e.g. 15m, 1h, 2d.
        #[arg(long, default_value = "1h", value_parser = parse_lifetime, value_name = "DURATION")]
        expires: Duration,
        /// Free text kept with the token, e.g. the machine it is for.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// List joined machines.
    List,
    /// Remove a machine: its credential stops working at once.
    Remove { id: String },
    /// Make a machine wipe USER's offline login bundle at its next contact with the server.
    ForgetOffline {
        /// Machine id or hostname.
        machine: String,
        user: String,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only entries about this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Only entries since a time: a duration ago (30m, 1h, 2d) or an RFC 3339 time.
    #[arg(long, value_parser = parse_since, value_name = "WHEN")]
    pub since: Option<Since>,
    /// At most this many entries.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}

fn parse_digits(s: &str) -> Result<u32, String> {
    match s {
        "6" => Ok(6),
        "8" => Ok(8),
        _ => Err(format!("must be 6 or 8, got {s:?}")),
    }
}

fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 15m, 1h, 2d)"))?;
    if d.as_secs() == 0 {
        return Err("must be at least one second".into());
    }
    Ok(d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn setting_needs_an_equals_sign_and_a_key() {
        assert_eq!(
            parse_setting("mfa_required=true").unwrap(),
            ("mfa_required".into(), "true".into())
        );
        assert_eq!(
            parse_setting("offline.max_days=7").unwrap(),
            ("offline.max_days".into(), "7".into())
        );
        assert_eq!(
            parse_setting("users=").unwrap(),
            ("users".into(), "".into())
        );
        assert_eq!(
            parse_setting("users=alice,bob=x").unwrap(),
            ("users".into(), "alice,bob=x".into()),
            "only the first = splits"
        );
        assert!(
            parse_setting("mfa_required")
                .unwrap_err()
                .contains("KEY=VALUE")
        );
        assert!(parse_setting("=true").is_err());
        assert!(parse_setting("mfa required=true").is_err());
    }

    #[test]
    fn policy_set_without_equals_is_a_usage_error_before_any_request() {
        let err = Cli::try_parse_from(["latchkey", "policy", "set", "login", "mfa_required"])
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("KEY=VALUE"), "{err}");
        let cli = Cli::try_parse_from([
            "latchkey",
            "policy",
            "set",
            "login",
            "mfa_required=false",
            "offline.max_days=3",
        ])
        .unwrap();
        match cli.command {
            Command::Policy(PolicyCmd::Set {
                client_id,
                settings,
            }) => {
                assert_eq!(client_id, "login");
                assert_eq!(settings.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn token_options_are_checked() {
        let cli = Cli::try_parse_from([
            "latchkey",
            "token",
            "add-totp",
            "bob",
            "--digits",
            "8",
            "--algorithm",
            "sha256",
            "--period",
            "60",
        ])
        .unwrap();
        match cli.command {
            Command::Token(TokenCmd::AddTotp { user, otp, period }) => {
                assert_eq!(user, "bob");
                assert_eq!(otp.digits, Some(8));
                assert_eq!(otp.algorithm, Some(OtpAlgorithm::Sha256));
                assert_eq!(period, Some(60));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Cli::try_parse_from(["latchkey", "token", "add-totp", "bob", "--digits", "7"]).is_err()
        );
        assert!(
            Cli::try_parse_from(["latchkey", "token", "add-hotp", "bob", "--algorithm", "md5"])
                .is_err()
        );
    }

    #[test]
    fn global_options_go_anywhere_and_ca_conflicts_with_pin() {
        let cli = Cli::try_parse_from([
            "latchkey",
            "user",
            "list",
            "--json",
            "--server",
            "http://h:1",
        ])
        .unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.server, "http://h:1");
        assert!(
            Cli::try_parse_from([
                "latchkey",
                "--ca",
                "x.pem",
                "--pin",
                "sha256:00",
                "user",
                "list"
            ])
            .is_err()
        );
    }

    #[test]
    fn join_token_lifetime_is_a_humantime_duration() {
        let cli =
            Cli::try_parse_from(["latchkey", "machine", "join-token", "--expires", "15m"]).unwrap();
        match cli.command {
            Command::Machine(MachineCmd::JoinToken { expires, note }) => {
                assert_eq!(expires, Duration::from_secs(900));
                assert_eq!(note, None);
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["latchkey", "machine", "join-token"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Machine(MachineCmd::JoinToken { expires, .. }) if expires == Duration::from_secs(3600)
        ));
        assert!(
            Cli::try_parse_from(["latchkey", "machine", "join-token", "--expires", "0s"]).is_err()
        );
    }
}
