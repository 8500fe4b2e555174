//! Making commits durable after the write lock is released, and never showing a commit to
//! anyone before it is durable.
//!
//! With `synchronous = FULL` SQLite fsyncs the WAL inside `COMMIT`, holding the database's one
//! write lock for the whole fsync: every other process that wants to write waits for it, so
//! processes sharing a file write one fsync at a time. A writer that finds other processes
//! committing between its own commits therefore has SQLite skip that fsync (see `wal_writes`)
//! and fsyncs the WAL itself, outside the lock, before it acknowledges anything. Other
//! processes commit meanwhile, and one fsync covers every commit before it began, in whichever
//! process: they take turns at a board (see `fsync_board`), one fsync in flight at a time, and
//! a commit that an fsync began after needs none of its own. That is group commit across
//! processes, where SQLite only has it within one connection. What is acknowledged is exactly
//! as durable as before (with SQLite's default power-safe overwrite there is no torn sector to
//! pad against, and neither the fsync of a restarted WAL's header nor that of a checkpoint is
//! ever skipped). A writer alone keeps the fsync inside `COMMIT` (see
//! `SqliteStore::transaction`): nobody waits for its lock, and its commits are durable as they
//! become visible.
//!
//! A commit fsynced after it became visible could be read before it is durable: read a
//! value, act on it, and lose it in a power cut that its writer was never acknowledged
//! through. So every read in [`Durability::Full`] passes a barrier, as PostgreSQL makes no
//! commit visible before its WAL is flushed. Right after the read the reader notes what it
//! could have seen ([`Seen`]: the wal-index token and the number of the next fsync to begin);
//! unless the last completed fsync began with the same token, or an fsync begun since has
//! completed, it fsyncs the WAL before it answers (waiting, in the kernel or on our lock, for
//! an fsync in flight). The check takes no lock: three atomic loads and compares. Readers
//! outside easycaching (the `sqlite3` shell) pass no barrier.
//!
//! An fsync that fails poisons the store: the kernel may have dropped the pages it could not
//! write and a later fsync could report success over the loss, so every later write and read
//! fails with the first error until the database is opened again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, ffi};

use super::fsync_board::{FsyncBoard, Turn};
use super::wal_index::WalIndex;
use crate::options::Durability;
use crate::store::ChangeToken;

/// Which commits this process knows to be durable, and the connection it fsyncs through.
pub(super) struct DurableMark {
    /// Taken to fsync: one fsync at a time, through one handle. `None` with
    /// [`Durability::Normal`], which never fsyncs (and so opens no connection for it).
    state: Option<Mutex<State>>,
    /// What completed fsyncs made durable, read without the lock, so a read or commit that
    /// needs no fsync never waits for one in progress.
    done: Done,
}

/// What a commit or a read could have seen, as far as durability goes: the wal-index token
/// just after it, and the number of the first fsync to begin after it (its ticket at the
/// board).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) token: ChangeToken,
    pub(crate) ticket: u64,
}

struct State {
    /// A connection of our own, used only for its handle on the WAL. Owning one means the
    /// barrier needs no connection from its caller, and never uses a handle another thread
    /// is using.
    wal: Connection,
    /// The first fsync failure, after which nothing is trusted.
    failed: Option<String>,
    /// Fsyncs done, for tests.
    #[cfg(test)]
    syncs: u64,
}

/// Written once an fsync has completed; read by anyone, without a lock.
struct Done {
    /// Which fsyncs have begun and completed, in this process and in every other that has
    /// the database open: whatever holds ticket `t` is durable once fsync `t` or a later one
    /// has completed; and the wal-index token read just before the last completed fsync
    /// began, every commit up to which is durable. (A torn read of that token only ever fails
    /// to match: an fsync too many, never one too few.)
    board: FsyncBoard,
    /// Set when an fsync failed; the error is in `State::failed`.
    failed: AtomicBool,
}

impl Done {
    fn covers(&self, seen: Seen, wal_index: &WalIndex) -> bool {
        // (Without a mapping every token is new, so only the ticket can tell.)
        !self.failed.load(Ordering::Acquire)
            && !self.board.failed_elsewhere()
            && ((self.board.synced_at(seen.token) && wal_index.is_mapped()) || self.board.covers(seen.ticket))
    }
}

