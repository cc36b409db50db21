//! `agent.toml`: how the agent reaches the servers and who it is. Loaded and checked once
//! at start: durations are `Duration`s from here on ([`duration`]).

pub mod duration;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{AgentError, Result};
use latchkey_proto::{ClientId, InvalidId};

/// A configuration error (the text names the key).
fn bad(msg: impl Into<String>) -> AgentError {
    AgentError::Config(msg.into())
}

#[cfg(not(windows))]
pub const DEFAULT_CONFIG_DIR: &str = "/etc/latchkey";
#[cfg(not(windows))]
pub const DEFAULT_STATE_DIR: &str = "/var/lib/latchkey";
#[cfg(windows)]
pub const DEFAULT_CONFIG_DIR: &str = r"C:\ProgramData\latchkey";
#[cfg(windows)]
pub const DEFAULT_STATE_DIR: &str = r"C:\ProgramData\latchkey\state";
pub const CONFIG_FILE: &str = "agent.toml";
pub const MACHINE_KEY_FILE: &str = "machine.key";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Server base URLs, in the order `ordered` selection tries them.
    pub servers: Vec<String>,
    /// `ordered`, `balanced` or `consistent`.
    #[serde(default = "default_selection")]
    pub selection: String,
    /// e.g. "1.5s"
    #[serde(default = "default_connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
    /// e.g. "10s"
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Trust: `sha256:HEX` pin of the server certificate…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// …or a PEM CA file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// HTTP proxy for reaching the servers (CONNECT for https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// TLS client certificate and key: when set, they are the machine credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    pub machine_id: String,
    /// The server's Ed25519 public key (base64), pinned at join; offline bundles must be
    /// signed by it.
    pub server_signing_key: String,
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// PKCS#11 module for smartcard logins (default: OpenSC's module when installed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smartcard_module: Option<PathBuf>,
    /// PAM service → client_id overrides (added to the built-in mapping).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub client_ids: BTreeMap<String, ClientId>,
    /// Offline login settings (`[offline]`); the limits themselves come signed from the server.
    #[serde(default, skip_serializing_if = "OfflineConfig::is_default")]
    pub offline: OfflineConfig,
    /// FIDO2 security keys to use: `unix:/path` (a SOCK_SEQPACKET HID bridge) or
    /// `/dev/hidrawN`. Empty: detect hidraw devices with the FIDO usage page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fido2_devices: Vec<String>,
    /// How long a security key has to answer, touch included, e.g. "30s".
    #[serde(default = "default_fido2_timeout", with = "duration")]
    pub fido2_timeout: Duration,
    /// Circuit breaker: how long a failed server is skipped at first (doubling per further
    /// failure up to `breaker_max`). Defaults 30s and 5m.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration::option"
    )]
    pub breaker_base: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration::option"
    )]
    pub breaker_max: Option<Duration>,
    /// `[events]`: spool, uploader and `[events.journal]` rules.
    #[serde(default, skip_serializing_if = "is_default")]
    pub events: crate::events::config::EventsConfig,
    /// `[session_lock]`: the lock watcher and its command.
    #[serde(default, skip_serializing_if = "is_default")]
    pub session_lock: crate::events::config::LockConfig,
    /// `[socket_limits]`: what one local caller may hold and start (callers.rs).
    #[serde(
        default,
        skip_serializing_if = "crate::callers::LimitsConfig::is_default"
    )]
    pub socket_limits: crate::callers::LimitsConfig,
}

fn default_fido2_timeout() -> Duration {
    crate::fido2::DEFAULT_TIMEOUT
}

/// `[offline]` in agent.toml.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineConfig {
    /// Digits of the offline QR code (6 to 9).
    pub code_digits: u8,
    /// How long a QR challenge can be answered, e.g. "5m".
    #[serde(with = "duration")]
    pub challenge_ttl: Duration,
    /// How far the clock may go back (behind the latest time seen) before offline login is
    /// refused, e.g. "5m".
    #[serde(with = "duration")]
    pub clock_skew: Duration,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig {
            code_digits: 8,
            challenge_ttl: Duration::from_secs(300),
            clock_skew: Duration::from_secs(300),
        }
    }
}

impl OfflineConfig {
    pub fn is_default(&self) -> bool {
        *self == OfflineConfig::default()
    }

