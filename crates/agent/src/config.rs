//! `agent.toml`: how the agent reaches the servers and who it is.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    /// e.g. "10s"
    #[serde(default = "default_timeout")]
    pub timeout: String,
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
    pub client_ids: BTreeMap<String, String>,
    /// Offline login settings (`[offline]`); the limits themselves come signed from the server.
    #[serde(default, skip_serializing_if = "OfflineConfig::is_default")]
    pub offline: OfflineConfig,
    /// FIDO2 security keys to use: `unix:/path` (a SOCK_SEQPACKET HID bridge) or
    /// `/dev/hidrawN`. Empty: detect hidraw devices with the FIDO usage page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fido2_devices: Vec<String>,
    /// How long a security key has to answer, touch included, e.g. "30s".
    #[serde(default = "default_fido2_timeout")]
    pub fido2_timeout: String,
    /// Circuit breaker: how long a failed server is skipped at first (doubling per further
    /// failure up to `breaker_max`). Defaults 30s and 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_max: Option<String>,
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

fn default_fido2_timeout() -> String {
    crate::fido2::DEFAULT_TIMEOUT.into()
}

/// `[offline]` in agent.toml.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineConfig {
    /// Digits of the offline QR code (6 to 9).
    pub code_digits: u8,
    /// How long a QR challenge can be answered, e.g. "5m".
    pub challenge_ttl: String,
    /// How far the clock may go back (behind the latest time seen) before offline login is
    /// refused, e.g. "5m".
    pub clock_skew: String,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig {
            code_digits: 8,
            challenge_ttl: "5m".into(),
            clock_skew: "5m".into(),
        }
    }
}

impl OfflineConfig {
    pub fn is_default(&self) -> bool {
        *self == OfflineConfig::default()
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(6..=9).contains(&self.code_digits) {
            return Err("offline.code_digits must be 6 to 9".into());
        }
        let ttl = parse_duration("offline.challenge_ttl", &self.challenge_ttl)?;
        if ttl.as_secs() < 30 || ttl.as_secs() > 3600 {
            return Err("offline.challenge_ttl must be 30s to 1h".into());
        }
        let skew = parse_duration("offline.clock_skew", &self.clock_skew)?;
        if skew.as_secs() > 86_400 {
            return Err("offline.clock_skew must be at most 1d".into());
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
fn default_connect_timeout() -> String {
    "1.5s".into()
}
fn default_timeout() -> String {
    "10s".into()
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

pub fn parse_duration(what: &str, v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v)
        .map_err(|_| format!("{what}: {v:?} is not a duration (e.g. 1.5s, 10s)"))
}

impl AgentConfig {
    pub fn load(config_dir: &Path) -> Result<AgentConfig, String> {
        let path = config_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read {}: {e} (has this machine joined? run `latchkey-agent join`)",
                path.display()
            )
        })?;
        let cfg: AgentConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        cfg.validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.servers.is_empty() {
            return Err("servers: at least one server URL is needed".into());
        }
        self.selection
            .parse::<latchkey_client::Selection>()
            .map_err(|e| format!("selection: {e}"))?;
        parse_duration("connect_timeout", &self.connect_timeout)?;
        parse_duration("timeout", &self.timeout)?;
        let t = parse_duration("fido2_timeout", &self.fido2_timeout)?;
        if t.is_zero() || t.as_secs() > 600 {
            return Err("fido2_timeout must be between 1s and 10m".into());
        }
        if self.pin.is_some() && self.ca_cert.is_some() {
            return Err("pin and ca_cert exclude each other".into());
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err("client_cert and client_key go together".into());
        }
        if let Some(v) = &self.breaker_base {
            parse_duration("breaker_base", v)?;
        }
        if let Some(v) = &self.breaker_max {
            parse_duration("breaker_max", v)?;
        }
        crate::events::config::validate(&self.events, &self.session_lock)?;
        self.socket_limits.validate()?;
        self.offline.validate()
    }

    /// The PKCS#11 module smartcard logins use, if any.
    pub fn smartcard_module(&self) -> Option<PathBuf> {
        crate::smartcard::module_path(self.smartcard_module.as_deref())
    }

    /// The client_id for a PAM service: configured override, then the built-in table.
    pub fn client_id_for(&self, service: &str) -> String {
        if let Some(id) = self.client_ids.get(service) {
            return id.clone();
        }
        default_client_id(service).to_string()
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
        assert_eq!(cfg.client_id_for("sshd"), "bastion");
        assert_eq!(cfg.client_id_for("sudo"), "elevation");
        cfg.selection = "random".into();
        assert!(cfg.validate().is_err());
    }
}
