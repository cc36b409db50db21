//! latchkeyd configuration: flags, then `LATCHKEY_*` environment, then `latchkeyd.toml`,
//! then defaults.

use clap::Parser;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
}

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
    let log_format = args
        .log_format
        .or(file.log_format)
        .unwrap_or_else(|| "text".into());
    if log_format != "text" && log_format != "json" {
        return Err(format!("log format {log_format:?} is not text or json"));
    }
    Ok((cfg, log_format))
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