    pub fn validate(&self) -> Result<()> {
        if !(6..=9).contains(&self.code_digits) {
            return Err(bad("offline.code_digits must be 6 to 9"));
        }
        let ttl = self.challenge_ttl;
        if ttl.as_secs() < 30 || ttl.as_secs() > 3600 {
            return Err(bad("offline.challenge_ttl must be 30s to 1h"));
        }
        if self.clock_skew.as_secs() > 86_400 {
            return Err(bad("offline.clock_skew must be at most 1d"));
        }
        Ok(())
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn default_selection() -> String {
    "ordered".into()
}
fn default_connect_timeout() -> Duration {
    Duration::from_millis(1500)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
pub fn default_socket() -> PathBuf {
    #[cfg(windows)]
    return PathBuf::from(latchkey_proto::agent::DEFAULT_PIPE);
    #[cfg(not(windows))]
    PathBuf::from(latchkey_proto::agent::DEFAULT_SOCKET)
}
fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}

/// A duration given on a command line (`what` names the option).
pub fn parse_duration(what: &str, v: &str) -> Result<Duration> {
    duration::parse(v).map_err(|e| AgentError::Config(format!("{what}: {e}")))
}

impl AgentConfig {
    pub fn load(config_dir: &Path) -> Result<AgentConfig> {
        let path = config_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            bad(format!(
                "cannot read {}: {e} (has this machine joined? run `latchkey-agent join`)",
                path.display()
            ))
        })?;
        let cfg: AgentConfig = toml::from_str(&text).map_err(|e| {
            let key = e.span().and_then(|s| duration::key_at(&text, s.start));
            bad(match key {
                Some(key) => format!("{}: {key}: {}", path.display(), e.message()),
                None => format!("{}: {}", path.display(), e.message()),
            })
        })?;
        cfg.validate()
            .map_err(|e| bad(format!("{}: {e}", path.display())))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        if self.servers.is_empty() {
            return Err(bad("servers: at least one server URL is needed"));
        }
        self.selection
            .parse::<latchkey_client::Selection>()
            .map_err(|e| bad(format!("selection: {e}")))?;
        let t = self.fido2_timeout;
        if t.is_zero() || t.as_secs() > 600 {
            return Err(bad("fido2_timeout must be between 1s and 10m"));
        }
        if self.pin.is_some() && self.ca_cert.is_some() {
            return Err(bad("pin and ca_cert exclude each other"));
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(bad("client_cert and client_key go together"));
        }
        crate::events::config::validate(&self.events, &self.session_lock)?;
        self.socket_limits.validate()?;
        self.offline.validate()
    }

    /// The PKCS#11 module smartcard logins use, if any.
    pub fn smartcard_module(&self) -> Option<PathBuf> {
        crate::smartcard::module_path(self.smartcard_module.as_deref())
    }

    /// The client_id for a PAM service: configured override (validated when the file was
    /// read), then the built-in table (whose every entry parses: a test says so).
    pub fn client_id_for(&self, service: &str) -> std::result::Result<ClientId, InvalidId> {
        if let Some(id) = self.client_ids.get(service) {
            return Ok(id.clone());
        }
        ClientId::parse(default_client_id(service))
    }
}

/// Built-in mapping of PAM services to access contexts (OpenOTP's LogonUI/CredUI/RDP).
pub fn default_client_id(service: &str) -> &'static str {
    match service {
        "sudo" | "sudo-i" | "su" | "su-l" | "polkit-1" | "pkexec" | "doas" | "run0" => "elevation",
        "sshd" | "xrdp" | "xrdp-sesman" | "remote" => "remote",
        "xscreensaver"
        | "i3lock"
        | "swaylock"
        | "kscreenlocker"
        | "kde"
        | "cinnamon-screensaver"
        | "mate-screensaver"
        | "xfce4-screensaver"
        | "light-locker"
        | "hyprlock"
        | "gnome-screensaver" => "unlock",
        _ => "login",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_map_to_contexts_and_overrides_win() {
        assert_eq!(default_client_id("sudo"), "elevation");
        assert_eq!(default_client_id("sshd"), "remote");
        assert_eq!(default_client_id("i3lock"), "unlock");
        assert_eq!(default_client_id("gdm-password"), "login");
        let mut cfg: AgentConfig = toml::from_str(
            "servers = [\"https://a\"]\nmachine_id = \"m\"\nserver_signing_key = \"k\"\n[client_ids]\nsshd = \"bastion\"\n",
        )
        .unwrap();
        assert_eq!(cfg.client_id_for("sshd").unwrap(), "bastion");
        assert_eq!(cfg.client_id_for("sudo").unwrap(), "elevation");
        for service in ["sudo", "sshd", "i3lock", "gdm-password", "anything-else"] {
            assert!(cfg.client_id_for(service).is_ok(), "{service}");
        }
        let bad = toml::from_str::<AgentConfig>(
            "servers = [\"https://a\"]\nmachine_id = \"m\"\nserver_signing_key = \"k\"\n[client_ids]\nsshd = \"a:b\"\n",
        );
        assert!(
            bad.is_err(),
            "a client_id the server would refuse must not load"
        );
        cfg.selection = "random".into();
        assert!(cfg.validate().is_err());
    }

    const MINIMAL: &str =
        "servers = [\"https://a\"]\nmachine_id = \"m\"\nserver_signing_key = \"k\"\n";

    #[test]
    fn a_bad_duration_stops_the_load_and_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        for (extra, key) in [
            ("timeout = \"soon\"\n", "timeout"),
            (
                "[offline]\nclock_skew = \"5 parsecs\"\n",
                "offline.clock_skew",
            ),
            (
                "[events.journal]\nrestart_delay = \"x\"\n",
                "events.journal.restart_delay",
            ),
        ] {
            std::fs::write(dir.path().join(CONFIG_FILE), format!("{MINIMAL}{extra}")).unwrap();
            let err = AgentConfig::load(dir.path()).unwrap_err().to_string();
            assert!(err.contains(&format!("{key}: ")), "{key}: {err}");
            assert!(err.contains("is not a duration"), "{key}: {err}");
        }
    }

    #[test]
    fn durations_are_written_as_text_and_read_back() {
        let mut cfg: AgentConfig = toml::from_str(MINIMAL).unwrap();
        assert_eq!(cfg.connect_timeout, Duration::from_millis(1500));
        cfg.breaker_base = Some(Duration::from_millis(100));
        let text = toml::to_string(&cfg).unwrap();
        assert!(text.contains("connect_timeout = \"1500ms\""), "{text}");
        assert!(text.contains("breaker_base = \"100ms\""), "{text}");
        let back: AgentConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
    }
}