impl DurableMark {
    /// A mark for a store opened with `durability`. Only [`Durability::Full`] fsyncs, through
    /// the connection `open_wal` opens, one to the database the mark has to itself, taking
    /// turns with other processes at `board`.
    pub(super) fn new<E>(
        durability: Durability,
        board: FsyncBoard,
        open_wal: impl FnOnce() -> Result<Connection, E>,
    ) -> Result<DurableMark, E> {
        let state = match durability {
            Durability::Full => Some(Mutex::new(State {
                wal: open_wal()?,
                failed: None,
                #[cfg(test)]
                syncs: 0,
            })),
            Durability::Normal => None,
        };
        Ok(DurableMark { state, done: Done { board, failed: AtomicBool::new(false) } })
    }

    /// What a commit that has just completed, or a read that has just ended, could have
    /// seen, given `token`, the wal-index token read right after it, before waiting for
    /// anything.
    pub(super) fn seen(&self, token: ChangeToken) -> Seen {
        Seen { token, ticket: self.done.board.ticket() }
    }

    /// Makes durable every commit that what `seen` describes could have seen, unless it
    /// already is: nothing was committed between it and the start of the last completed
    /// fsync (an fsync in progress when it was taken suffices, once done), or an fsync that
    /// began after it has completed. Everything that committed while one fsync ran shares the
    /// next.
    pub(super) fn ensure_seen(&self, seen: Seen, wal_index: &WalIndex) -> rusqlite::Result<()> {
        let Some(state) = &self.state else { return Ok(()) };
        if self.done.covers(seen, wal_index) {
            return Ok(());
        }
        let mut state = lock(state);
        if state.failed.is_none() && self.done.board.failed_elsewhere() {
            self.fail(
                &mut state,
                "an fsync of the write-ahead log failed in another process; the last writes may \
                 not be on disk, so this process refuses to go on: open the database again",
            );
        }
        if let Some(failure) = &state.failed {
            return Err(fsync_error(failure.clone()));
        }
        if self.done.covers(seen, wal_index) {
            return Ok(());
        }
        let number = match self.done.board.turn(seen.ticket) {
            Turn::Covered => return Ok(()),
            Turn::Fsync(number) => number,
        };
        // Read once the turn is ours, just before the fsync: whatever it shows was written to
        // the WAL before, so the fsync covers it.
        let now = wal_index.token();
        let synced = sync_wal(&state.wal);
        self.done.board.end(number, synced.is_ok());
        match synced {
            Ok(()) => {
                self.done.board.record_synced(now);
                #[cfg(test)]
                {
                    state.syncs += 1;
                }
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "fsync of the WAL failed; refusing every read and write from now on");
                self.fail(
                    &mut state,
                    &format!(
                        "an fsync of the write-ahead log failed ({error}); the last writes may not \
                         be on disk, so this process refuses to go on: open the database again"
                    ),
                );
                Err(error)
            }
        }
    }

    /// Refuses every read and write from now on, with `why`.
    fn fail(&self, state: &mut State, why: &str) {
        state.failed = Some(why.to_owned());
        self.done.failed.store(true, Ordering::Release);
    }

    /// Whether this mark fsyncs at all (`Durability::Full`).
    pub(super) fn fsyncs(&self) -> bool {
        self.state.is_some()
    }

    /// Records that every commit up to `token` is durable (SQLite fsynced it inside COMMIT).
    /// Takes no lock: the board's token is written by whoever completes an fsync, in any
    /// process, and every token written there is true, in whatever order they land.
    pub(super) fn durable_up_to(&self, token: ChangeToken) {
        if self.fsyncs() {
            self.done.board.record_synced(token);
        }
    }

    /// Makes every commit visible now durable, unless it already is.
    pub(super) fn ensure(&self, wal_index: &WalIndex) -> rusqlite::Result<()> {
        self.ensure_seen(self.seen(wal_index.token()), wal_index)
    }

    /// Fsyncs done so far.
    #[cfg(test)]
    pub(super) fn syncs(&self) -> u64 {
        self.state.as_ref().map_or(0, |state| lock(state).syncs)
    }

    /// The token read before the last completed fsync.
    #[cfg(test)]
    fn synced(&self) -> ChangeToken {
        self.done.board.synced()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn fsync_error(message: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_IOERR_FSYNC), Some(message))
}

