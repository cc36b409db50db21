//! Turns the global options (and the server's data directory next to us, if any) into a
//! client configuration.

use latchkey_client::{ClientConfig, Credential, Trust};
use std::path::{Path, PathBuf};

use crate::args::GlobalOpts;
use crate::error::{CliError, Result};

/// Where `latchkeyd` keeps its files by default; the CLI looks here, relative to the current
/// directory, for `admin.token` and `tls.crt` when no option names them.
pub const DEFAULT_DATA_DIR: &str = "latchkey-data";

pub fn client_config(global: &GlobalOpts, data_dir: &Path) -> Result<ClientConfig> {
    let mut cfg = ClientConfig::parse(&global.server)
        .map_err(|e| CliError::Usage(format!("--server: {e}")))?;
    cfg.credential = Credential::Bearer(admin_token(global, data_dir)?);
    if cfg.base_url.scheme() == "https" {
        cfg.trust = Some(trust(global, data_dir)?);
    }
    Ok(cfg)
}

fn admin_token(global: &GlobalOpts, data_dir: &Path) -> Result<String> {
    if let Some(t) = &global.token {
        let t = t.trim();
        if t.is_empty() {
            return Err(CliError::Usage("--token is empty".into()));
        }
        return Ok(t.to_string());
    }
    let file = data_dir.join("admin.token");
    match std::fs::read_to_string(&file) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Ok(_) => Err(CliError::Usage(format!("{} is empty", file.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CliError::Usage(format!(
            "no admin token: pass --token, set LATCHKEY_ADMIN_TOKEN, or run where {} exists",
            file.display()
        ))),
        Err(e) => Err(CliError::Other(format!(
            "cannot read {}: {e}",
            file.display()
        ))),
    }
}

fn trust(global: &GlobalOpts, data_dir: &Path) -> Result<Trust> {
    if let Some(pin) = &global.pin {
        return Ok(Trust::Pin(pin.clone()));
    }
    if let Some(ca) = &global.ca {
        return Ok(Trust::WebPkiCaFile(ca.clone()));
    }
    let local: PathBuf = data_dir.join("tls.crt");
    if local.is_file() {
        return Ok(Trust::WebPkiCaFile(local));
    }
    Err(CliError::Usage(
        "no way to trust the server: pass --ca or --pin".into(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn opts(server: &str) -> GlobalOpts {
        GlobalOpts {
            server: server.into(),
            token: None,
            ca: None,
            pin: None,
            json: false,
        }
    }

    #[test]
    fn token_and_certificate_come_from_the_data_dir_when_not_given() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.token"), "tok-from-file\n").unwrap();
        std::fs::write(dir.path().join("tls.crt"), "pem").unwrap();
        let cfg = client_config(&opts("https://127.0.0.1:8443"), dir.path()).unwrap();
        assert_eq!(cfg.credential, Credential::Bearer("tok-from-file".into()));
        assert_eq!(
            cfg.trust,
            Some(Trust::WebPkiCaFile(dir.path().join("tls.crt")))
        );
    }

    #[test]
    fn options_win_over_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.token"), "file").unwrap();
        std::fs::write(dir.path().join("tls.crt"), "pem").unwrap();
        let mut o = opts("https://h:1");
        o.token = Some("opt".into());
        o.pin = Some("sha256:00".into());
        let cfg = client_config(&o, dir.path()).unwrap();
        assert_eq!(cfg.credential, Credential::Bearer("opt".into()));
        assert_eq!(cfg.trust, Some(Trust::Pin("sha256:00".into())));
    }

    #[test]
    fn missing_trust_or_token_is_a_clear_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = client_config(&opts("https://h:1"), dir.path()).unwrap_err();
        assert!(err.to_string().contains("no admin token"), "{err}");
        std::fs::write(dir.path().join("admin.token"), "t").unwrap();
        let err = client_config(&opts("https://h:1"), dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no way to trust the server: pass --ca or --pin"
        );
        assert!(matches!(err, CliError::Usage(_)));
        // Plain http needs no trust.
        assert!(client_config(&opts("http://h:1"), dir.path()).is_ok());
    }
}
