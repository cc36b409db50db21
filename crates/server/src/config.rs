//! latchkeyd configuration: flags, then `LATCHKEY_*` environment, then `latchkeyd.toml`,
//! then defaults.

mod web;

pub use web::default_origin;

use clap::Parser;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How the server speaks HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSetting {
    /// A self-signed certificate created on first start in the data directory.
    SelfSigned,
    /// Operator-supplied PEM certificate chain and key.
    Files { cert: PathBuf, key: PathBuf },
    /// Plain HTTP: only with an explicit `--insecure-http` (e.g. behind a TLS proxy).
    InsecureHttp,
}

/// Default FIDO2 relying party id: a fixed name, not a host name, so credentials survive a
/// rename and work with every instance of a server list.
pub const DEFAULT_RP_ID: &str = "latchkey";

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// SQLite path (or `sqlite:PATH`); default `DATA_DIR/latchkey.db`.
    pub database: Option<String>,
    pub tls: TlsSetting,
    /// TOTP steps of clock drift accepted on each side.
    pub totp_window: u32,
    /// HOTP counters tried ahead of the last used one.
    pub hotp_look_ahead: u32,
    /// HOTP resynchronisation search window.
    pub hotp_resync_window: u32,
    /// Login API requests per second allowed per machine (token bucket), and the burst.
    pub machine_rate: u32,
    pub machine_burst: u32,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Issuer shown in authenticator apps.
    pub issuer: String,
    /// FIDO2 relying party id: the name security-key credentials are bound to. Changing it
    /// orphans every registered key (see docs/fido2.md).
    pub fido2_rp_id: String,
    /// PEM certificate of the CA that must have issued every smartcard certificate.
    pub smartcard_ca: Option<PathBuf>,
    /// Days agent events (and closed sessions) are kept after they arrive; 0 keeps them forever.
    pub event_retention_days: u32,
    /// How long a request body may take to arrive after its headers (plus 1 s per 64 KiB
    /// received, for large uploads on slow links); then 408 and the connection closes.
    pub body_timeout: Duration,
    /// Connections held at once (TLS handshakes included); lowered at start to leave
    /// descriptors for the database and logs.
    pub max_connections: u32,
    /// Connections one peer address (an IPv6 /64) may hold at once.
    pub max_connections_per_address: u32,
    /// The relying party id of security keys and passkeys registered in a browser (the
    /// self-service portal): the site's domain or a parent of it. None: the portal offers no
    /// WebAuthn (a browser refuses `fido2_rp_id`'s default, `latchkey`).
    pub web_rp_id: Option<String>,
    /// The origin the portal's pages are served from (`https://HOST[:PORT]`): the only
    /// origin accepted in browser WebAuthn ceremonies, and the base of invite links.
    /// Default with `web_rp_id`: `https://<web_rp_id>[:port of listen]`.
    pub web_origin: Option<String>,
    /// A web console or portal session ends after this long without a request.
    pub web_session_idle: Duration,
    /// An admin's web session ends this long after sign-in, whatever its use; a user's
    /// session lasts at most [`USER_SESSION_MAX`] of it.
    pub web_session_max: Duration,
}

/// The longest a self-service session lives, whatever `web_session_max` says.
pub const USER_SESSION_MAX: Duration = Duration::from_secs(3600);

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data_dir: data_dir.into(),
            database: None,
            tls: TlsSetting::SelfSigned,
            totp_window: 1,
            hotp_look_ahead: 10,
            hotp_resync_window: 100,
            machine_rate: 50,
            machine_burst: 100,
            max_body_bytes: 64 * 1024,
            issuer: "latchkey".to_string(),
            fido2_rp_id: DEFAULT_RP_ID.to_string(),
            smartcard_ca: None,
            event_retention_days: 90,
            body_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_connections_per_address: 256,
            web_rp_id: None,
            web_origin: None,
            web_session_idle: Duration::from_secs(15 * 60),
            web_session_max: Duration::from_secs(8 * 3600),
        }
    }

    pub fn database_spec(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| self.data_dir.join("latchkey.db").display().to_string())
    }
}

