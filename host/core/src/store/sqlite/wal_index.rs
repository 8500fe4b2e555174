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
//! Reading the two words holding `iChange` and the checksum from our own read-only mapping of
//! the file costs two memory loads. The measured alternatives cost as much as the cache read
//! they guard: `PRAGMA data_version` (2.2 µs, a read transaction with its locks) or a `stat` of
//! the WAL (1.5 µs, a system call).
//!
//! Where the mapping cannot be made (a file system without shared memory), every call returns
//! a new token, so callers always go and look: correct, only slower.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{Mmap, MmapOptions};

use crate::store::ChangeToken;

/// Offset of the 8 bytes holding `iChange` (then `isInit`, `bigEndCksum`, `szPage`).
const CHANGE_WORD: usize = 8;
/// Offset of `aCksum`, the checksum over the first 40 bytes of the header.
const CHECKSUM_WORD: usize = 40;
/// The first copy of the header is 48 bytes long.
const HEADER_BYTES: usize = 48;

/// A read-only view of the wal-index header of one database.
pub(super) struct WalIndex {
    header: Option<Mmap>,
    /// Used instead of the header when it could not be mapped.
    fallback: AtomicU64,
}

impl WalIndex {
    /// Maps the `-shm` file of `database`. Call it while a connection to the database is open
    /// in WAL mode, so the file exists and cannot be truncated under the mapping: SQLite only
    /// truncates it when it is the sole connection left.
    pub(super) fn open(database: &Path) -> WalIndex {
        let mut shm = database.as_os_str().to_owned();
        shm.push("-shm");
        let header = File::open(&shm).and_then(|file| {
            if file.metadata()?.len() < HEADER_BYTES as u64 {
                return Err(std::io::Error::other("the wal-index is not initialized"));
            }
            // SAFETY: the mapping is read-only and only read through atomics, see `word`.
            unsafe { MmapOptions::new().len(HEADER_BYTES).map(&file) }
        });
        let header = match header {
            Ok(map) => Some(map),
            Err(error) => {
                tracing::warn!(
                    shm = %Path::new(&shm).display(),
                    %error,
                    "cannot map the wal-index; every cache read will check the database for \
                     other processes' writes, which is slower"
                );
                None
            }
        };
        WalIndex {
            header,
            fallback: AtomicU64::new(0),
        }
    }

    /// Whether commits are detected through the mapping (rather than assumed on every call).
    pub(super) fn is_mapped(&self) -> bool {
        self.header.is_some()
    }

    /// The current token.
    pub(super) fn token(&self) -> ChangeToken {
        match &self.header {
            Some(map) => ChangeToken([word(map, CHANGE_WORD), word(map, CHECKSUM_WORD)]),
            None => ChangeToken([self.fallback.fetch_add(1, Ordering::Relaxed), u64::MAX]),
        }
    }

    /// Whether `after` is exactly one commit past `before`: `iChange` went up by one.
    pub(super) fn one_commit_apart(&self, before: ChangeToken, after: ChangeToken) -> bool {
        self.is_mapped() && change_counter(after) == change_counter(before).wrapping_add(1)
    }
}

/// `iChange`, a native-endian `u32` at the start of the change word.
fn change_counter(token: ChangeToken) -> u32 {
    let bytes = token.0[0].to_ne_bytes();
    u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn word(map: &Mmap, offset: usize) -> u64 {
    debug_assert!(offset % 8 == 0 && offset + 8 <= map.len());
    // SAFETY: the mapping starts page-aligned and is at least HEADER_BYTES long, so the word
    // is in bounds and 8-byte aligned. Other processes write it concurrently through their own
    // mappings; an atomic load is the sound way to read memory that changes under us. A torn
    // header (two words from different commits) only ever differs from the last token seen,
    // which makes the caller look at the database: never a missed change.
    let atomic = unsafe { &*(map.as_ptr().add(offset) as *const AtomicU64) };
    atomic.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn the_token_changes_on_every_commit_by_any_connection_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x);")
            .unwrap();
        let index = WalIndex::open(&std::fs::canonicalize(&path).unwrap());
        assert!(index.is_mapped());

        let before = index.token();
        assert_eq!(index.token(), before, "nothing was committed");
        let other = Connection::open(&path).unwrap();
        other
            .query_row("SELECT count(*) FROM t", [], |_| Ok(()))
            .unwrap();
        assert_eq!(index.token(), before, "a read is not a commit");

        other.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let after_one = index.token();
        assert_ne!(after_one, before);
        assert!(index.one_commit_apart(before, after_one));

        writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        writer.execute("INSERT INTO t VALUES (3)", []).unwrap();
        let after_three = index.token();
        assert!(
            !index.one_commit_apart(after_one, after_three),
            "two commits apart"
        );
        assert!(!index.one_commit_apart(after_one, after_one));
    }

    #[test]
    fn without_a_wal_index_every_token_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let index = WalIndex::open(&dir.path().join("missing.db"));
        assert!(!index.is_mapped());
        assert_ne!(index.token(), index.token());
        let (a, b) = (index.token(), index.token());
        assert!(!index.one_commit_apart(a, b));
    }
}
