//! Key material created on first start, each item in its own 0600 file in the data dir:
//! `master.key` (seals OTP secrets), `signing.key` (Ed25519, signs offline bundles),
//! `tls.crt`/`tls.key` (self-signed, when no certificate is configured) and `admin.token`.

use crate::store::Store;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use latchkey_crypto::keys::{SigningKeyPair, generate_api_key, hash_api_key};
use latchkey_crypto::seal::MasterKey;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;
use zeroize::Zeroizing;

#[derive(Debug, Error)]
pub enum BootstrapError {
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("{0}")]
    Crypto(#[from] latchkey_crypto::Error),
    #[error("certificate generation failed: {0}")]
    Cert(String),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

type Result<T> = std::result::Result<T, BootstrapError>;

fn file_err(path: &Path, msg: impl ToString) -> BootstrapError {
    BootstrapError::File {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// Writes a new 0600 file atomically (temp file + rename), refusing to overwrite.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| file_err(&tmp, e))?;
    f.write_all(contents).map_err(|e| file_err(&tmp, e))?;
    f.sync_all().map_err(|e| file_err(&tmp, e))?;
    fs::hard_link(&tmp, path).map_err(|e| file_err(path, e))?;
    fs::remove_file(&tmp).map_err(|e| file_err(&tmp, e))?;
    Ok(())
}

/// Reads a secret file, refusing one that others can read (as ssh does).
fn read_secret_file(path: &Path) -> Result<Zeroizing<String>> {
    let meta = fs::metadata(path).map_err(|e| file_err(path, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(file_err(
            path,
            "is readable by group or others; run chmod 600 on it",
        ));
    }
    let text = fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    Ok(Zeroizing::new(text.trim().to_string()))
}

pub struct KeyMaterial {
    pub master: MasterKey,
    pub signing: SigningKeyPair,
    /// The admin token, only when it was created by this start (to print it once).
    pub new_admin_token: Option<String>,
}

pub fn ensure_data_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| file_err(dir, e))?;
    }
    Ok(())
}

fn load_or_create(
    path: &Path,
    create: impl FnOnce() -> Result<Zeroizing<Vec<u8>>>,
) -> Result<Zeroizing<Vec<u8>>> {
    if path.exists() {
        let text = read_secret_file(path)?;
        let bytes = B64
            .decode(text.as_bytes())
            .map_err(|_| file_err(path, "is not valid base64"))?;
        return Ok(Zeroizing::new(bytes));
    }
    let bytes = create()?;
    write_secret_file(path, format!("{}\n", B64.encode(&*bytes)).as_bytes())?;
    tracing::info!(path = %path.display(), "created key file");
    Ok(bytes)
}

pub async fn keys(data_dir: &Path, store: &Store, now: i64) -> Result<KeyMaterial> {
    let master_path = data_dir.join("master.key");
    let master_bytes = load_or_create(&master_path, || {
        Ok(Zeroizing::new(latchkey_crypto::random_bytes(
            latchkey_crypto::seal::KEY_LEN,
        )?))
    })?;
    let master = MasterKey::from_bytes(&master_bytes).map_err(|e| file_err(&master_path, e))?;

    let signing_path = data_dir.join("signing.key");
    let seed = load_or_create(&signing_path, || {
        Ok(Zeroizing::new(SigningKeyPair::generate()?.seed().to_vec()))
    })?;
    let signing = SigningKeyPair::from_seed(&seed).map_err(|e| file_err(&signing_path, e))?;

    // The bootstrap admin key: created once. If the file is there its hash is (re)registered,
    // so a fresh database with the old data dir keeps the same admin token.
    let token_path = data_dir.join("admin.token");
    let mut new_admin_token = None;
    if token_path.exists() {
        let token = read_secret_file(&token_path)?;
        store
            .admin_key_insert(&hash_api_key(&token), "bootstrap", now)
            .await?;
    } else if !store.admin_any().await? {
        let token = generate_api_key("lka")?;
        write_secret_file(&token_path, format!("{token}\n").as_bytes())?;
        store
            .admin_key_insert(&hash_api_key(&token), "bootstrap", now)
            .await?;
        new_admin_token = Some(token);
    }
    Ok(KeyMaterial {
        master,
        signing,
        new_admin_token,
    })
}

/// Creates `tls.crt`/`tls.key` in the data dir if missing; returns their paths.
pub fn self_signed_tls(data_dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let cert_path = data_dir.join("tls.crt");
    let key_path = data_dir.join("tls.key");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(host) = fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() && host != "localhost" {
            names.push(host.to_string());
        }
    }
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| BootstrapError::Cert(e.to_string()))?;
    let _ = fs::remove_file(&cert_path);
    let _ = fs::remove_file(&key_path);
    write_secret_file(&key_path, ck.key_pair.serialize_pem().as_bytes())?;
    write_secret_file(&cert_path, ck.cert.pem().as_bytes())?;
    tracing::info!(path = %cert_path.display(), "created self-signed TLS certificate");
    Ok((cert_path, key_path))
}