/// Command line of `latchkeyd`. Every option can also come from `LATCHKEY_<NAME>` or the
/// TOML file.
#[derive(Debug, Parser, Default)]
#[command(name = "latchkeyd", version, about = "latchkey MFA server")]
pub struct Args {
    /// Configuration file (default: ./latchkeyd.toml when it exists).
    #[arg(long, env = "LATCHKEY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8443].
    #[arg(long, env = "LATCHKEY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for keys, certificate and the SQLite database [default: ./latchkey-data].
    #[arg(long, env = "LATCHKEY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database: a SQLite file path or sqlite:PATH [default: DATA_DIR/latchkey.db].
    #[arg(long, env = "LATCHKEY_DATABASE")]
    pub database: Option<String>,
    /// PEM certificate chain to serve instead of the self-signed one.
    #[arg(long, env = "LATCHKEY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "LATCHKEY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (only behind a TLS-terminating proxy on the same host).
    #[arg(long, env = "LATCHKEY_INSECURE_HTTP")]
    pub insecure_http: bool,
    /// TOTP drift window in steps on each side [default: 1].
    #[arg(long, env = "LATCHKEY_TOTP_WINDOW")]
    pub totp_window: Option<u32>,
    /// HOTP look-ahead [default: 10].
    #[arg(long, env = "LATCHKEY_HOTP_LOOK_AHEAD")]
    pub hotp_look_ahead: Option<u32>,
    /// Login requests per second per machine [default: 50].
    #[arg(long, env = "LATCHKEY_MACHINE_RATE")]
    pub machine_rate: Option<u32>,
    /// Burst size of the per-machine rate limit [default: 100].
    #[arg(long, env = "LATCHKEY_MACHINE_BURST")]
    pub machine_burst: Option<u32>,
    /// Issuer name shown in authenticator apps [default: latchkey].
    #[arg(long, env = "LATCHKEY_ISSUER")]
    pub issuer: Option<String>,
    /// FIDO2 relying party id security keys are registered for [default: latchkey].
    #[arg(long, env = "LATCHKEY_FIDO2_RP_ID")]
    pub fido2_rp_id: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "LATCHKEY_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// PEM CA certificate: smartcard certificates must be issued by it [default: none].
    #[arg(long, env = "LATCHKEY_SMARTCARD_CA")]
    pub smartcard_ca: Option<PathBuf>,
    /// Days agent events are kept after they arrive; 0 keeps them forever [default: 90].
    #[arg(long, env = "LATCHKEY_EVENT_RETENTION_DAYS")]
    pub event_retention_days: Option<u32>,
    /// Time a request body may take after its headers, e.g. 10s (1s-10m) [default: 10s].
    #[arg(long, env = "LATCHKEY_BODY_TIMEOUT")]
    pub body_timeout: Option<String>,
    /// Connections held at once, TLS handshakes included [default: 4096].
    #[arg(long, env = "LATCHKEY_MAX_CONNECTIONS")]
    pub max_connections: Option<u32>,
    /// Connections one peer address (IPv6: one /64) may hold at once [default: 256].
    #[arg(long, env = "LATCHKEY_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<u32>,
    /// Relying party id of security keys registered in a browser, e.g. mfa.example.com
    /// [default: none: no WebAuthn in the self-service portal].
    #[arg(long, env = "LATCHKEY_WEB_RP_ID")]
    pub web_rp_id: Option<String>,
    /// Origin of the web pages, e.g. https://mfa.example.com:8443
    /// [default: https://<web_rp_id>[:listen port]].
    #[arg(long, env = "LATCHKEY_WEB_ORIGIN")]
    pub web_origin: Option<String>,
    /// Web session idle timeout, e.g. 15m (1m-24h) [default: 15m].
    #[arg(long, env = "LATCHKEY_WEB_SESSION_IDLE")]
    pub web_session_idle: Option<String>,
    /// Web session lifetime from sign-in, e.g. 8h (5m-7d) [default: 8h; user sessions 1h at most].
    #[arg(long, env = "LATCHKEY_WEB_SESSION_MAX")]
    pub web_session_max: Option<String>,
}

/// `latchkeyd.toml`: the same names as the flags, with underscores.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub insecure_http: Option<bool>,
    pub totp_window: Option<u32>,
    pub hotp_look_ahead: Option<u32>,
    pub machine_rate: Option<u32>,
    pub machine_burst: Option<u32>,
    pub issuer: Option<String>,
    pub fido2_rp_id: Option<String>,
    pub log_format: Option<String>,
    pub smartcard_ca: Option<PathBuf>,
    pub event_retention_days: Option<u32>,
    pub body_timeout: Option<String>,
    pub max_connections: Option<u32>,
    pub max_connections_per_address: Option<u32>,
    pub web_rp_id: Option<String>,
    pub web_origin: Option<String>,
    pub web_session_idle: Option<String>,
    pub web_session_max: Option<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
    }
}

