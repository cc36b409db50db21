//! The token file: every account of this app, sealed with a passphrase.
//!
//! ```json
//! {
//!   "format": "latchkey-token",
//!   "version": 1,
//!   "kdf": {"algorithm": "argon2id", "version": 19, "memory_kib": 19456,
//!           "iterations": 2, "parallelism": 1, "salt": "<base64, 16 bytes>"},
//!   "cipher": "xchacha20poly1305",
//!   "nonce": "<base64, 24 bytes>",
//!   "ciphertext": "<base64>"
//! }
//! ```
//!
//! The key is Argon2id(passphrase, salt) with the parameters written in the header, so a file
//! made on a small device (or by a test) with less memory still opens anywhere. The plaintext
//! is the JSON of [`Contents`]; the header (everything but nonce and ciphertext) is the AEAD's
//! associated data, so changing a parameter, the salt or the version makes the file fail to
//! open rather than be read differently. Nothing but the header is readable without the
//! passphrase: not even account names, because they name servers and users.
//!
//! The file is written 0600 into a 0700 directory, atomically (temporary file, fsync, rename),
//! so a crash leaves the old or the new file, never half of one.

use crate::account::Account;
use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

mod atomic;

const FORMAT: &str = "latchkey-token";
const FORMAT_VERSION: u32 = 1;
const KDF_ALGORITHM: &str = "argon2id";
/// Argon2 version 1.3.
const KDF_VERSION: u32 = 0x13;
const CIPHER: &str = "xchacha20poly1305";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;

/// File name inside the data directory.
pub const FILE_NAME: &str = "tokens.json";
/// Overrides the token file path (as `--file` does).
pub const FILE_ENV: &str = "LATCHKEY_TOKEN_FILE";
/// Argon2id memory (KiB) for a *new* file: a knob for tests and low-end devices.
pub const KDF_MEMORY_ENV: &str = "LATCHKEY_TOKEN_KDF_MEMORY_KIB";

/// Argon2id cost. The default is OWASP's first recommended setting (m = 19 MiB, t = 2, p = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Lowest memory accepted when writing a file: 1 MiB.
    pub const MIN_MEMORY_KIB: u32 = 1024;
    /// Highest accepted when reading one: a hostile header must not make us allocate 4 TiB.
    const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
    const MAX_ITERATIONS: u32 = 64;
    const MAX_PARALLELISM: u32 = 16;

    /// The default, with the memory taken from [`KDF_MEMORY_ENV`] when set.
    pub fn from_env() -> Result<Self> {
        match std::env::var(KDF_MEMORY_ENV) {
            Ok(v) => Self::with_memory(v.trim()),
            Err(std::env::VarError::NotPresent) => Ok(Self::default()),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::Usage(format!(
                "{KDF_MEMORY_ENV} must be a number of KiB"
            ))),
        }
    }

    fn with_memory(text: &str) -> Result<Self> {
        let memory_kib: u32 = text
            .parse()
            .map_err(|_| Error::Usage(format!("{KDF_MEMORY_ENV} must be a number of KiB")))?;
        if !(Self::MIN_MEMORY_KIB..=Self::MAX_MEMORY_KIB).contains(&memory_kib) {
            return Err(Error::Usage(format!(
                "{KDF_MEMORY_ENV} must be between {} and {} KiB",
                Self::MIN_MEMORY_KIB,
                Self::MAX_MEMORY_KIB
            )));
        }
        Ok(KdfParams {
            memory_kib,
            ..Self::default()
        })
    }

    fn readable(&self) -> bool {
        (1..=Self::MAX_PARALLELISM).contains(&self.parallelism)
            && (1..=Self::MAX_ITERATIONS).contains(&self.iterations)
            && (8 * self.parallelism..=Self::MAX_MEMORY_KIB).contains(&self.memory_kib)
    }

    fn derive(&self, passphrase: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| Error::Crypto(format!("Argon2 parameters: {e}")))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase, salt, key.as_mut())
            .map_err(|e| Error::Crypto(format!("Argon2: {e}")))?;
        Ok(key)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct KdfHeader {
    algorithm: String,
    version: u32,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format: String,
    version: u32,
    kdf: KdfHeader,
    cipher: String,
    nonce: String,
    ciphertext: String,
}

/// The associated data: every header field, in a fixed order and spelling, so the AEAD tag
/// covers exactly what was used to derive the key and pick the cipher.
fn associated_data(format_version: u32, kdf: &KdfHeader, cipher: &str) -> Vec<u8> {
    format!(
        "{FORMAT}\nversion={format_version}\nkdf={}\nkdf_version={}\nm={}\nt={}\np={}\nsalt={}\ncipher={cipher}",
        kdf.algorithm, kdf.version, kdf.memory_kib, kdf.iterations, kdf.parallelism, kdf.salt
    )
    .into_bytes()
}

/// The sealed plaintext.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contents {
    pub accounts: Vec<Account>,
}

/// An opened token file: its accounts and the derived key, kept so saving needs no second
/// Argon2 run (each save draws a fresh nonce; XChaCha20's 192-bit nonces make random ones safe).
pub struct TokenFile {
    path: PathBuf,
    params: KdfParams,
    salt: [u8; SALT_LEN],
    key: Zeroizing<[u8; 32]>,
    pub accounts: Vec<Account>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .field("params", &self.params)
            .field("accounts", &self.accounts.len())
            .finish_non_exhaustive()
    }
}

