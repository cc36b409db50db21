//! logind session ids that callers report. The lock command runs as root with `{session}`
//! among its arguments, so an id is kept only when logind could have made it (letters and
//! digits: never an option, a path or a host) and, when an unprivileged caller reported it,
//! only when logind says the session is that caller's. logind's answer is read the way
//! `sd_session_get_uid` reads it: the `UID=` line of `/run/systemd/sessions/<id>`.

use std::io::Read;
use std::path::Path;

/// Longest id accepted (logind's are a few characters: `7`, `c12`).
pub const MAX_ID: usize = 64;

/// logind's files are a few hundred bytes.
const MAX_FILE: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("is not a logind session id (1 to {MAX_ID} letters and digits)")]
    NotAnId,
    #[error("is not an open logind session")]
    Unknown,
    #[error("belongs to another user (uid {owner})")]
    NotYours { owner: u32 },
    #[error("cannot be checked with logind: {0}")]
    Unreadable(String),
}

/// The rule of systemd's `session_id_valid`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A caller-chosen id as it may appear in a log line or a reply: quoted and escaped, and
/// cut short (the frame allows 64 KiB).
pub fn shown(id: &str) -> String {
    let cut: String = id.chars().take(MAX_ID).collect();
    if cut.len() < id.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// Ok when logind (its session files in `dir`) says session `id` belongs to `uid`.
pub fn check_owner(dir: &Path, id: &str, uid: u32) -> Result<(), Refusal> {
    if !valid_id(id) {
        return Err(Refusal::NotAnId);
    }
    // `id` is letters and digits only: the path stays inside `dir`.
    let path = dir.join(id);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Refusal::Unknown),
        Err(e) => return Err(Refusal::Unreadable(format!("{}: {e}", path.display()))),
    };
    owned_by_root(&file, &path)?;
    let mut text = String::new();
    file.take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(|e| Refusal::Unreadable(format!("{}: {e}", path.display())))?;
    let owner = text
        .lines()
        .find_map(|l| l.strip_prefix("UID="))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| Refusal::Unreadable(format!("{}: no UID= line", path.display())))?;
    if owner == uid {
        Ok(())
    } else {
        Err(Refusal::NotYours { owner })
    }
}

/// logind writes its files as root; one that is not root's proves nothing.
#[cfg(unix)]
fn owned_by_root(file: &std::fs::File, path: &Path) -> Result<(), Refusal> {
    use std::os::unix::fs::MetadataExt;
    let meta = file
        .metadata()
        .map_err(|e| Refusal::Unreadable(format!("{}: {e}", path.display())))?;
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(Refusal::Unreadable(format!(
            "{} is not root's or is writable by others",
            path.display()
        )));
    }
    Ok(())
}

/// No logind off Unix: nothing a caller reports can be checked.
#[cfg(not(unix))]
fn owned_by_root(_file: &std::fs::File, _path: &Path) -> Result<(), Refusal> {
    Err(Refusal::Unreadable("no logind on this system".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_letters_and_digits_are_ids() {
        for ok in ["7", "c12", "AbC9"] {
            assert!(valid_id(ok), "{ok}");
        }
        let long = "1".repeat(MAX_ID + 1);
        for bad in [
            "",
            "-7",
            "--host=x",
            "7 8",
            "../7",
            "c1\n",
            "7;",
            long.as_str(),
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        assert_eq!(shown("a\nb"), r#""a\nb""#);
        assert!(shown(&"x".repeat(500)).len() < 80);
    }

    #[cfg(unix)]
    #[test]
    fn the_uid_line_of_the_session_file_decides() {
        // Runs as root in CI (files are then root's); as another user the files are not
        // root's, which must refuse.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("7"), "# x\nUSER=root\nUID=0\n").unwrap();
        std::fs::write(dir.path().join("c2"), "UID=1000\n").unwrap();
        std::fs::write(dir.path().join("c3"), "USER=x\n").unwrap();
        let root = std::fs::metadata(dir.path().join("7"))
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap();
        if root {
            assert_eq!(check_owner(dir.path(), "c2", 1000), Ok(()));
            assert_eq!(
                check_owner(dir.path(), "7", 1000),
                Err(Refusal::NotYours { owner: 0 })
            );
            assert!(matches!(
                check_owner(dir.path(), "c3", 1000),
                Err(Refusal::Unreadable(_))
            ));
        } else {
            assert!(matches!(
                check_owner(dir.path(), "c2", 1000),
                Err(Refusal::Unreadable(_))
            ));
        }
        assert_eq!(check_owner(dir.path(), "42", 1000), Err(Refusal::Unknown));
        assert_eq!(
            check_owner(dir.path(), "--host=x", 1000),
            Err(Refusal::NotAnId)
        );
    }
}