/// Merges flags/environment over the file over defaults. Returns the config and log format.
pub fn resolve(args: Args) -> Result<(ServerConfig, String), String> {
    let file = match &args.config {
        Some(p) => FileConfig::load(p)?,
        None if Path::new("latchkeyd.toml").exists() => {
            FileConfig::load(Path::new("latchkeyd.toml"))?
        }
        None => FileConfig::default(),
    };
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("latchkey-data"));
    let mut cfg = ServerConfig::new(data_dir);
    if let Some(l) = args.listen.or(file.listen) {
        cfg.listen = l;
    }
    cfg.database = args.database.or(file.database);
    let insecure = args.insecure_http || file.insecure_http.unwrap_or(false);
    let cert = args.tls_cert.or(file.tls_cert);
    let key = args.tls_key.or(file.tls_key);
    cfg.tls = match (insecure, cert, key) {
        (true, None, None) => TlsSetting::InsecureHttp,
        (true, _, _) => {
            return Err("--insecure-http cannot be combined with --tls-cert/--tls-key".into());
        }
        (false, Some(cert), Some(key)) => TlsSetting::Files { cert, key },
        (false, None, None) => TlsSetting::SelfSigned,
        _ => return Err("--tls-cert and --tls-key must be given together".into()),
    };
    if let Some(v) = args.totp_window.or(file.totp_window) {
        if v > 10 {
            return Err("totp_window must be at most 10 steps".into());
        }
        cfg.totp_window = v;
    }
    if let Some(v) = args.hotp_look_ahead.or(file.hotp_look_ahead) {
        if v > 1000 {
            return Err("hotp_look_ahead must be at most 1000".into());
        }
        cfg.hotp_look_ahead = v;
    }
    if let Some(v) = args.machine_rate.or(file.machine_rate) {
        cfg.machine_rate = v.max(1);
    }
    if let Some(v) = args.machine_burst.or(file.machine_burst) {
        cfg.machine_burst = v.max(1);
    }
    if let Some(v) = args.issuer.or(file.issuer) {
        cfg.issuer = v;
    }
    if let Some(v) = args.fido2_rp_id.or(file.fido2_rp_id) {
        let ok = !v.is_empty()
            && v.len() <= 253
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':');
        if !ok {
            return Err(format!(
                "fido2_rp_id {v:?} must be a host name or a short name (letters, digits, '.', '-', ':')"
            ));
        }
        cfg.fido2_rp_id = v;
    }
    cfg.smartcard_ca = args.smartcard_ca.or(file.smartcard_ca);
    if let Some(v) = args.event_retention_days.or(file.event_retention_days) {
        if v > 36_500 {
            return Err("event_retention_days must be at most 36500".into());
        }
        cfg.event_retention_days = v;
    }
    if let Some(v) = args.body_timeout.or(file.body_timeout) {
        let d = humantime::parse_duration(&v)
            .map_err(|e| format!("body_timeout {v:?} is not a duration like 10s: {e}"))?;
        if !(Duration::from_secs(1)..=Duration::from_secs(600)).contains(&d) {
            return Err("body_timeout must be between 1s and 10m".into());
        }
        cfg.body_timeout = d;
    }
    if let Some(v) = args.max_connections.or(file.max_connections) {
        if !(16..=1_000_000).contains(&v) {
            return Err("max_connections must be between 16 and 1000000".into());
        }
        cfg.max_connections = v;
    }
    if let Some(v) = args
        .max_connections_per_address
        .or(file.max_connections_per_address)
    {
        if v == 0 {
            return Err("max_connections_per_address must be at least 1".into());
        }
        cfg.max_connections_per_address = v;
    }
    if let Some(v) = args.web_session_idle.or(file.web_session_idle) {
        cfg.web_session_idle = duration_in(
            "web_session_idle",
            &v,
            Duration::from_secs(60),
            Duration::from_secs(86_400),
            "15m",
        )?;
    }
    if let Some(v) = args.web_session_max.or(file.web_session_max) {
        cfg.web_session_max = duration_in(
            "web_session_max",
            &v,
            Duration::from_secs(300),
            Duration::from_secs(7 * 86_400),
            "8h",
        )?;
    }
    if cfg.web_session_idle > cfg.web_session_max {
        return Err("web_session_idle cannot be longer than web_session_max".into());
    }
    if cfg.max_connections_per_address > cfg.max_connections {
        return Err(format!(
            "max_connections_per_address ({}) cannot be more than max_connections ({})",
            cfg.max_connections_per_address, cfg.max_connections
        ));
    }
    (cfg.web_rp_id, cfg.web_origin) = web::web_party(
        args.web_rp_id.or(file.web_rp_id),
        args.web_origin.or(file.web_origin),
        cfg.listen.port(),
    )?;
    let log_format = args
        .log_format
        .or(file.log_format)
        .unwrap_or_else(|| "text".into());
    if log_format != "text" && log_format != "json" {
        return Err(format!("log format {log_format:?} is not text or json"));
    }
    Ok((cfg, log_format))
}