/// Fsyncs the WAL through the handle SQLite itself writes it with, so it is the very file
/// SQLite uses (a descriptor of our own could outlive a WAL that was deleted and made anew).
fn sync_wal(conn: &Connection) -> rusqlite::Result<()> {
    let file = match wal_file(conn) {
        Some(file) => file,
        None => {
            // A connection opens its WAL with its first read.
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
            wal_file(conn).ok_or_else(|| {
                fsync_error("the write-ahead log is not open, so it cannot be fsynced".into())
            })?
        }
    };
    // SAFETY: `file` is the connection's open WAL (see `wal_file`), which stays open while
    // the connection does; the caller has the connection to itself, so nothing else uses the
    // handle during `xSync`.
    let rc = unsafe {
        match (*(*file).pMethods).xSync {
            Some(sync) => sync(file, ffi::SQLITE_SYNC_NORMAL),
            None => ffi::SQLITE_MISUSE,
        }
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(rc),
            Some("fsync of the write-ahead log failed".into()),
        ))
    }
}

/// The connection's WAL file, when it is open.
fn wal_file(conn: &Connection) -> Option<*mut ffi::sqlite3_file> {
    super::connection::open_file(conn, ffi::SQLITE_FCNTL_JOURNAL_POINTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_db(path: &std::path::Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE IF NOT EXISTS t (x);",
        )
        .unwrap();
        conn
    }

    /// A database with a connection that writes, its wal-index, and a mark with a
    /// connection of its own. Fields drop in order: the directory goes last.
    struct Fixture {
        index: WalIndex,
        mark: DurableMark,
        conn: Connection,
        path: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    fn fixture(durability: Durability) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = wal_db(&path);
        let index = WalIndex::attach(&conn);
        let mark = DurableMark::new(
            durability,
            FsyncBoard::new(std::sync::Arc::new(super::super::board::Board::local())),
            || Ok::<_, ()>(wal_db(&path)),
        )
        .unwrap();
        Fixture { index, mark, conn, path, _dir: dir }
    }

    #[test]
    fn a_commit_is_synced_once_and_a_quiet_database_is_not_synced_again() {
        let Fixture { index, mark, conn, path, .. } = &fixture(Durability::Full);

        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        mark.ensure(index).unwrap();
        assert_eq!(mark.syncs(), 1);
        assert_eq!(mark.synced(), index.token(), "the commit is known durable");
        mark.ensure(index).unwrap();
        mark.ensure(index).unwrap();
        assert_eq!(mark.syncs(), 1, "nothing was committed since: no fsync");

        let other = wal_db(path);
        other.execute("INSERT INTO t VALUES (2)", []).unwrap();
        assert_ne!(mark.synced(), index.token(), "another connection's commit is not yet known durable");
        mark.ensure(index).unwrap();
        assert_eq!(mark.syncs(), 2, "another connection's commit is fsynced by the first to see it");
        assert_eq!(mark.synced(), index.token());
    }

    #[test]
    fn commits_that_an_fsync_began_after_share_it() {
        let Fixture { index, mark, conn, .. } = &fixture(Durability::Full);

        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let first = mark.seen(index.token());
        conn.execute("INSERT INTO t VALUES (2)", []).unwrap();
        let second = mark.seen(index.token());
        mark.ensure_seen(first, index).unwrap();
        assert_eq!(mark.syncs(), 1);
        conn.execute("INSERT INTO t VALUES (3)", []).unwrap();
        mark.ensure_seen(second, index).unwrap();
        assert_eq!(mark.syncs(), 1, "the fsync for the first commit began after the second: it covers both");

        let third = mark.seen(index.token());
        mark.ensure_seen(third, index).unwrap();
        assert_eq!(mark.syncs(), 2, "a commit after the last fsync began needs another");
        conn.execute("INSERT INTO t VALUES (4)", []).unwrap();
        mark.ensure_seen(third, index).unwrap();
        assert_eq!(mark.syncs(), 2, "what was seen is durable, whatever was committed later");
    }

    #[test]
    fn normal_durability_never_syncs() {
        let Fixture { index, mark, conn, .. } = &fixture(Durability::Normal);
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        mark.ensure(index).unwrap();
        assert_eq!(mark.syncs(), 0);
    }

    #[test]
    fn after_a_failed_fsync_everything_fails() {
        let Fixture { index, mark, conn, .. } = &fixture(Durability::Full);
        lock(mark.state.as_ref().unwrap()).failed = Some("disk gone".into());
        mark.done.failed.store(true, Ordering::Release);
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let error = mark.ensure(index).unwrap_err();
        assert!(error.to_string().contains("disk gone"), "{error}");
        assert_eq!(mark.syncs(), 0);
    }
}
