//! The SQLite file under the layer: opening a connection with its settings, the PASSIVE
//! checkpoint and the file sync that `Store::checkpoint` is made of, and SQLite's error codes
//! as the store's errors.

use super::BUSY_WAIT;
use crate::store::{Result, StoreError};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

pub(super) fn open_sqlite(path: &Path, writer: bool) -> Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(BUSY_WAIT)?;
    // WAL lets readers run beside the single writer; NORMAL sync is durable across process
    // crashes (the WAL is fsync'd at checkpoints).
    c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    // Savepoints (each multi-statement job of a group commit has one) keep the pages they
    // change in a sub-journal: in memory, not a temporary file written page by page (that
    // was 40% of the server's CPU under event ingest).
    c.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
    )?;
    if writer {
        // Checkpoints run from a background task (`Store::checkpoint`), not inside a commit.
        // The writer also answers most point reads (its cache stays valid: no other
        // connection writes), so it gets the larger page cache; pages are allocated only as
        // they are used.
        // After a burst, the WAL file is cut back to 64 MiB when it starts over.
        c.execute_batch(
            "PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -16384; PRAGMA journal_size_limit = 67108864;",
        )?;
    }
    c.set_prepared_statement_cache_capacity(256);
    Ok(c)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            match f.code {
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                    return StoreError::Busy;
                }
                rusqlite::ErrorCode::ConstraintViolation
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    return StoreError::Unique(e.to_string());
                }
                _ => {}
            }
        }
        StoreError::Db(e.to_string())
    }
}

/// SQLite's PASSIVE checkpoint (it never waits for a reader or the writer): copies the
/// committed WAL frames it can into the database file. Returns the frames in the WAL and the
/// frames copied so far.
pub(crate) fn wal_checkpoint_passive(c: &Connection) -> Result<(i64, i64)> {
    Ok(c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })?)
}

/// `fsync`s the connection's database file through SQLite's own file handle.
///
/// A checkpoint copies pages into the database file and syncs it only when it has copied the
/// whole WAL. Syncing after the copies that run beside the writes leaves the writer's pass
/// only its own few pages to flush, instead of a second's worth (13 ms on the VM's disk). Going
/// through SQLite's handle matters: opening and closing another descriptor on the file would
/// drop the process's POSIX locks on it.
pub(crate) fn sync_database_file(c: &Connection) -> Result<()> {
    sync_file(c, rusqlite::ffi::SQLITE_FCNTL_FILE_POINTER, "database file")
}

/// `fsync`s the connection's WAL file through SQLite's own file handle (the connection must
/// have read or written in WAL mode, which opens it).
pub(crate) fn sync_wal_file(c: &Connection) -> Result<()> {
    sync_file(c, rusqlite::ffi::SQLITE_FCNTL_JOURNAL_POINTER, "WAL file")
}

#[allow(unsafe_code)]
fn sync_file(c: &Connection, which: std::ffi::c_int, what: &str) -> Result<()> {
    use rusqlite::ffi;
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `c` is open and used by this thread only (a `&Connection` is not shared across
    // threads while `f` runs); SQLITE_FCNTL_FILE_POINTER and SQLITE_FCNTL_JOURNAL_POINTER
    // write one `sqlite3_file*` (or null) into `file`, which stays valid while the
    // connection is open and not used elsewhere.
    let rc = unsafe {
        ffi::sqlite3_file_control(c.handle(), c"main".as_ptr(), which, (&raw mut file).cast())
    };
    if rc != ffi::SQLITE_OK || file.is_null() {
        return Err(StoreError::Db(format!(
            "cannot reach the {what} to sync it (code {rc})"
        )));
    }
    // SAFETY: `file` is an open file of `c` (checked non-null above); its methods table is
    // set by the VFS while the file is open, and null (checked) when it is not.
    let sync = unsafe { (*file).pMethods.as_ref().and_then(|m| m.xSync) };
    let Some(sync) = sync else {
        return Err(StoreError::Db(format!("the {what} cannot be synced")));
    };
    // SAFETY: `xSync` of the file's own VFS on that file, with a documented flag.
    let rc = unsafe { sync(file, ffi::SQLITE_SYNC_NORMAL) };
    if rc != ffi::SQLITE_OK {
        return Err(StoreError::Db(format!(
            "syncing the {what} failed (code {rc})"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn syncing_the_database_and_wal_files_works_on_a_file_and_says_why_not_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let c = open_sqlite(&dir.path().join("t.db"), true).unwrap();
        c.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        sync_database_file(&c).unwrap();
        sync_wal_file(&c).unwrap();
        let m = Connection::open_in_memory().unwrap();
        let e = sync_database_file(&m).unwrap_err();
        assert!(e.to_string().contains("database file"), "{e}");
        assert!(sync_wal_file(&m).is_err());
    }
}