/// A humantime duration between `min` and `max`, or the sentence that says why not.
fn duration_in(
    key: &str,
    v: &str,
    min: Duration,
    max: Duration,
    example: &str,
) -> Result<Duration, String> {
    let d = humantime::parse_duration(v)
        .map_err(|e| format!("{key} {v:?} is not a duration like {example}: {e}"))?;
    if !(min..=max).contains(&d) {
        return Err(format!(
            "{key} must be between {} and {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ntotp_window = 2\nissuer = \"corp\"\n",
        )
        .unwrap();
        let args = Args {
            config: Some(path),
            totp_window: Some(3),
            ..Args::default()
        };
        let (cfg, fmt) = resolve(args).unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.totp_window, 3);
        assert_eq!(cfg.issuer, "corp");
        assert_eq!(fmt, "text");
        assert_eq!(cfg.tls, TlsSetting::SelfSigned);
    }

    #[test]
    fn fido2_rp_id_defaults_to_latchkey_and_is_validated() {
        let (cfg, _) = resolve(Args::default()).unwrap();
        assert_eq!(cfg.fido2_rp_id, "latchkey");
        let (cfg, _) = resolve(Args {
            fido2_rp_id: Some("example.com".into()),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(cfg.fido2_rp_id, "example.com");
        for bad in ["", "a b", "x/y"] {
            let err = resolve(Args {
                fido2_rp_id: Some(bad.into()),
                ..Args::default()
            })
            .unwrap_err();
            assert!(err.contains("fido2_rp_id"), "{err}");
        }
    }

    #[test]
    fn connection_limits_and_body_timeout_are_read_and_checked() {
        let (cfg, _) = resolve(Args::default()).unwrap();
        assert_eq!(cfg.body_timeout, Duration::from_secs(10));
        assert_eq!(
            (cfg.max_connections, cfg.max_connections_per_address),
            (4096, 256)
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.toml");
        std::fs::write(
            &path,
            "body_timeout = \"2s\"\nmax_connections = 100\nmax_connections_per_address = 10\n",
        )
        .unwrap();
        let (cfg, _) = resolve(Args {
            config: Some(path),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(cfg.body_timeout, Duration::from_secs(2));
        assert_eq!(
            (cfg.max_connections, cfg.max_connections_per_address),
            (100, 10)
        );
        for (args, what) in [
            (
                Args {
                    body_timeout: Some("0s".into()),
                    ..Args::default()
                },
                "body_timeout",
            ),
            (
                Args {
                    body_timeout: Some("soon".into()),
                    ..Args::default()
                },
                "body_timeout",
            ),
            (
                Args {
                    max_connections: Some(10),
                    ..Args::default()
                },
                "max_connections",
            ),
            (
                Args {
                    max_connections: Some(100),
                    max_connections_per_address: Some(200),
                    ..Args::default()
                },
                "max_connections_per_address",
            ),
        ] {
            let err = resolve(args).unwrap_err();
            assert!(err.contains(what), "{err}");
        }
    }

    #[test]
    fn web_session_times_are_read_and_checked() {
        let (cfg, _) = resolve(Args::default()).unwrap();
        assert_eq!(cfg.web_session_idle, Duration::from_secs(900));
        assert_eq!(cfg.web_session_max, Duration::from_secs(8 * 3600));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.toml");
        std::fs::write(
            &path,
            "web_session_idle = \"5m\"\nweb_session_max = \"2h\"\n",
        )
        .unwrap();
        let (cfg, _) = resolve(Args {
            config: Some(path),
            web_session_max: Some("1h".into()),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(cfg.web_session_idle, Duration::from_secs(300));
        assert_eq!(cfg.web_session_max, Duration::from_secs(3600));
        for (idle, max, what) in [
            ("10s", "8h", "web_session_idle must be between"),
            ("15m", "8d", "web_session_max must be between"),
            ("2h", "1h", "cannot be longer"),
            ("soon", "8h", "not a duration"),
        ] {
            let err = resolve(Args {
                web_session_idle: Some(idle.into()),
                web_session_max: Some(max.into()),
                ..Args::default()
            })
            .unwrap_err();
            assert!(err.contains(what), "{idle} {max}: {err}");
        }
    }

    #[test]
    fn unknown_file_keys_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let err = resolve(Args {
            config: Some(path),
            ..Args::default()
        })
        .unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }
}
