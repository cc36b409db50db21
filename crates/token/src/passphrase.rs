//! Where the token file's passphrase comes from: `--passphrase-file`, the
//! `LATCHKEY_TOKEN_PASSPHRASE` environment variable (scripts, tests), or the terminal with
//! echo off.

use crate::error::{Error, Result};
use latchkey_proto::Secret;
use std::path::Path;
use zeroize::Zeroizing;

pub const PASSPHRASE_ENV: &str = "LATCHKEY_TOKEN_PASSPHRASE";

/// Fewest characters a new token file's passphrase may have (NIST SP 800-63B's minimum for
/// a memorised secret). Argon2id makes each guess slow; it cannot make a short passphrase
/// safe for whoever copies the file. Files sealed before keep opening with theirs.
pub const MIN_CHARS: usize = 8;

/// Whether the passphrase opens an existing file or seals a new one (asked twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Open,
    Create,
}

/// The passphrase as a [`Secret`]: typed by a person, so never printed and wiped on drop.
pub fn obtain(file: Option<&Path>, purpose: Purpose) -> Result<Secret> {
    let mut pass = if let Some(path) = file {
        from_file(path)?
    } else if let Some(v) = std::env::var_os(PASSPHRASE_ENV) {
        Zeroizing::new(
            v.into_string()
                .map_err(|_| Error::Passphrase(format!("{PASSPHRASE_ENV} is not valid UTF-8")))?,
        )
    } else {
        from_terminal(purpose)?
    };
    if pass.is_empty() {
        return Err(Error::Passphrase("the passphrase is empty".into()));
    }
    if purpose == Purpose::Create && pass.chars().count() < MIN_CHARS {
        return Err(Error::Passphrase(format!(
            "the passphrase is too short: a new token file needs at least {MIN_CHARS} characters"
        )));
    }
    // Moved out, not copied: the only copy left is the Secret's.
    Ok(Secret::from(std::mem::take(&mut *pass)))
}

fn from_file(path: &Path) -> Result<Zeroizing<String>> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        Error::Passphrase(format!(
            "cannot read the passphrase file {}: {e}",
            path.display()
        ))
    })?);
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        Error::Passphrase(format!(
            "the passphrase file {} is not UTF-8",
            path.display()
        ))
    })?;
    // One trailing line ending is the file's, not the passphrase's (`echo pw > file`).
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    Ok(Zeroizing::new(text.to_string()))
}

fn from_terminal(purpose: Purpose) -> Result<Zeroizing<String>> {
    let tty = latchkey_tty::terminal().map_err(|e| {
        Error::Passphrase(format!(
            "no terminal to ask the passphrase on ({e}): use --passphrase-file or {PASSPHRASE_ENV}"
        ))
    })?;
    let io = |e: std::io::Error| Error::Passphrase(format!("cannot read the passphrase: {e}"));
    let first = latchkey_tty::ask_hidden(&tty, "Token file passphrase: ").map_err(io)?;
    if purpose == Purpose::Create {
        let again = latchkey_tty::ask_hidden(&tty, "Same passphrase again: ").map_err(io)?;
        if *again != *first {
            return Err(Error::Passphrase("the two passphrases differ".into()));
        }
    }
    Ok(first)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_passphrase_file_loses_one_line_ending_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        for (content, want) in [
            ("pw\n", "pw"),
            ("pw\r\n", "pw"),
            ("pw", "pw"),
            (" pw \n\n", " pw \n"),
        ] {
            std::fs::write(&p, content).unwrap();
            assert_eq!(obtain(Some(&p), Purpose::Open).unwrap().expose(), want);
        }
        std::fs::write(&p, "\n").unwrap();
        assert!(obtain(Some(&p), Purpose::Open).is_err());
        assert!(obtain(Some(&dir.path().join("missing")), Purpose::Open).is_err());
    }

    #[test]
    fn a_new_file_needs_a_passphrase_of_eight_characters() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "x\n").unwrap();
        let err = obtain(Some(&p), Purpose::Create).unwrap_err().to_string();
        assert!(err.contains("at least 8 characters"), "{err}");
        // An existing file keeps opening with the passphrase it was sealed with.
        assert_eq!(obtain(Some(&p), Purpose::Open).unwrap().expose(), "x");
        // Characters, not bytes: eight letters of any script are enough.
        std::fs::write(&p, "ünïcödé!").unwrap();
        assert!(obtain(Some(&p), Purpose::Create).is_ok());
        std::fs::write(&p, "1234567").unwrap();
        assert!(obtain(Some(&p), Purpose::Create).is_err());
    }
}