impl TokenFile {
    /// A new, empty file at `path` (written by [`TokenFile::save`]).
    pub fn create(path: &Path, passphrase: &[u8], params: KdfParams) -> Result<TokenFile> {
        if passphrase.is_empty() {
            return Err(Error::Passphrase("the passphrase is empty".into()));
        }
        if params.memory_kib < KdfParams::MIN_MEMORY_KIB || !params.readable() {
            return Err(Error::Usage(format!(
                "Argon2 parameters out of range: {params:?}"
            )));
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&latchkey_crypto::random_bytes(SALT_LEN)?);
        let key = params.derive(passphrase, &salt)?;
        Ok(TokenFile {
            path: path.to_path_buf(),
            params,
            salt,
            key,
            accounts: Vec::new(),
        })
    }

    /// Reads and opens the file at `path`.
    pub fn open(path: &Path, passphrase: &[u8]) -> Result<TokenFile> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(path)),
            Err(e) => return Err(Error::file(path, format!("cannot read: {e}"))),
        };
        Self::from_bytes(path, &bytes, passphrase)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// Opens a file's bytes (`path` is where a later save writes).
    pub fn from_bytes(path: &Path, bytes: &[u8], passphrase: &[u8]) -> Result<TokenFile> {
        let damaged = |why: &str| Error::file(path, format!("not a latchkey-token file ({why})"));
        let env: Envelope = serde_json::from_slice(bytes).map_err(|e| damaged(&e.to_string()))?;
        if env.format != FORMAT {
            return Err(damaged("wrong format name"));
        }
        if env.version != FORMAT_VERSION {
            return Err(Error::file(
                path,
                format!(
                    "format version {} is not supported (this program reads version {FORMAT_VERSION})",
                    env.version
                ),
            ));
        }
        if env.kdf.algorithm != KDF_ALGORITHM
            || env.kdf.version != KDF_VERSION
            || env.cipher != CIPHER
        {
            return Err(damaged("unsupported key derivation or cipher"));
        }
        let params = KdfParams {
            memory_kib: env.kdf.memory_kib,
            iterations: env.kdf.iterations,
            parallelism: env.kdf.parallelism,
        };
        if !params.readable() {
            return Err(damaged("key derivation parameters out of range"));
        }
        let salt: [u8; SALT_LEN] = B64
            .decode(&env.kdf.salt)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| damaged("bad salt"))?;
        let nonce: [u8; NONCE_LEN] = B64
            .decode(&env.nonce)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| damaged("bad nonce"))?;
        let ciphertext = B64
            .decode(&env.ciphertext)
            .map_err(|_| damaged("bad ciphertext"))?;
        let key = params.derive(passphrase, &salt)?;
        let aad = associated_data(env.version, &env.kdf, &env.cipher);
        let plaintext = Zeroizing::new(
            XChaCha20Poly1305::new((&*key).into())
                .decrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| Error::WrongPassphrase)?,
        );
        // Authenticated but unparseable can only be a bug or a future format: say so plainly.
        let contents: Contents = serde_json::from_slice(&plaintext)
            .map_err(|e| Error::file(path, format!("unreadable contents: {e}")))?;
        Ok(TokenFile {
            path: path.to_path_buf(),
            params,
            salt,
            key,
            accounts: contents.accounts,
        })
    }

    /// The sealed form of the current accounts, with a fresh nonce.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let kdf = KdfHeader {
            algorithm: KDF_ALGORITHM.into(),
            version: KDF_VERSION,
            memory_kib: self.params.memory_kib,
            iterations: self.params.iterations,
            parallelism: self.params.parallelism,
            salt: B64.encode(self.salt),
        };
        let aad = associated_data(FORMAT_VERSION, &kdf, CIPHER);
        let plaintext = Zeroizing::new(
            serde_json::to_vec(&ContentsRef {
                accounts: &self.accounts,
            })
            .map_err(|e| Error::file(&self.path, format!("cannot encode: {e}")))?,
        );
        let nonce = latchkey_crypto::random_bytes(NONCE_LEN)?;
        let ciphertext = XChaCha20Poly1305::new((&*self.key).into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Crypto("encryption failed".into()))?;
        let env = Envelope {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            kdf,
            cipher: CIPHER.into(),
            nonce: B64.encode(&nonce),
            ciphertext: B64.encode(&ciphertext),
        };
        let mut out = serde_json::to_vec_pretty(&env)
            .map_err(|e| Error::file(&self.path, format!("cannot encode: {e}")))?;
        out.push(b'\n');
        Ok(out)
    }

    /// Writes the file atomically, 0600.
    pub fn save(&self) -> Result<()> {
        let bytes = self.to_bytes()?;
        atomic::write(&self.path, &bytes)
            .map_err(|e| Error::file(&self.path, format!("cannot write: {e}")))
    }
}

#[derive(Serialize)]
struct ContentsRef<'a> {
    accounts: &'a [Account],
}

pub(crate) fn not_found(path: &Path) -> Error {
    Error::file(
        path,
        "not found: register an account first with `latchkey-token register LINK`",
    )
}

/// `$XDG_DATA_HOME/latchkey-token/tokens.json`, else `$HOME/.local/share/latchkey-token/…`.
pub fn default_path() -> Result<PathBuf> {
    let absolute = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    let base = match absolute(std::env::var_os("XDG_DATA_HOME")) {
        Some(d) => d,
        None => absolute(std::env::var_os("HOME"))
            .map(|h| h.join(".local").join("share"))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "neither XDG_DATA_HOME nor HOME is set: give the token file with --file or {FILE_ENV}"
                ))
            })?,
    };
    Ok(base.join("latchkey-token").join(FILE_NAME))
}

#[cfg(test)]
mod tests;
