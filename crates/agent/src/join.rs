//! `latchkey-agent join`: non-interactive enrolment of this machine (the analog of a silent
//! MSI install with parameters). Either everything is written or nothing is.

use crate::config::{
    AgentConfig, CONFIG_FILE, DEFAULT_STATE_DIR, MACHINE_KEY_FILE, parse_duration,
};
use crate::error::{AgentError, Result};
use base64::Engine;
use latchkey_client::{Client, ClientConfig, Credential, Trust};
use latchkey_proto::machine::{JoinRequest, JoinResponse};
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn bad(msg: impl Into<String>) -> AgentError {
    AgentError::Config(msg.into())
}

/// `latchkey-agent join` options (the same names as the Windows MSI properties).
#[derive(Debug, Clone, clap::Args)]
pub struct JoinOptions {
    /// Server URL(s), comma-separated, in failover order.
    #[arg(long = "server", value_name = "URL[,URL…]")]
    pub servers: String,
    /// One-time join token from `latchkey machine join-token`.
    #[arg(long, env = "LATCHKEY_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: String,
    /// PEM CA (or the server certificate) to trust.
    #[arg(long, conflicts_with = "pin")]
    pub ca_cert: Option<PathBuf>,
    /// Trust the server certificate with this SHA-256 (sha256:HEX).
    #[arg(long)]
    pub pin: Option<String>,
    /// ordered | balanced | consistent
    #[arg(long, default_value = "ordered")]
    pub selection: String,
    #[arg(long, default_value = "1.5s")]
    pub connect_timeout: String,
    #[arg(long, default_value = "10s")]
    pub timeout: String,
    /// HTTP proxy URL (CONNECT is used for https servers).
    #[arg(long)]
    pub proxy: Option<String>,
    /// TLS client certificate to use as the machine credential (with --client-key).
    #[arg(long, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Set from the global --config-dir.
    #[arg(skip)]
    pub config_dir: PathBuf,
    /// State directory (offline data) [default: /var/lib/latchkey].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Agent socket path [default: /run/latchkey/agent.sock; on Windows \\.\pipe\latchkey-agent].
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Name to register instead of the host name.
    #[arg(long)]
    pub hostname: Option<String>,
}

/// `--connect-timeout` and `--timeout`, parsed once.
#[derive(Clone, Copy)]
struct Timeouts {
    connect: Duration,
    request: Duration,
}

fn client_for(url: &str, o: &JoinOptions, t: Timeouts) -> Result<Client> {
    let mut cc = ClientConfig::parse(url)
        .map_err(|e| bad(format!("server {url:?}: {e}")))?
        .with_connect_timeout(t.connect)
        .with_request_timeout(t.request)
        .with_credential(Credential::None);
    if let Some(pin) = &o.pin {
        cc = cc.with_trust(Trust::Pin(pin.clone()));
    } else if let Some(ca) = &o.ca_cert {
        cc = cc.with_trust(Trust::WebPkiCaFile(ca.clone()));
    }
    if let Some(p) = &o.proxy {
        cc = cc
            .with_proxy(latchkey_client::Url::parse(p).map_err(|e| bad(format!("--proxy: {e}")))?);
    }
    Client::new(cc).map_err(|e| bad(format!("server {url:?}: {e}")))
}

fn cert_fingerprint(path: &Path) -> Result<String> {
    let pem = std::fs::read_to_string(path).map_err(|e| AgentError::file(path, e))?;
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| bad(format!("{}: no PEM certificate found", path.display())))?;
    if der.is_empty() {
        return Err(bad(format!("{}: no PEM certificate found", path.display())));
    }
    Ok(latchkey_client::cert_sha256_pin(&der))
}

/// On Windows the file takes the ACL of its directory (`join` makes the configuration and
/// state directories SYSTEM + Administrators only, `sys::restrict_dir`); `mode` is for Unix.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(|e| AgentError::file(path, e))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| AgentError::file(path, e))
}

