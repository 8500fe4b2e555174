//! Noticing commits by other processes without a system call.
//!
//! In WAL mode every connection to a database shares the wal-index, the `-shm` file next to it,
//! mapped into memory. Its header (documented in <https://www.sqlite.org/walformat.html>,
//! section 2.2 "The WAL-Index Header") holds `iChange`, a counter a writer increments on every
//! commit, and a checksum over the whole header. SQLite writes the header as the step that
//! makes a commit visible to readers, so a header that has not changed means nothing was
//! committed since: a writer that crashes before updating it has, as far as every reader is
//! concerned, not committed, and recovery rewrites the header when it rolls the commit in.
//!
//! Reading the two words holding `iChange` and the checksum costs two memory loads. The
//! measured alternatives cost as much as the cache read they guard: `PRAGMA data_version`
//! (2.2 µs, a read transaction with its locks) or a `stat` of the WAL (1.5 µs, a system call).
//!
//! The header is read through SQLite's own mapping of the wal-index, obtained from the VFS
//! (`xShmMap` on the database file), never through a file descriptor of our own: closing any
//! descriptor of a file drops every POSIX lock the process holds on it, SQLite's included,
//! which would let another process truncate the wal-index under live mappings.
//!
//! Where no mapping can be had (a VFS without shared memory), every call returns a new token,
//! so callers always go and look: correct, only slower.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, ffi};

use crate::store::ChangeToken;

/// Offset of the 8 bytes holding `iChange` (then `isInit`, `bigEndCksum`, `szPage`).
const CHANGE_WORD: usize = 8;
/// Offset of `aCksum`, the checksum over the first 40 bytes of the header.
const CHECKSUM_WORD: usize = 40;
/// The size of a wal-index region, as SQLite maps them.
const REGION_BYTES: i32 = 32 * 1024;

/// A read-only view of the wal-index header of one database.
pub(super) struct WalIndex {
    /// The start of region 0 of the wal-index, mapped by SQLite for the connection we were
    /// attached to; valid for as long as that connection is open.
    header: Option<NonNull<u8>>,
    /// Used instead of the header when there is none.
    fallback: AtomicU64,
}

// SAFETY: the header is shared memory that every process and thread reads and writes
// concurrently by design; we only ever read it through atomic loads (see `word`), and the
// owner of the `WalIndex` keeps the connection that maps it open for as long as the
// `WalIndex` lives (`SqliteStore` holds both).
unsafe impl Send for WalIndex {}
unsafe impl Sync for WalIndex {}

impl WalIndex {
    /// Attaches to the wal-index of `conn`'s database. `conn` must be in WAL mode, have read
    /// from the database already (so the wal-index is mapped), and stay open for as long as
    /// the returned `WalIndex` is used.
    pub(super) fn attach(conn: &Connection) -> WalIndex {
        // SAFETY: `conn` is a live connection; see `map_region_zero`.
        let header = unsafe { map_region_zero(conn) };
        WalIndex { header, fallback: AtomicU64::new(0) }
    }

    /// A `WalIndex` with no header: every token is new.
    #[cfg(test)]
    fn unmapped() -> WalIndex {
        WalIndex { header: None, fallback: AtomicU64::new(0) }
    }

    /// Whether commits are detected through the wal-index (rather than assumed on every call).
    pub(super) fn is_mapped(&self) -> bool {
        self.header.is_some()
    }

    /// The current token.
    pub(super) fn token(&self) -> ChangeToken {
        match self.header {
            Some(header) => ChangeToken([word(header, CHANGE_WORD), word(header, CHECKSUM_WORD)]),
            None => ChangeToken([self.fallback.fetch_add(1, Ordering::Relaxed), u64::MAX]),
        }
    }

    /// Whether `after` is exactly one commit past `before`: `iChange` went up by one.
    pub(super) fn one_commit_apart(&self, before: ChangeToken, after: ChangeToken) -> bool {
        self.is_mapped() && change_counter(after) == change_counter(before).wrapping_add(1)
    }
}

/// Region 0 of the wal-index as SQLite has mapped it for `conn`, through the VFS.
///
/// # Safety
///
/// `conn` must be open. The pointer is valid until `conn` is closed.
unsafe fn map_region_zero(conn: &Connection) -> Option<NonNull<u8>> {
    let file = super::connection::open_file(conn, ffi::SQLITE_FCNTL_FILE_POINTER)?;
    // SAFETY: the calls follow sqlite3.h: `file` is the main database's open file;
    // `xShmMap` (io methods version 2 and up) with bExtend = 0 returns the existing mapping of
    // region 0, or NULL when it is not mapped.
    unsafe {
        let methods = (*file).pMethods;
        if (*methods).iVersion < 2 {
            return None;
        }
        let shm_map = (*methods).xShmMap?;
        let mut region: *mut c_void = std::ptr::null_mut();
        if shm_map(file, 0, REGION_BYTES, 0, &mut region) != ffi::SQLITE_OK {
            return None;
        }
        NonNull::new(region.cast::<u8>())
    }
}

/// `iChange`, a native-endian `u32` at the start of the change word.
fn change_counter(token: ChangeToken) -> u32 {
    let bytes = token.0[0].to_ne_bytes();
    u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn word(header: NonNull<u8>, offset: usize) -> u64 {
    debug_assert!(offset.is_multiple_of(8) && offset + 8 <= 48);
    // SAFETY: region 0 is 32 KiB, mapped page-aligned (or allocated 8-aligned), and stays
    // mapped while the connection is open (see `WalIndex`), so the word is in bounds and
    // aligned. Other processes write it concurrently; an atomic load is the sound way to read
    // memory that changes under us. A torn header (words from different commits) only ever
    // differs from the last token seen, which makes the caller look at the database: never a
    // missed change.
    let atomic = unsafe { &*(header.as_ptr().add(offset) as *const AtomicU64) };
    atomic.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_changes_on_every_commit_by_any_connection_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = Connection::open(&path).unwrap();
        writer.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x);").unwrap();
        let index = WalIndex::attach(&writer);
        assert!(index.is_mapped());

        let before = index.token();
        assert_eq!(index.token(), before, "nothing was committed");
        let other = Connection::open(&path).unwrap();
        other.query_row("SELECT count(*) FROM t", [], |_| Ok(())).unwrap();
        assert_eq!(index.token(), before, "a read is not a commit");

        other.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let after_one = index.token();
        assert_ne!(after_one, before);
        assert!(index.one_commit_apart(before, after_one));

        writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        writer.execute("INSERT INTO t VALUES (3)", []).unwrap();
        let after_three = index.token();
        assert!(!index.one_commit_apart(after_one, after_three), "two commits apart");
        assert!(!index.one_commit_apart(after_one, after_one));
    }

    #[test]
    fn without_a_wal_index_every_token_is_new() {
        let index = WalIndex::unmapped();
        assert!(!index.is_mapped());
        assert_ne!(index.token(), index.token());
        let (a, b) = (index.token(), index.token());
        assert!(!index.one_commit_apart(a, b));
    }
}