/// Empty optional values count as not given: an installer passes every property, set or
/// not (`msiexec … PROXY=` ends up as `--proxy ""`).
fn normalized(o: &JoinOptions) -> JoinOptions {
    let mut o = o.clone();
    let none_if_empty = |v: &mut Option<String>| {
        if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
            *v = None;
        }
    };
    none_if_empty(&mut o.pin);
    none_if_empty(&mut o.proxy);
    if o.ca_cert.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        o.ca_cert = None;
    }
    if o.selection.trim().is_empty() {
        o.selection = "ordered".into();
    }
    if o.connect_timeout.trim().is_empty() {
        o.connect_timeout = "1.5s".into();
    }
    if o.timeout.trim().is_empty() {
        o.timeout = "10s".into();
    }
    o
}

/// Joins and writes `agent.toml` and the machine key. Returns the configuration written.
pub async fn join(o: &JoinOptions) -> Result<AgentConfig> {
    let o = &normalized(o);
    let timeouts = Timeouts {
        connect: parse_duration("--connect-timeout", &o.connect_timeout)?,
        request: parse_duration("--timeout", &o.timeout)?,
    };
    let servers: Vec<String> = o
        .servers
        .split(',')
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if servers.is_empty() {
        return Err(bad("--server: give at least one URL"));
    }
    if o.pin.is_some() && o.ca_cert.is_some() {
        return Err(bad("--ca-cert and --pin exclude each other"));
    }
    if servers.iter().any(|s| s.starts_with("https://")) && o.pin.is_none() && o.ca_cert.is_none() {
        return Err(bad(
            "no way to trust the server: pass --ca-cert FILE or --pin sha256:HEX",
        ));
    }
    if o.client_cert.is_some() != o.client_key.is_some() {
        return Err(bad("--client-cert and --client-key go together"));
    }
    o.selection
        .parse::<latchkey_client::Selection>()
        .map_err(|e| bad(format!("--selection: {e}")))?;
    let client_cert_sha256 = o.client_cert.as_deref().map(cert_fingerprint).transpose()?;
    let hostname = o.hostname.clone().unwrap_or_else(crate::sys::hostname);
    let req = JoinRequest {
        join_token: o.join_token.trim().to_string(),
        hostname,
        client_cert_sha256: client_cert_sha256.map(|p| p.trim_start_matches("sha256:").to_string()),
    };

    // Ask the servers in order; a definite refusal (bad token) stops at once.
    let mut errors = Vec::new();
    let mut answer: Option<JoinResponse> = None;
    for url in &servers {
        let client = client_for(url, o, timeouts)?;
        match client
            .post::<_, JoinResponse>(latchkey_proto::routes::MACHINE_JOIN, &req)
            .await
        {
            Ok(a) => {
                answer = Some(a);
                break;
            }
            Err(e) if e.is_unreachable() => errors.push(format!("{url}: {e}")),
            Err(e) => return Err(AgentError::Server(format!("join refused by {url}: {e}"))),
        }
    }
    let Some(answer) = answer else {
        return Err(AgentError::Server(format!(
            "no server answered: {}",
            errors.join("; ")
        )));
    };
    if let Some(pin) = &o.pin
        && !pin.eq_ignore_ascii_case(&answer.tls_fingerprint)
        && !answer.tls_fingerprint.is_empty()
    {
        return Err(AgentError::Server(format!(
            "the server reports certificate {} but --pin is {pin}",
            answer.tls_fingerprint
        )));
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(&answer.signing_public_key)
        .map_err(|_| AgentError::Server("the server's signing key is not base64".into()))?;
    if key.len() != 32 {
        return Err(AgentError::Server(
            "the server's signing key is not an Ed25519 public key".into(),
        ));
    }

    let cfg = AgentConfig {
        servers,
        selection: o.selection.clone(),
        connect_timeout: timeouts.connect,
        timeout: timeouts.request,
        pin: o.pin.clone(),
        ca_cert: o.ca_cert.clone(),
        proxy: o.proxy.clone(),
        client_cert: o.client_cert.clone(),
        client_key: o.client_key.clone(),
        machine_id: answer.machine_id.to_string(),
        server_signing_key: answer.signing_public_key.clone(),
        socket: o
            .socket
            .clone()
            .unwrap_or_else(crate::config::default_socket),
        state_dir: o
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        client_ids: Default::default(),
        offline: Default::default(),
        fido2_devices: Vec::new(),
        fido2_timeout: crate::fido2::DEFAULT_TIMEOUT,
        smartcard_module: None,
        breaker_base: None,
        breaker_max: None,
        events: Default::default(),
        session_lock: Default::default(),
        socket_limits: Default::default(),
    };
    cfg.validate()?;
    let toml_text = toml::to_string(&cfg).map_err(|e| bad(format!("agent.toml: {e}")))?;

    // Write both files beside their final names, then rename: nothing half-written.
    std::fs::create_dir_all(&o.config_dir).map_err(|e| AgentError::file(&o.config_dir, e))?;
    // Windows has no file modes: the directories' ACLs keep the key to SYSTEM and admins.
    #[cfg(windows)]
    crate::sys::restrict_dir(&o.config_dir)?;
    std::fs::create_dir_all(&cfg.state_dir).map_err(|e| AgentError::file(&cfg.state_dir, e))?;
    #[cfg(windows)]
    crate::sys::restrict_dir(&cfg.state_dir)?;
    let conf_path = o.config_dir.join(CONFIG_FILE);
    let key_path = o.config_dir.join(MACHINE_KEY_FILE);
    let conf_tmp = o.config_dir.join(".agent.toml.new");
    let key_tmp = o.config_dir.join(".machine.key.new");
    let header = format!(
        "# Written by `latchkey-agent join` for machine {}.\n",
        cfg.machine_id
    );
    let result = (|| {
        write_new(&conf_tmp, format!("{header}{toml_text}").as_bytes(), 0o600)?;
        if cfg.client_cert.is_none() {
            write_new(&key_tmp, format!("{}\n", answer.api_key).as_bytes(), 0o600)?;
            std::fs::rename(&key_tmp, &key_path).map_err(|e| AgentError::file(&key_path, e))?;
        } else {
            // The certificate is the credential: no bearer key is kept on disk.
            let _ = std::fs::remove_file(&key_path);
        }
        std::fs::rename(&conf_tmp, &conf_path).map_err(|e| AgentError::file(&conf_path, e))
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&conf_tmp);
        let _ = std::fs::remove_file(&key_tmp);
        return Err(e);
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> JoinOptions {
        JoinOptions {
            servers: "https://a".into(),
            join_token: "t".into(),
            ca_cert: Some(PathBuf::new()),
            pin: Some(" ".into()),
            selection: String::new(),
            connect_timeout: String::new(),
            timeout: String::new(),
            proxy: Some(String::new()),
            client_cert: None,
            client_key: None,
            config_dir: PathBuf::new(),
            state_dir: None,
            socket: None,
            hostname: None,
        }
    }

    #[test]
    fn empty_installer_properties_count_as_not_given() {
        let o = normalized(&options());
        assert_eq!(o.pin, None);
        assert_eq!(o.proxy, None);
        assert_eq!(o.ca_cert, None);
        assert_eq!(o.selection, "ordered");
        assert_eq!(o.connect_timeout, "1.5s");
        assert_eq!(o.timeout, "10s");
        let mut given = options();
        given.pin = Some("sha256:ab".into());
        given.selection = "balanced".into();
        let o = normalized(&given);
        assert_eq!(o.pin.as_deref(), Some("sha256:ab"));
        assert_eq!(o.selection, "balanced");
    }
}
