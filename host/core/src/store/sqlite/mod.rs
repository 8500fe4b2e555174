//! The SQLite backend: one database file in WAL mode, shared by every process that opens it.
//!
//! - One writing connection, used by one batch of writes at a time (see `group_commit`);
//!   each batch is one `BEGIN IMMEDIATE` transaction and one fsync: inside `COMMIT` while
//!   this process writes alone, after it (outside the write lock) while other processes
//!   write too, with a barrier that keeps readers from seeing a commit before it is durable
//!   (see `durable`). Processes queue for the write lock (`write_turns`) and share fsyncs
//!   (`fsync_board`) through one small file beside the database, `<database>-board`. The
//!   connection opens the database through a VFS of ours that writes each commit's WAL
//!   frames in one system call and lets the store skip SQLite's fsync inside `COMMIT`
//!   (`wal_writes`).
//! - A pool of read connections, so readers on many threads never wait for each other or for
//!   the writer (WAL readers see the last commit without taking the write lock).
//! - Every statement is prepared once per connection and every name, key and value is a bound
//!   parameter: nothing a guest sends is ever spliced into SQL.

mod backup;
mod board;
mod connection;
mod durable;
mod fsync_board;
mod handoffs;
mod schema;
mod statements;
mod tables;
mod wal_index;
mod wal_writes;
mod write_turns;
mod writes;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, Statement, params};

use self::board::Board;
use self::connection::{ReaderPool, Settings};
use self::durable::DurableMark;
use self::fsync_board::FsyncBoard;
use self::handoffs::{HandedOver, Handoffs};
use self::statements::{ReadStatements, TransactionStatements, WriteStatements, WriterConnection};
use self::tables::{CACHES, QUEUES};
use self::wal_index::WalIndex;
use self::wal_writes::CommitWrites;
use self::write_turns::WriteTurns;
use super::{
    Applied, CacheId, Change, ChangeToken, Changes, Copied, DiskUsage, HandoffStats, KeyRange, Listed,
    Outcome, OwnCommit, Page, PageStatements, QueueId, Stats, Store, Stored, SyncTarget, Target, Write,
    Writes,
};
use crate::options::Durability;
use crate::{Clock, Error, Json, Result};

/// The change log keeps at least this many recent changes (a row of several keys counts
/// each, see `writes::KIND_KEYS`): a process that falls further behind than this forgets its
/// whole LRU instead of the changed keys only.
const CHANGE_LOG_RETAINED: i64 = 10_000;
/// A writer fsyncs inside COMMIT again after this many batches in a row that no other
/// process committed between: a writer process that won the lock twice in a row among many
/// is not alone.
const QUIET_BATCHES_FOR_FSYNC_IN_COMMIT: u32 = 64;
/// Old changes are pruned once every this many batches.
const PRUNE_EVERY_BATCHES: u64 = 256;
/// The longest a writer goes without looking for expired entries to sweep, in ms, while it
/// knows of none (other processes may store entries that expire sooner than any it knows).
/// The look is one probe of the index of expiries, at most once per this long per process:
/// writes pay nothing for expiry when nothing expires.
const SWEEP_LOOK_EVERY_MS: i64 = 1000;
/// And it reads the clock to see whether that time has come only once every this many
/// batches, unless a sweep is under way: a batch of plain sets reads no clock at all.
const SWEEP_LOOK_EVERY_BATCHES: u64 = 16;
/// `Writer::next_sweep_at` when the next batch is to look at once (a sweep under way, or
/// none made yet).
const SWEEP_NOW: i64 = 0;

/// A database file and how long to wait for its locks: enough to describe any failure.
pub(super) struct DbFile {
    path: PathBuf,
    busy_timeout: Duration,
}

impl DbFile {
    /// Turns an SQLite error into ours, naming the file where that helps.
    fn error(&self, error: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode::*;
        if let rusqlite::Error::Utf8Error(..)
        | rusqlite::Error::FromSqlConversionFailure(_, rusqlite::types::Type::Text, _) = error
        {
            // Only UTF-8 text is ever stored: a key or value that is not was damaged on disk.
            let detail = format!("a stored key or value is not UTF-8 text: {error}");
            return Error::Corrupt { path: self.path.clone(), detail };
        }
        match error.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked) => {
                Error::Busy { path: self.path.clone(), waited: self.busy_timeout }
            }
            Some(DatabaseCorrupt) => Error::Corrupt { path: self.path.clone(), detail: error.to_string() },
            Some(NotADatabase) => Error::NotOurDatabase {
                path: self.path.clone(),
                reason: "it is not an SQLite database file".into(),
            },
            Some(DiskFull) => Error::Storage(format!("the disk holding {} is full", self.path.display())),
            // SQLite says only "disk I/O error" when it cannot grow the `-shm` file it maps,
            // which is what a full disk does (it writes the file through before mapping it).
            Some(SystemIoFailure) if extended_code(&error) == Some(rusqlite::ffi::SQLITE_IOERR_SHMSIZE) => {
                Error::Storage(format!(
                    "the disk holding {} is full (there was no room for its -shm file)",
                    self.path.display()
                ))
            }
            Some(ReadOnly) => Error::Storage(format!(
                "{} is read-only (check the permissions of the file and of its directory)",
                self.path.display()
            )),
            _ => Error::Storage(format!("{}: {error}", self.path.display())),
        }
    }
}

/// `<database><suffix>`: the files beside a database, SQLite's `-wal` and `-shm` and our
/// `-board`, named as SQLite names its own.
pub(super) fn sidecar(database: &Path, suffix: &str) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// SQLite's extended result code of `error`, when it is SQLite's.
fn extended_code(error: &rusqlite::Error) -> Option<std::ffi::c_int> {
    match error {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.extended_code),
        _ => None,
    }
}

/// The writing connection with its statements, and what decides where its fsync goes.
struct Writer {
    conn: WriterConnection,
    /// The change token just after our last commit.
    last_commit: Option<ChangeToken>,
    /// Whether the last commit was fsynced inside `COMMIT`, rather than left to
    /// [`Store::sync`] (see `wal_writes`).
    fsync_in_commit: bool,
    /// Our batches in a row that no other process committed between.
    quiet_batches: u32,
    /// When (unix ms) the next transaction is to look for expired entries to sweep: the
    /// earliest expiry known, but no later than [`SWEEP_LOOK_EVERY_MS`] after the last look.
    next_sweep_at: i64,
}

/// The SQLite [`Store`].
pub struct SqliteStore {
    db: DbFile,
    /// Reads the wal-index through `writer`'s mapping; declared first so it goes first.
    wal_index: WalIndex,
    writer: Mutex<Writer>,
    readers: ReaderPool,
    /// Which commits are known durable: writes wait for it, reads pass its barrier.
    durable: DurableMark,
    /// Where writers of every process queue for the write lock.
    write_turns: Arc<WriteTurns>,
    /// Where lone writes are handed over to the process holding the write turn.
    handoffs: Handoffs,
    /// Tags this store's rows in the change log, so it can skip its own changes.
    writer_id: i64,
    batches: AtomicU64,
    /// What expiry and leases are told by.
    clock: Clock,
}

impl SqliteStore {
    /// Opens (creating when needed) the database at `path`.
    pub fn open(path: &Path, durability: Durability, busy_timeout: Duration) -> Result<SqliteStore> {
        let settings = Settings { durability, busy_timeout };
        let first = DbFile { path: path.to_owned(), busy_timeout };
        let mut writer = connection::open_writer(&first, &settings)?;
        schema::prepare(&mut writer, &first)?;
        let path = std::fs::canonicalize(path).map_err(|e| Error::path("resolve", path, e))?;
        let db = DbFile { path: path.clone(), busy_timeout };
        let board = Arc::new(Board::open(&path));
        let durable = DurableMark::new(durability, FsyncBoard::new(board.clone()), || {
            connection::open_reader(&db, &settings)
        })?;
        // Never `writes::NOBODY`, whose changes every process reads.
        let writer_id = fastrand::i64(1..);
        let handoffs = Handoffs::new(board.clone(), writer_id);
        let write_turns = Arc::new(WriteTurns::new(board, busy_timeout));
        let turns = write_turns.clone();
        connection::before_waiting(&mut writer, &db, &settings, move || {
            turns.give_up();
            turns.waits_end()
        })?;
        let wal_index = WalIndex::attach(&writer);
        let writer = WriterConnection::prepare(writer).map_err(|e| db.error(e))?;
        Ok(SqliteStore {
            wal_index,
            readers: ReaderPool::new(DbFile { path, busy_timeout }, settings),
            writer: Mutex::new(Writer {
                conn: writer,
                last_commit: None,
                fsync_in_commit: false,
                quiet_batches: QUIET_BATCHES_FOR_FSYNC_IN_COMMIT,
                next_sweep_at: SWEEP_NOW,
            }),
            durable,
            write_turns,
            handoffs,
            db,
            writer_id,
            batches: AtomicU64::new(0),
            clock: Clock::system(),
        })
    }

    /// Tells expiry and leases by `clock` rather than the system's wall clock (see
    /// [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(mut self, clock: impl Into<Clock>) -> SqliteStore {
        self.clock = clock.into();
        self
    }

    /// Has the commit that takes the WAL past `pages` pages copy it into the database (see
    /// [`CacheManagerBuilder::checkpoint_pages`](crate::CacheManagerBuilder::checkpoint_pages)).
    pub fn set_checkpoint_pages(&self, pages: u32) -> Result<()> {
        let writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        connection::set_checkpoint_pages(writer.conn.borrow_owner(), &self.db, pages.max(1))
    }

    /// Puts a copy of the backup at `backup` in place of the database at `database`, which no
    /// process may have open, moving that aside; see [`CacheManager::restore`](crate::CacheManager::restore).
    pub(crate) fn restore(backup: &Path, database: &Path) -> Result<(Copied, Option<PathBuf>)> {
        backup::restore(backup, database)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// Whether other processes' commits are noticed through the shared wal-index (the fast
    /// way) rather than by asking the database on every read.
    pub fn detects_changes_in_memory(&self) -> bool {
        self.wal_index.is_mapped()
    }

    /// Runs `read` on a read connection, and answers only once every commit it could have
    /// seen is durable.
    fn read<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.read_then(|conn, _| read(conn), |_| true)
    }

    /// Like [`SqliteStore::read`], with the statements held prepared on the connection.
    fn read_prepared<T>(
        &self,
        read: impl FnOnce(&Connection, &mut ReadStatements<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.read_then(read, |_| true)
    }

    /// Like [`SqliteStore::read`], but waits for durability only when `reveals` says the value
    /// tells of the data; a read that can only make the caller forget (invalidations) need not.
    fn read_then<T>(
        &self,
        read: impl FnOnce(&Connection, &mut ReadStatements<'_>) -> rusqlite::Result<T>,
        reveals: impl FnOnce(&T) -> bool,
    ) -> Result<T> {
        let (value, seen) = self.readers.with(|conn, statements| {
            Ok((read(conn, statements)?, self.durable.seen(self.wal_index.token())))
        })?;
        if reveals(&value) {
            self.durable.ensure_seen(seen, &self.wal_index).map_err(|e| self.db.error(e))?;
        }
        Ok(value)
    }

    /// Runs the batch in one transaction, taking its writes as they come; an error here fails
    /// every write taken. The write that opens the transaction runs without a savepoint, so
    /// a lone write (the common case) pays for none: should it fail, the transaction is
    /// rolled back and the next write opens another. Each later write runs in a savepoint of
    /// its own.
    fn transaction(
        &self,
        writer: &mut Writer,
        writes: &mut dyn Writes,
        taken: &mut usize,
    ) -> Result<Applied> {
        let Writer { conn: connection, last_commit, fsync_in_commit, quiet_batches, next_sweep_at } = writer;
        connection.with_dependent_mut(|conn, statements| {
            let lone = writes.is_lone();
            let Some(first) = writes.next_write() else {
                return Ok(Applied { results: Vec::new(), sync: SyncTarget::Visible, own_commit: None });
            };
            *taken = 1;
            // Handing the write over, the turn and SQLite's lock: all waited for within one
            // busy timeout.
            let waits = self.write_turns.waits();
            if lone && let Some(applied) = self.hand_over(first, waits.deadline) {
                return Ok(applied);
            }
            // Where the fsync goes. While no other process commits between our commits, inside
            // COMMIT, as SQLite does it: the commit is durable when it becomes visible (so no
            // read waits for it), and nobody waits for the write lock anyway. Once others
            // commit between ours, after COMMIT, outside the write lock, so other processes
            // commit during our fsync and share the next (see `durable`), until our commits
            // have gone uncontended for a while.
            let others_committed = last_commit.is_some_and(|last| last != self.wal_index.token());
            *quiet_batches = if others_committed { 0 } else { quiet_batches.saturating_add(1) };
            let alone = *quiet_batches >= QUIET_BATCHES_FOR_FSYNC_IN_COMMIT;
            let WriteStatements { transaction, entries } = statements;
            // Our turn among the writers of every process, until the transaction ends.
            let turn = self.write_turns.take(waits.deadline);
            let mut results = Vec::new();
            let mut batch = writes::Batch::new(conn, entries, self.writer_id, &self.clock);
            // The token read as the transaction open now began, if one is open.
            let mut open: Option<ChangeToken> = None;
            let mut next = Some(first);
            while let Some(write) = next {
                let result = match open {
                    // A write that opens a transaction needs no savepoint: should it fail, the
                    // transaction, which holds nothing else, is rolled back.
                    None => {
                        transaction.begin.execute([]).map_err(|e| self.db.error(e))?;
                        let before = self.wal_index.token();
                        let result = batch.apply(write).map_err(|e| e.into_error(&self.db));
                        if result.is_ok() {
                            open = Some(before);
                        } else if !conn.is_autocommit() {
                            // Unless SQLite rolled it back itself, as it may on a full disk:
                            // then a ROLLBACK fails ("no transaction is active"), and that
                            // error hid the write's own.
                            transaction.rollback.execute([]).map_err(|e| self.db.error(e))?;
                        }
                        result
                    }
                    Some(_) => self.in_savepoint(conn, transaction, || batch.apply(write))?,
                };
                results.push(result);
                next = writes.next_write();
                *taken += usize::from(next.is_some());
            }
            // No transaction open: every write failed, and nothing is left to commit.
            let Some(before) = open else {
                return Ok(Applied { results, sync: SyncTarget::Visible, own_commit: None });
            };
            // The writes other processes handed over meanwhile, each in a savepoint of its
            // own; answered once committed (refused, should the transaction fail).
            let handed = self.handoffs.gather(|write| {
                let applied = self.in_savepoint(conn, transaction, || {
                    batch.apply_handed_over(
                        write.writer,
                        self.handoffs.row_of(write.slot),
                        write.seq,
                        &write.write,
                    )
                })?;
                Ok(applied.ok())
            })?;
            // Their keys, for this process's LRU to forget now: they are logged as nobody's,
            // but this process moves its cursor past its own commit without reading it back.
            let others_keys: Vec<(CacheId, String)> =
                handed.applied().flat_map(|taken| taken.changed_keys()).collect();
            if !others_keys.is_empty() {
                // Others write: their fsync is shared outside the lock (see `durable`).
                *quiet_batches = 0;
            }
            // Expired entries reclaimed, a bounded number per transaction, once any are due.
            let batch_number = self.batches.fetch_add(1, Ordering::Relaxed);
            let look = *next_sweep_at == SWEEP_NOW || batch_number.is_multiple_of(SWEEP_LOOK_EVERY_BATCHES);
            if look && batch.now() >= *next_sweep_at {
                *next_sweep_at = self.sweep(conn, transaction, &mut batch)?;
            }
            // The change log, once every write is in.
            batch.log_changes().map_err(|e| self.rollback(conn, &mut transaction.rollback, e))?;
            let cursor = batch.last_logged();
            if batch_number % PRUNE_EVERY_BATCHES == PRUNE_EVERY_BATCHES - 1 {
                writes::prune_change_log(conn, CHANGE_LOG_RETAINED)
                    .map_err(|e| self.rollback(conn, &mut transaction.rollback, e))?;
            }
            // The WAL's frames go to the file in one write; SQLite's fsync inside COMMIT only
            // when alone (see `wal_writes`).
            let commit_writes = self.durable.fsyncs().then(|| CommitWrites::start(conn, !alone));
            let committed = transaction.commit.execute([]);
            // Gathering ends before anything else runs on the connection, a rollback included.
            let deferred = commit_writes.map(CommitWrites::finish).transpose();
            if let Err(error) = committed {
                if let Err(flush) = &deferred {
                    tracing::error!(%flush, "writing the WAL frames of a failed commit failed too");
                }
                return Err(self.rollback(conn, &mut transaction.rollback, error));
            }
            *fsync_in_commit = deferred.map_err(|e| self.db.error(e))?.is_some_and(|deferred| !deferred);
            let after = self.wal_index.token();
            drop(turn);
            // A write posted too late for this transaction: its poster takes the turn now, and
            // commits during this fsync.
            self.handoffs.wake_next_holder();
            let seen = self.durable.seen(after);
            *last_commit = Some(after);
            let only_commit = self.wal_index.one_commit_apart(before, after);
            if *fsync_in_commit && only_commit {
                // `after` is exactly our commit, fsynced with everything in the WAL before it.
                self.durable.durable_up_to(after);
            }
            let sync = SyncTarget::Commit { token: seen.token, mark: seen.ticket };
            if handed.applied().next().is_some() {
                // Durable before the posters are answered: each is woken once and finds its
                // write durable, where answered at once it was woken to wait for this fsync
                // and woken again when it ended. Should it fail, they are answered all the
                // same, and each meets the failure (shared through the board) in its own sync.
                if let Err(error) = self.sync(sync) {
                    tracing::debug!(%error, "the fsync before answering the writes handed over failed");
                }
            }
            handed.commit(seen.token, seen.ticket);
            let own_commit = only_commit.then_some(OwnCommit { before, after, cursor, others_keys });
            Ok(Applied { results, sync, own_commit })
        })
    }

    /// Hands a lone write over to the process holding the write turn, if another does (see
    /// `handoffs`), waiting for its answer until `deadline` at most: what became of it, or
    /// `None` when it is this process's to write.
    fn hand_over(&self, write: &Write, deadline: Instant) -> Option<Applied> {
        let outcome = |count| match write {
            Write::Delete { .. } => Outcome::Count(count),
            _ => Outcome::Done,
        };
        let committed = |count, sync| Applied { results: vec![Ok(outcome(count))], sync, own_commit: None };
        match self.handoffs.hand_over(write, deadline) {
            HandedOver::NotTaken => None,
            HandedOver::Committed { count, token, ticket } => {
                Some(committed(count, SyncTarget::Commit { token, mark: ticket }))
            }
            HandedOver::HolderGone { slot, seq } => {
                // Its holder committed it, or never will: the row tells.
                let row: Result<Option<(i64, i64, i64)>> = self.read(|conn| {
                    conn.prepare_cached("SELECT writer, seq, count FROM handoffs WHERE slot = ?1")?
                        .query_row([self.handoffs.row_of(slot)], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                        })
                        .optional()
                });
                let mine = |writer: i64, done: i64| writer == self.writer_id && done == seq as i64;
                self.handoffs.release(slot, matches!(row, Ok(Some((writer, done, _))) if mine(writer, done)));
                match row {
                    Ok(Some((writer, done, count))) if mine(writer, done) => {
                        Some(committed(count as u64, SyncTarget::Visible))
                    }
                    Ok(_) => None,
                    Err(error) => Some(Applied {
                        results: vec![Err(error)],
                        sync: SyncTarget::Visible,
                        own_commit: None,
                    }),
                }
            }
            HandedOver::TimedOut => Some(Applied {
                results: vec![Err(Error::Storage(format!(
                    "another process took this write to commit it with its own and did not answer in {:?}; \
                     it may or may not be stored",
                    self.db.busy_timeout
                )))],
                sync: SyncTarget::Visible,
                own_commit: None,
            }),
        }
    }

    /// Runs `apply` in a savepoint of the open transaction: should it fail, the transaction is
    /// rolled back to the savepoint, as if it had not run, and its error is the inner one. The
    /// outer error: the savepoint itself failed, and the whole transaction was rolled back.
    fn in_savepoint<T>(
        &self,
        conn: &Connection,
        transaction: &mut TransactionStatements<'_>,
        apply: impl FnOnce() -> std::result::Result<T, writes::WriteError>,
    ) -> Result<Result<T>> {
        let TransactionStatements { savepoint, rollback_to_savepoint, release_savepoint, rollback, .. } =
            transaction;
        savepoint.execute([]).map_err(|e| self.rollback(conn, rollback, e))?;
        let result = apply().map_err(|e| e.into_error(&self.db));
        if let Err(error) = &result {
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back itself, as it may on a full disk:
                // the savepoint is gone with the writes before it, and this is the batch's
                // error (rolling back to the savepoint would say only "no such savepoint").
                return Err(error.clone());
            }
            rollback_to_savepoint.execute([]).map_err(|e| self.rollback(conn, rollback, e))?;
        }
        release_savepoint.execute([]).map_err(|e| self.rollback(conn, rollback, e))?;
        Ok(result)
    }

    /// Sweeps expired entries if any are due (see [`writes::Batch::sweep`]), in a savepoint
    /// of the open transaction, and answers when to look next: at the next batch when the
    /// sweep removed all it may (more are likely due), else at the earliest expiry known, but
    /// within [`SWEEP_LOOK_EVERY_MS`] all the same. A sweep that fails is undone and logged:
    /// it is no reason to fail the batch's writes. Only a failed savepoint, which rolled the
    /// whole transaction back, is an error.
    fn sweep(
        &self,
        conn: &Connection,
        transaction: &mut TransactionStatements<'_>,
        batch: &mut writes::Batch<'_, '_>,
    ) -> Result<i64> {
        let now = batch.now();
        let look_again = now.saturating_add(SWEEP_LOOK_EVERY_MS);
        let failed = |error: Error| {
            tracing::warn!(%error, "sweeping expired entries failed");
            look_again
        };
        Ok(match earliest_expiry(conn) {
            Ok(Some(earliest)) if earliest <= now => {
                match self.in_savepoint(conn, transaction, || Ok(batch.sweep()?))? {
                    Ok(removed) if removed as i64 >= writes::SWEEP_ROWS => SWEEP_NOW,
                    Ok(_) => look_again,
                    Err(error) => failed(error),
                }
            }
            Ok(Some(earliest)) => earliest.min(look_again),
            Ok(None) => look_again,
            Err(error) => failed(self.db.error(error)),
        })
    }

    /// Rolls back after a failure that dooms the whole transaction, keeping the first error.
    fn rollback(&self, conn: &Connection, rollback: &mut Statement<'_>, error: rusqlite::Error) -> Error {
        if !conn.is_autocommit()
            && let Err(rollback) = rollback.execute([])
        {
            tracing::error!(%rollback, "rolling back a failed write transaction failed too");
        }
        self.db.error(error)
    }
}

/// The earliest expiry in the database, through the index of expiries: one probe.
fn earliest_expiry(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT min(expires_at) FROM entries INDEXED BY entries_by_expiry WHERE expires_at IS NOT NULL",
    )?
    .query_row([], |row| row.get(0))
}

fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn change_cursor(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT coalesce(max(seq), 0) FROM change_log")?.query_row([], |row| row.get(0))
}

/// The statements of a page of a cache's keys (`KEYS_PAGE`) or entries (`ENTRIES_PAGE`),
/// one for each kind of [`KeyRange`] (see [`PageStatements`]). Parameters: the cache, the
/// start, the limit, the time (for expiry) and the end.
macro_rules! page_statements {
    ($columns:literal) => {
        PageStatements {
            after: page_statements!($columns, ">", ""),
            from: page_statements!($columns, ">=", ""),
            after_to_end: page_statements!($columns, ">", " AND key < ?5"),
            from_to_end: page_statements!($columns, ">=", " AND key < ?5"),
        }
    };
    ($columns:literal, $from:literal, $to:literal) => {
        concat!(
            "SELECT ",
            $columns,
            " FROM entries WHERE cache_id = ?1 AND key ",
            $from,
            " ?2",
            $to,
            " AND (expires_at IS NULL OR expires_at > ?4) ORDER BY key LIMIT ?3"
        )
    };
}

const KEYS_PAGE: PageStatements = page_statements!("key");
const ENTRIES_PAGE: PageStatements = page_statements!("key, value");

/// Reads a page of `range` in `cache`, at most `limit` rows, with the statement of
/// `statements` (`KEYS_PAGE` or `ENTRIES_PAGE`) for it: `read` takes the rows as SQLite steps
/// to them, so a page that stops early reads no further.
fn read_page<T>(
    conn: &Connection,
    statements: &PageStatements,
    cache: CacheId,
    range: &KeyRange<'_>,
    limit: usize,
    now: i64,
    read: impl FnOnce(rusqlite::Rows<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let (start, inclusive) = range.start();
    let end = range.end();
    let mut statement = conn.prepare_cached(statements.of(inclusive, end.is_some()))?;
    let limit = limit as i64;
    let mut parameters: Vec<&dyn rusqlite::ToSql> = vec![&cache.0, &start, &limit, &now];
    if let Some(end) = &end {
        parameters.push(end);
    }
    read(statement.query(&*parameters)?)
}

/// Column `index` of `row` as JSON, copied once out of SQLite's buffer (through a `String` it
/// would be copied twice). Only checked JSON is ever stored, so it is not checked again (see
/// [`stored_json`]).
fn json_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Json> {
    let text = row.get_ref(index)?.as_str().map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(error))
    })?;
    stored_json(text)
}

/// A value read back from the database. Only checked JSON is ever stored, so it is not parsed
/// again; but a page of the file zeroed under SQLite (a torn write, a damaged disk, `dd`) reads
/// back as text with NUL bytes in it, which no JSON document holds: that is reported as
/// corruption (`SQLITE_CORRUPT`) instead of being handed out as a value. (Text that is not
/// UTF-8 fails before this, when it is read as a string.)
pub(super) fn stored_json<T: AsRef<str> + Into<std::sync::Arc<str>>>(text: T) -> rusqlite::Result<Json> {
    if text.as_ref().as_bytes().contains(&0) {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some("a stored value holds NUL bytes, which no JSON document does".into()),
        ));
    }
    Ok(Json::trusted(text))
}

/// A row of `value, expires_at` as [`Stored`].
fn stored_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored { value: json_column(row, 0)?, expires_at: row.get(1)? })
}

/// Runs `read` in one read transaction, so its statements see one snapshot.
fn snapshot<T>(conn: &Connection, read: impl FnOnce() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    run(conn, "BEGIN DEFERRED")?;
    let result = read();
    run(conn, "COMMIT")?;
    result
}

impl Store for SqliteStore {
    fn sync(&self, target: SyncTarget) -> Result<()> {
        match target {
            SyncTarget::Commit { token, mark } => {
                self.durable.ensure_seen(durable::Seen { token, ticket: mark }, &self.wal_index)
            }
            SyncTarget::Visible => self.durable.ensure(&self.wal_index),
        }
        .map_err(|e| self.db.error(e))
    }

    fn apply(&self, writes: &mut dyn Writes) -> Applied {
        let mut writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut taken = 0;
        self.transaction(&mut writer, writes, &mut taken).unwrap_or_else(|error| {
            // The whole batch fails: the writes not taken yet with it, so that none waits.
            while writes.next_write().is_some() {
                taken += 1;
            }
            Applied { results: vec![Err(error); taken], sync: SyncTarget::Visible, own_commit: None }
        })
    }

    /// The row of the key, left out when it has expired: the expiry is checked on the row
    /// just read, rather than in the SQL, so that a row without one (the common case) costs
    /// no clock reading and no parameter more than before entries could expire.
    fn get(&self, cache: CacheId, key: &str) -> Result<Option<Stored>> {
        let stored = self.read_prepared(|_, statements| {
            statements.value.query_row(params![cache.0, key], stored_row).optional()
        })?;
        Ok(stored.filter(|stored| !self.clock.expired(stored.expires_at)))
    }

    fn get_many(&self, cache: CacheId, keys: &[&str], max_bytes: usize) -> Result<Vec<Option<Stored>>> {
        let mut bytes = 0;
        let values = self.read_prepared(|conn, statements| {
            snapshot(conn, || {
                let mut values = Vec::with_capacity(keys.len());
                for key in keys {
                    let value = statements
                        .value
                        .query_row(params![cache.0, key], stored_row)
                        .optional()?
                        .filter(|stored| !self.clock.expired(stored.expires_at));
                    bytes += value.as_ref().map_or(0, |stored| stored.value.len());
                    if bytes > max_bytes {
                        break;
                    }
                    values.push(value);
                }
                Ok(values)
            })
        })?;
        if bytes > max_bytes {
            return Err(super::too_many_bytes(bytes, max_bytes));
        }
        Ok(values)
    }

    fn contains(&self, cache: CacheId, key: &str) -> Result<bool> {
        let found: Option<Option<i64>> = self.read_prepared(|_, statements| {
            statements.exists.query_row(params![cache.0, key], |row| row.get(0)).optional()
        })?;
        Ok(found.is_some_and(|expires_at| !self.clock.expired(expires_at)))
    }

    fn entries(
        &self,
        cache: CacheId,
        range: KeyRange<'_>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page<(String, Json)>> {
        let now = self.clock.now_ms();
        self.read(|conn| {
            // One more row than asked tells whether another page follows.
            read_page(conn, &ENTRIES_PAGE, cache, &range, limit + 1, now, |rows| {
                let entries = rows.mapped(|row| Ok((row.get(0)?, stored_json(row.get::<_, String>(1)?)?)));
                super::entry_page(entries, limit, max_bytes)
            })
        })
    }

    fn keys(&self, cache: CacheId, range: KeyRange<'_>, limit: usize) -> Result<Page<String>> {
        let now = self.clock.now_ms();
        self.read(|conn| {
            let keys = read_page(conn, &KEYS_PAGE, cache, &range, limit + 1, now, |rows| {
                rows.mapped(|row| row.get(0)).collect()
            })?;
            Ok(super::key_page(keys, limit))
        })
    }

    /// The counts on the cache's row, less its entries that have expired but are not swept
    /// yet, counted through the index of its expiries: `len` stays a read (of as many rows as
    /// wait to be swept), where sweeping first would make it a write, which a read-only handle
    /// or a process that never writes could not make.
    fn cache_stats(&self, cache: CacheId) -> Result<Option<Stats>> {
        let now = self.clock.now_ms();
        self.read(|conn| {
            let Some(stats) = CACHES.stats(conn, cache.0)? else {
                return Ok(None);
            };
            let (entries, bytes): (i64, i64) = conn
                .prepare_cached(writes::EXPIRED_IN_CACHE)?
                .query_row(params![cache.0, now], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(Some(Stats {
                entries: stats.entries.saturating_sub(entries.max(0) as u64),
                bytes: stats.bytes.saturating_sub(bytes.max(0) as u64),
            }))
        })
    }

    fn find_cache(&self, name: &str) -> Result<Option<CacheId>> {
        Ok(self.read(|conn| CACHES.find(conn, name))?.map(CacheId))
    }

    /// Each cache's counts less its entries that have expired, as [`Store::cache_stats`].
    fn list_caches(&self) -> Result<Vec<Listed>> {
        let now = self.clock.now_ms();
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT id, name, max(entry_count - coalesce(expired.entries, 0), 0),
                        max(byte_count - coalesce(expired.bytes, 0), 0)
                 FROM caches LEFT JOIN (
                     SELECT cache_id, count(*) AS entries,
                            sum(octet_length(key) + octet_length(value)) AS bytes
                     FROM entries INDEXED BY entries_by_expiry WHERE expires_at <= ?1 GROUP BY cache_id
                 ) AS expired ON expired.cache_id = caches.id
                 ORDER BY name",
            )?;
            let rows = statement.query_map([now], tables::listed)?;
            rows.collect()
        })
    }

    fn peek(&self, queue: &Target<QueueId>) -> Result<Option<Json>> {
        let found: Option<Option<Json>> = self.read(|conn| {
            conn.prepare_cached(
                "SELECT (SELECT value FROM queue_items
                         WHERE queue_id = q.id AND (lease_ends IS NULL OR lease_ends <= ?2) ORDER BY id LIMIT 1)
                 FROM queues q WHERE q.id = ?1",
            )?
            .query_row([queue.id.0, self.clock.now_ms()], |row| row.get::<_, Option<String>>(0)?.map(stored_json).transpose())
            .optional()
        })?;
        found.ok_or_else(|| Error::QueueDeleted(queue.name.to_string()))
    }

    fn queue_items(
        &self,
        queue: &Target<QueueId>,
        after: Option<i64>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page<Json, i64>> {
        // Items are in the order of their ids (`take` and `peek` order them so; `give_back`
        // puts items below the smallest id): the id of the last item of a page is the cursor.
        let page = self.read(|conn| {
            snapshot(conn, || {
                if QUEUES.stats(conn, queue.id.0)?.is_none() {
                    return Ok(None);
                }
                let sql = if after.is_some() {
                    "SELECT id, value FROM queue_items WHERE queue_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                } else {
                    "SELECT id, value FROM queue_items WHERE queue_id = ?1 AND id >= ?2 ORDER BY id LIMIT ?3"
                };
                let mut statement = conn.prepare_cached(sql)?;
                // One more row than asked tells whether another page follows.
                let mut rows =
                    statement.query(params![queue.id.0, after.unwrap_or(i64::MIN), (limit + 1) as i64])?;
                let mut items = Vec::new();
                let mut last = None;
                let mut bytes = 0;
                while let Some(row) = rows.next()? {
                    if items.len() == limit || bytes >= max_bytes {
                        return Ok(Some(Page { items, next: last }));
                    }
                    let id: i64 = row.get(0)?;
                    let value = json_column(row, 1)?;
                    bytes += value.len();
                    items.push(value);
                    last = Some(id);
                }
                Ok(Some(Page { items, next: None }))
            })
        })?;
        page.ok_or_else(|| Error::QueueDeleted(queue.name.to_string()))
    }

    fn queue_stats(&self, queue: QueueId) -> Result<Option<Stats>> {
        self.read(|conn| QUEUES.stats(conn, queue.0))
    }

    fn find_queue(&self, name: &str) -> Result<Option<QueueId>> {
        Ok(self.read(|conn| QUEUES.find(conn, name))?.map(QueueId))
    }

    fn list_queues(&self) -> Result<Vec<Listed>> {
        self.read(|conn| QUEUES.list(conn))
    }

    fn change_token(&self) -> ChangeToken {
        self.wal_index.token()
    }

    fn change_cursor(&self) -> Result<i64> {
        self.read_then(|conn, _| change_cursor(conn), |_| false)
    }

    fn handoff_stats(&self) -> HandoffStats {
        self.handoffs.stats()
    }

    fn disk_usage(&self) -> Result<Option<DiskUsage>> {
        let pages = |conn: &Connection, pragma: &str| -> rusqlite::Result<u64> {
            conn.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get(0))
        };
        let (page_count, free_pages, page_size) = self.read(|conn| {
            Ok((pages(conn, "page_count")?, pages(conn, "freelist_count")?, pages(conn, "page_size")?))
        })?;
        Ok(Some(DiskUsage { file_bytes: page_count * page_size, free_bytes: free_pages * page_size }))
    }

    fn backup(&self, dest: &Path) -> Result<Copied> {
        let partial = backup::Partial::beside(dest)?;
        let written = self.read_then(
            |conn, _| {
                // The read connections are query-only, which refuses `VACUUM INTO` too.
                run(conn, "PRAGMA query_only = OFF")?;
                let copied = partial.copy_from(conn, &self.db);
                run(conn, "PRAGMA query_only = ON")?;
                Ok(copied)
            },
            // Holding nothing that is not durable here: the barrier every read passes.
            |_| true,
        )?;
        written?;
        let copied = partial.check(&self.db.path, false)?;
        partial.publish()?;
        Ok(copied)
    }

    fn changes_since(&self, cursor: i64) -> Result<Changes> {
        // Changed keys and cleared caches only make the caller forget what it cached, which
        // shows nothing of a commit; a deleted cache is answered "no such cache" from then on,
        // so that one waits for durability like any read.
        let reveals = |changes: &Changes| match changes {
            Changes::Since { changes, .. } => {
                changes.iter().any(|change| matches!(change, Change::Dropped(_)))
            }
            Changes::Overflow { .. } => false,
        };
        self.read_then(
            |conn, _| {
                snapshot(conn, || {
                    let (oldest, newest): (Option<i64>, Option<i64>) = conn
                        .prepare_cached(writes::CHANGE_LOG_SPAN)?
                        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                    let newest = newest.unwrap_or(0).max(cursor);
                    if oldest.is_some_and(|oldest| oldest > cursor + 1) {
                        return Ok(Changes::Overflow { cursor: newest });
                    }
                    let mut statement = conn.prepare_cached(
                    "SELECT cache_id, kind, key FROM change_log WHERE seq > ?1 AND writer <> ?2 ORDER BY seq",
                )?;
                    let mut changes = Vec::new();
                    let mut rows = statement.query(params![cursor, self.writer_id])?;
                    while let Some(row) = rows.next()? {
                        let cache = CacheId(row.get(0)?);
                        match row.get::<_, i64>(1)? {
                            writes::KIND_CLEARED => changes.push(Change::Cleared(cache)),
                            writes::KIND_DROPPED => changes.push(Change::Dropped(cache)),
                            writes::KIND_KEYS => {
                                let list: Option<String> = row.get(2)?;
                                match list.and_then(|list| serde_json::from_str::<Vec<String>>(&list).ok()) {
                                    Some(keys) => {
                                        changes.extend(keys.into_iter().map(|key| Change::Key(cache, key)))
                                    }
                                    // Not what this build writes: forgetting the whole cache
                                    // is never wrong.
                                    None => changes.push(Change::Cleared(cache)),
                                }
                            }
                            _ => changes.push(Change::Key(cache, row.get(2)?)),
                        }
                    }
                    Ok(Changes::Since { changes, cursor: newest })
                })
            },
            reveals,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::board::test_processes::{OtherProcess, gone_mark};
    #[cfg(target_os = "linux")]
    use super::handoffs::Taken;
    use super::*;
    use crate::Quota;
    use crate::store::Write;

    fn open(path: &Path) -> SqliteStore {
        SqliteStore::open(path, Durability::Full, Duration::from_secs(5)).unwrap()
    }

    /// The result of `write`, applied alone.
    fn apply_one(store: &SqliteStore, write: &Write) -> Result<super::super::Outcome> {
        store.apply(&mut std::slice::from_ref(write).iter()).results.remove(0)
    }

    /// The identity of the cache or queue `write` creates.
    fn created(store: &SqliteStore, write: Write) -> i64 {
        match apply_one(store, &write) {
            Ok(super::super::Outcome::Created { id, .. }) => id,
            other => panic!("{write:?}: {other:?}"),
        }
    }

    fn create(store: &SqliteStore) -> CacheId {
        CacheId(created(store, Write::CreateCache { name: "c".into(), quota: Quota::UNLIMITED }))
    }

    /// A store on a database of its own, with the cache "c" made in it.
    struct WithCache {
        path: std::path::PathBuf,
        store: SqliteStore,
        cache: CacheId,
        /// Removed when the test ends.
        _dir: tempfile::TempDir,
    }

    fn with_cache() -> WithCache {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = open(&path);
        let cache = create(&store);
        WithCache { path, store, cache, _dir: dir }
    }

    fn set(store: &SqliteStore, cache: CacheId, key: &str) {
        let target = Target { id: cache, name: "c".into() };
        let write = Write::Set {
            cache: target,
            entries: vec![(key.to_owned(), Json::parse("1").unwrap())],
            expires_at: None,
            quota: Quota::UNLIMITED,
        };
        apply_one(store, &write).unwrap();
        store.sync(SyncTarget::Visible).unwrap();
    }

    /// Commits `change` through `raw` as the holder that took `taken` from `store`'s process
    /// would have, with the `handoffs` row that says so.
    #[cfg(target_os = "linux")]
    fn commit_as_the_holder(raw: &Connection, store: &SqliteStore, taken: &Taken, change: &str) {
        let row = store.handoffs.row_of(taken.slot);
        let (writer, seq) = (store.writer_id, taken.seq);
        raw.execute_batch(&format!(
            "BEGIN IMMEDIATE; {change}
             REPLACE INTO handoffs (slot, writer, seq, count) VALUES ({row}, {writer}, {seq}, 0);
             COMMIT;"
        ))
        .unwrap();
    }

    /// A batch of one write, as a process writing alone makes it.
    struct Lone<'w>(Option<&'w Write>);

    impl Writes for Lone<'_> {
        fn next_write(&mut self) -> Option<&Write> {
            self.0.take()
        }

        fn is_lone(&self) -> bool {
            true
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_write_stuck_behind_a_stopped_holder_fails_within_one_busy_timeout() {
        let WithCache { path, _dir, .. } = with_cache();
        let timeout = Duration::from_millis(500);
        let store = SqliteStore::open(&path, Durability::Full, timeout).unwrap();
        let cache = store.find_cache("c").unwrap().unwrap();
        // A holder stopped in a debugger: it holds the write turn and SQLite's lock, and takes
        // no write handed over to it.
        let other = OtherProcess::start(&path);
        store.handoffs.board().counters().writer.store(other.mark(), Ordering::SeqCst);
        let raw = Connection::open(&path).unwrap();
        raw.execute_batch("BEGIN IMMEDIATE").unwrap();
        let write = Write::Set {
            cache: Target { id: cache, name: "c".into() },
            entries: vec![("k".into(), Json::parse("1").unwrap())],
            expires_at: None,
            quota: Quota::UNLIMITED,
        };
        let started = Instant::now();
        let result = store.apply(&mut Lone(Some(&write))).results.remove(0);
        let waited = started.elapsed();
        assert!(matches!(result, Err(Error::Busy { .. })), "{result:?}");
        // Posted, then the turn, then SQLite's lock: one timeout for the three, not one each.
        assert!(waited >= timeout && waited < timeout * 2, "waited {waited:?}");
        raw.execute_batch("ROLLBACK").unwrap();
        assert!(apply_one(&store, &write).is_ok(), "once the lock is free, the write goes through");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_holder_on_another_board_of_the_database_leaves_alone_the_row_a_poster_reads() {
        let WithCache { path, store, cache, _dir } = with_cache();
        let qid = created(&store, Write::CreateQueue { name: "q".into(), quota: Quota::UNLIMITED });
        let queue = Target { id: QueueId(qid), name: "q".into() };
        let put = |v: &str| Write::Put {
            queue: queue.clone(),
            values: vec![Json::parse(v).unwrap()],
            quota: Quota::UNLIMITED,
        };
        let mine = put(r#""poster""#);
        let other = OtherProcess::start(&path);
        let gone = gone_mark(&path);
        let board = store.handoffs.board().clone();
        let holder = Handoffs::new(board.clone(), 0);
        // Another board of the same database: the board file deleted and made anew while this
        // process has the old one mapped (or an older build's board).
        let mut board_file = path.as_os_str().to_owned();
        board_file.push("-board");
        std::fs::remove_file(&board_file).unwrap();
        let elsewhere = open(&path);
        assert!(elsewhere.handoffs.board().is_shared());
        let elsewhere_poster = OtherProcess::start(&path);
        let raw = Connection::open(&path).unwrap();
        board.counters().writer.store(other.mark(), Ordering::SeqCst);
        let answer = std::thread::scope(|scope| {
            let posted = scope.spawn(|| store.apply(&mut Lone(Some(&mine))));
            let taken = holder.take_once_posted();
            // The holder commits the put, with the row that says so, and dies before answering.
            let change = format!(
                "INSERT INTO queue_items (queue_id, value) VALUES ({qid}, '\"poster\"');
                 UPDATE queues SET item_count = item_count + 1, byte_count = byte_count + 8 WHERE id = {qid};"
            );
            commit_as_the_holder(&raw, &store, &taken[0], &change);
            // Meanwhile a holder on the other board commits a write handed over through its own
            // slot of the same number.
            let theirs = Handoffs::new(elsewhere.handoffs.board().clone(), 0);
            let their_slot = theirs.post_as(&put(r#""other board""#), elsewhere_poster.mark(), 4242, 1);
            assert_eq!(their_slot, taken[0].slot);
            apply_one(&elsewhere, &set_write(cache, &["x"], Quota::UNLIMITED)).unwrap();
            assert_eq!(theirs.answer_in(their_slot), Some(Some(0)));
            board.counters().writer.store(0, Ordering::SeqCst);
            holder.taken_by(taken[0].slot, gone);
            posted.join().unwrap()
        });
        store.sync(answer.sync).unwrap();
        assert!(answer.results[0].is_ok(), "{:?}", answer.results);
        let copies: i64 = raw
            .query_row("SELECT count(*) FROM queue_items WHERE value = '\"poster\"'", [], |row| row.get(0))
            .unwrap();
        assert_eq!(copies, 1, "the poster read the other board's row as its holder's, and put it again");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_write_whose_holder_died_is_trusted_committed_when_its_row_says_so_and_written_again_when_not() {
        let WithCache { path, store, cache, _dir } = with_cache();
        set(&store, cache, "k");
        let value = |text: &str| Json::parse(text).unwrap();
        let write = Write::Set {
            cache: Target { id: cache, name: "c".into() },
            entries: vec![("k".into(), value(r#""poster""#))],
            expires_at: None,
            quota: Quota::UNLIMITED,
        };
        let other = OtherProcess::start(&path);
        let gone = gone_mark(&path);
        let board = store.handoffs.board().clone();
        let holder = Handoffs::new(board.clone(), 0);
        let raw = Connection::open(&path).unwrap();
        for committed in [true, false] {
            // Another process holds the turn: the write is posted.
            board.counters().writer.store(other.mark(), Ordering::SeqCst);
            let answer = std::thread::scope(|scope| {
                let posted = scope.spawn(|| store.apply(&mut Lone(Some(&write))));
                let taken = holder.take_once_posted();
                if committed {
                    // What the holder committed before it died, with the row that says so.
                    let change = "UPDATE entries SET value = '\"holder\"' WHERE key = 'k';";
                    commit_as_the_holder(&raw, &store, &taken[0], change);
                }
                board.counters().writer.store(0, Ordering::SeqCst);
                holder.taken_by(taken[0].slot, gone);
                posted.join().unwrap()
            });
            store.sync(answer.sync).unwrap();
            assert!(answer.results[0].is_ok(), "{:?}", answer.results);
            let stored = store.get(cache, "k").unwrap();
            let expected = if committed { r#""holder""# } else { r#""poster""# };
            assert_eq!(
                stored.map(|stored| stored.value),
                Some(value(expected)),
                "committed by the holder: {committed}"
            );
        }
        assert_eq!(store.handoff_stats().handed_over, 1, "the one its holder committed");
    }

    /// A process killed while its write waited in a slot (posted after the holder had gathered,
    /// woken when the turn came free, but dead) never had that write acknowledged. The next
    /// holder must not commit it: it would land after the death of its writer, over writes
    /// that others made and had acknowledged since (here, the holder's own, in the same
    /// transaction, then at once overwritten by the dead process's older value).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_write_posted_by_a_process_that_died_is_never_committed_by_a_later_holder() {
        let WithCache { path, store, cache, _dir } = with_cache();
        let value = |text: &str| Json::parse(text).unwrap();
        let set = |text: &str| Write::Set {
            cache: Target { id: cache, name: "c".into() },
            entries: vec![("k".into(), value(text))],
            expires_at: None,
            quota: Quota::UNLIMITED,
        };
        let dead_poster = open(&path);
        let gone = gone_mark(&path);
        let handoffs = Handoffs::new(store.handoffs.board().clone(), 0);
        let zombie = handoffs.post_as(&set(r#""from the dead""#), gone, dead_poster.writer_id, 1);
        // Long after, the write turn free, this process sets the key: acknowledged.
        assert!(apply_one(&store, &set(r#""acknowledged""#)).is_ok());
        store.sync(SyncTarget::Visible).unwrap();
        assert_eq!(
            store.get(cache, "k").unwrap().map(|stored| stored.value),
            Some(value(r#""acknowledged""#))
        );
        assert_eq!(handoffs.answer_in(zombie), None, "nobody is answered for the dead");
        assert!(handoffs.is_free(zombie), "its slot is free again");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn writes_handed_over_are_committed_with_the_holders_logged_as_nobodys_and_answered() {
        let WithCache { path, store, cache, _dir } = with_cache();
        // The poster: another store of the database, as another process has.
        let poster_store = open(&path);
        let cursor = poster_store.change_cursor().unwrap();
        let writer = poster_store.writer_id;
        let other = OtherProcess::start(&path);
        let poster = other.mark();
        let handoffs = Handoffs::new(store.handoffs.board().clone(), 0);
        let posted = handoffs.post_as(&set_write(cache, &["theirs"], Quota::UNLIMITED), poster, writer, 5);
        let refused = handoffs.post_as(
            &set_write(cache, &["over"], Quota { max_entries: Some(1), ..Quota::UNLIMITED }),
            poster,
            writer,
            6,
        );

        let applied =
            store.apply(&mut std::slice::from_ref(&set_write(cache, &["mine"], Quota::UNLIMITED)).iter());
        assert!(applied.results[0].is_ok());
        let others_keys = applied.own_commit.map(|own| own.others_keys);
        assert_eq!(others_keys, Some(vec![(cache, "theirs".to_owned())]), "for its LRU to forget");
        store.sync(applied.sync).unwrap();
        assert_eq!(handoffs.answer_in(posted), Some(Some(0)), "answered as committed");
        assert_eq!(
            handoffs.answer_in(refused),
            Some(None),
            "over its quota: refused, for its poster to write"
        );
        assert!(store.get(cache, "theirs").unwrap().is_some());
        assert!(store.get(cache, "over").unwrap().is_none(), "a refused write leaves no trace");
        assert_eq!(store.handoff_stats().committed_for_others, 1);
        let raw = Connection::open(&path).unwrap();
        let logged_as: i64 = raw
            .query_row("SELECT writer FROM change_log WHERE key = 'theirs'", [], |row| row.get(0))
            .unwrap();
        assert_eq!(logged_as, writes::NOBODY);
        // So the poster's LRU forgets the key too: a poster that gave up waiting for the answer
        // may have read the key since, and must not go on serving what it read.
        let Changes::Since { changes, .. } = poster_store.changes_since(cursor).unwrap() else {
            panic!("the change log overflowed")
        };
        assert!(changes.contains(&Change::Key(cache, "theirs".into())), "{changes:?}");
        let row: (i64, i64, i64) = raw
            .query_row("SELECT slot, writer, seq FROM handoffs", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .unwrap();
        assert_eq!(
            row,
            (store.handoffs.row_of(posted), writer, 5),
            "recorded against its slot, for a poster whose holder died"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn writes_handed_over_are_durable_before_their_posters_are_answered() {
        let WithCache { path, store, cache, _dir } = with_cache();
        let poster_store = open(&path);
        // Another process committed since this one last did: this one's fsync runs after COMMIT.
        set(&poster_store, cache, "before");
        let other = OtherProcess::start(&path);
        let handoffs = Handoffs::new(store.handoffs.board().clone(), 0);
        let theirs = set_write(cache, &["theirs"], Quota::UNLIMITED);
        let posted = handoffs.post_as(&theirs, other.mark(), poster_store.writer_id, 1);
        let fsyncs = store.durable.syncs();
        let applied =
            store.apply(&mut std::slice::from_ref(&set_write(cache, &["mine"], Quota::UNLIMITED)).iter());
        assert!(applied.results[0].is_ok());
        assert_eq!(handoffs.answer_in(posted), Some(Some(0)), "answered as committed");
        assert_eq!(store.durable.syncs(), fsyncs + 1, "the commit was fsynced before the answer");
        store.sync(applied.sync).unwrap();
        assert_eq!(store.durable.syncs(), fsyncs + 1, "the holder's own write needs no fsync more");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn queue_puts_handed_over_are_appended_once_in_order_and_one_over_its_quota_is_refused() {
        let WithCache { path, store, cache, _dir } = with_cache();
        let id = created(&store, Write::CreateQueue { name: "jobs".into(), quota: Quota::UNLIMITED });
        let queue = Target { id: QueueId(id), name: "jobs".into() };
        let put = |value: &str, quota: Quota| Write::Put {
            queue: queue.clone(),
            values: vec![Json::parse(value).unwrap()],
            quota,
        };
        let other = OtherProcess::start(&path);
        let handoffs = Handoffs::new(store.handoffs.board().clone(), 0);
        let first = handoffs.post_as(&put(r#""first""#, Quota::UNLIMITED), other.mark(), 77, 1);
        let second = handoffs.post_as(&put(r#""second""#, Quota::UNLIMITED), other.mark(), 78, 1);
        let full = Quota { max_entries: Some(2), ..Quota::UNLIMITED };
        let refused = handoffs.post_as(&put(r#""third""#, full), other.mark(), 79, 1);

        let applied =
            store.apply(&mut std::slice::from_ref(&set_write(cache, &["mine"], Quota::UNLIMITED)).iter());
        assert!(applied.results[0].is_ok());
        store.sync(applied.sync).unwrap();
        assert_eq!(handoffs.answer_in(first), Some(Some(0)), "answered as committed");
        assert_eq!(handoffs.answer_in(second), Some(Some(0)), "answered as committed");
        assert_eq!(handoffs.answer_in(refused), Some(None), "over its quota: refused, for its poster to put");
        assert_eq!(
            store.queue_stats(queue.id).unwrap().map(|stats| stats.entries),
            Some(2),
            "each appended once"
        );
        let take = Write::Take { queue: queue.clone(), max: 10 };
        let taken = store.apply(&mut std::slice::from_ref(&take).iter()).results.remove(0);
        let values = vec![Json::parse(r#""first""#).unwrap(), Json::parse(r#""second""#).unwrap()];
        assert_eq!(taken.unwrap(), super::super::Outcome::Values(values), "in the order they were posted");
        assert_eq!(store.handoff_stats().committed_for_others, 2);
    }

    #[test]
    fn the_wal_is_copied_into_the_database_by_the_commit_that_takes_it_past_its_mark() {
        let WithCache { path, store, cache, _dir } = with_cache();
        let file_bytes = || std::fs::metadata(&path).unwrap().len();
        // Entries of a page each, `count` of them in one commit.
        let value = Json::parse(format!("\"{}\"", "v".repeat(1500))).unwrap();
        let set_pages = |from: u32, count: u32| {
            let entries = (from..from + count).map(|i| (format!("k{i}"), value.clone())).collect();
            let write = Write::Set {
                cache: Target { id: cache, name: "c".into() },
                entries,
                expires_at: None,
                quota: Quota::UNLIMITED,
            };
            apply_one(&store, &write).unwrap();
        };
        let mark = crate::options::DEFAULT_CHECKPOINT_PAGES;
        let before = file_bytes();
        set_pages(0, mark / 2);
        assert_eq!(file_bytes(), before, "below the mark (past SQLite's default), nothing is copied yet");
        set_pages(mark / 2, mark / 2 + 100);
        let copied = file_bytes() - before;
        assert!(copied > 1500 * u64::from(mark), "past the mark, copied only {copied} bytes");

        // A mark set lower holds from the next commit.
        store.set_checkpoint_pages(100).unwrap();
        let before = file_bytes();
        set_pages(2 * mark, 200);
        assert!(file_bytes() > before + 1500 * 150, "past the lower mark, copied");
    }

    #[test]
    fn a_wal_grown_past_its_mark_by_one_large_commit_is_cut_back_when_it_starts_over() {
        let WithCache { path, store, cache, _dir } = with_cache();
        let wal_bytes = || std::fs::metadata(path.with_extension("db-wal")).map(|m| m.len()).unwrap_or(0);
        let pages = 100;
        store.set_checkpoint_pages(pages).unwrap();
        let value = Json::parse(format!("\"{}\"", "v".repeat(1500))).unwrap();
        let set = |prefix: &str, count: u32| {
            let entries = (0..count).map(|i| (format!("{prefix}{i}"), value.clone())).collect();
            let write = Write::Set {
                cache: Target { id: cache, name: "c".into() },
                entries,
                expires_at: None,
                quota: Quota::UNLIMITED,
            };
            apply_one(&store, &write).unwrap();
        };
        set("large", 20 * pages); // one commit of 20 times the mark
        let kept = connection::wal_bytes_kept(pages);
        assert!(wal_bytes() > 5 * kept, "the large commit grew the WAL to {} bytes", wal_bytes());
        set("small", 1); // starts the checkpointed WAL over
        assert!(wal_bytes() <= kept, "the WAL kept {} bytes, over {kept}", wal_bytes());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_holder_keeps_its_own_writes_cached_and_forgets_those_it_committed_for_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let manager = crate::CacheManager::open(&path).unwrap();
        let cache = manager.create_cache("c").unwrap();
        cache.set("theirs", Json::parse("0").unwrap()).unwrap();
        assert_eq!(cache.cached_len(), 1);
        let store = open(&path);
        let id = store.find_cache("c").unwrap().unwrap();
        let other = OtherProcess::start(&path);
        let handoffs = Handoffs::new(store.handoffs.board().clone(), 0);
        handoffs.post_as(&set_write(id, &["theirs"], Quota::UNLIMITED), other.mark(), 77, 1);

        cache.set("mine", Json::parse("2").unwrap()).unwrap();
        assert_eq!(manager.write_stats().committed_for_others, 1, "the write posted went with ours");
        assert_eq!(cache.cached_len(), 1, "ours cached, the other's forgotten");
        assert_eq!(cache.get("theirs").unwrap(), Some(Json::parse("1").unwrap()), "as the other wrote it");
        assert_eq!(cache.get("mine").unwrap(), Some(Json::parse("2").unwrap()));
    }

    fn set_write(cache: CacheId, entries: &[&str], quota: Quota) -> Write {
        Write::Set {
            cache: Target { id: cache, name: "c".into() },
            entries: entries.iter().map(|key| ((*key).to_owned(), Json::parse("1").unwrap())).collect(),
            expires_at: None,
            quota,
        }
    }

    #[test]
    fn a_failed_write_leaves_the_rest_of_its_batch_in_place_first_or_not() {
        let WithCache { store, cache, _dir, .. } = with_cache();
        let at_most_two = Quota { max_entries: Some(2), ..Quota::UNLIMITED };
        let batch = [
            // The first write runs without a savepoint: its failure rolls back its transaction.
            set_write(CacheId(999), &["nowhere"], Quota::UNLIMITED),
            set_write(cache, &["a"], Quota::UNLIMITED),
            // Fails after inserting both keys, at the quota check: both must go.
            set_write(cache, &["b", "c"], at_most_two.clone()),
            set_write(cache, &["d"], Quota::UNLIMITED),
        ];
        let applied = store.apply(&mut batch.iter());
        let failed: Vec<bool> = applied.results.iter().map(|result| result.is_err()).collect();
        assert_eq!(failed, [true, false, true, false]);
        store.sync(applied.sync).unwrap();
        for (key, stored) in [("a", true), ("b", false), ("c", false), ("d", true)] {
            assert_eq!(store.get(cache, key).unwrap().is_some(), stored, "key {key}");
        }
        assert_eq!(store.cache_stats(cache).unwrap().unwrap().entries, 2);

        // Every write failing: nothing is committed, and each has its own error.
        let batch = [
            set_write(cache, &["e"], at_most_two.clone()),
            set_write(CacheId(999), &["f"], Quota::UNLIMITED),
        ];
        let applied = store.apply(&mut batch.iter());
        assert!(matches!(applied.results[0], Err(Error::QuotaExceeded(_))), "{:?}", applied.results[0]);
        assert!(matches!(applied.results[1], Err(Error::CacheDeleted(_))), "{:?}", applied.results[1]);
        assert_eq!(store.cache_stats(cache).unwrap().unwrap().entries, 2);
    }

    #[test]
    fn a_batch_logs_the_keys_of_each_cache_in_one_row_and_no_key_of_a_failed_write() {
        let WithCache { path, store, cache, _dir } = with_cache();
        let other_cache =
            CacheId(created(&store, Write::CreateCache { name: "c2".into(), quota: Quota::UNLIMITED }));
        let reader = open(&path);
        let cursor = reader.change_cursor().unwrap();
        let at_most_three = Quota { max_entries: Some(3), ..Quota::UNLIMITED };
        let batch = [
            set_write(cache, &["a"], Quota::UNLIMITED),
            set_write(other_cache, &["x"], Quota::UNLIMITED),
            // Over the quota once both are in: rolled back, and neither key logged.
            set_write(cache, &["b", "c", "z"], at_most_three),
            set_write(cache, &["d", "a"], Quota::UNLIMITED),
        ];
        let applied = store.apply(&mut batch.iter());
        let failed: Vec<bool> = applied.results.iter().map(|result| result.is_err()).collect();
        assert_eq!(failed, [false, false, true, false]);
        store.sync(applied.sync).unwrap();

        let raw = Connection::open(&path).unwrap();
        let mut rows: Vec<(i64, i64, String)> = raw
            .prepare("SELECT cache_id, kind, key FROM change_log WHERE seq > ?1 ORDER BY cache_id")
            .unwrap()
            .query_map([cursor], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        rows.sort();
        assert_eq!(
            rows,
            [
                (cache.0, writes::KIND_KEYS, r#"["a","d"]"#.to_owned()),
                (other_cache.0, writes::KIND_KEY, "x".to_owned())
            ]
        );
        let seqs: Vec<i64> = raw
            .prepare("SELECT seq FROM change_log WHERE seq > ?1 ORDER BY seq")
            .unwrap()
            .query_map([cursor], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(seqs, [cursor + 2, cursor + 3], "seq counts the two keys of the first row");
        let Changes::Since { mut changes, .. } = reader.changes_since(cursor).unwrap() else {
            panic!("the change log overflowed")
        };
        changes.sort_by_key(|change| format!("{change:?}"));
        assert_eq!(
            changes,
            [
                Change::Key(cache, "a".into()),
                Change::Key(cache, "d".into()),
                Change::Key(other_cache, "x".into())
            ]
        );
        // A row of keys this build cannot read, not a list or none at all, makes a reader
        // forget the whole cache.
        for (unreadable, keys) in [(cache, Some("not a list")), (other_cache, None)] {
            raw.execute(
                "INSERT INTO change_log (writer, cache_id, kind, key) VALUES (?1, ?2, ?3, ?4)",
                params![writes::NOBODY, unreadable.0, writes::KIND_KEYS, keys],
            )
            .unwrap();
            let after = reader.changes_since(cursor).unwrap();
            assert!(
                matches!(&after, Changes::Since { changes, .. } if changes.last() == Some(&Change::Cleared(unreadable))),
                "{keys:?}: {after:?}"
            );
        }
    }

    #[test]
    fn a_reader_falls_behind_the_log_only_once_a_change_it_has_not_read_is_pruned() {
        let WithCache { path, store, cache, _dir } = with_cache();
        let reader = open(&path);
        let start = reader.change_cursor().unwrap();
        // One row for three keys (seq start + 3), then one for the fourth (start + 4).
        apply_one(&store, &set_write(cache, &["a", "b", "c"], Quota::UNLIMITED)).unwrap();
        set(&store, cache, "d");
        let raw = Connection::open(&path).unwrap();
        let keys_since = |cursor: i64| match reader.changes_since(cursor).unwrap() {
            Changes::Since { changes, .. } => Some(changes.len()),
            Changes::Overflow { .. } => None,
        };
        assert_eq!(keys_since(start), Some(4));

        // Keeping the newest 2 changes keeps the row of three whole: nothing unread is gone.
        writes::prune_change_log(&raw, 2).unwrap();
        assert_eq!(keys_since(start), Some(4));
        // Keeping 1 prunes it: a reader that had not read it fell behind; one that had did not.
        writes::prune_change_log(&raw, 1).unwrap();
        assert_eq!(keys_since(start), None);
        assert_eq!(keys_since(start + 3), Some(1));
    }

    /// How many of the writer's allocations since the last look found its lookaside memory
    /// used up and went to `malloc` (see `connection::grow_lookaside`).
    fn lookaside_misses(store: &SqliteStore) -> i32 {
        let writer = store.writer.lock().unwrap();
        let (mut misses, mut highest) = (0, 0);
        // SAFETY: the writer's connection is live, and ours alone while its lock is held.
        let code = unsafe {
            rusqlite::ffi::sqlite3_db_status(
                writer.conn.borrow_owner().handle(),
                rusqlite::ffi::SQLITE_DBSTATUS_LOOKASIDE_MISS_FULL,
                &mut misses,
                &mut highest,
                1,
            )
        };
        assert_eq!(code, rusqlite::ffi::SQLITE_OK);
        highest
    }

    #[test]
    fn the_writers_statements_run_in_its_lookaside_memory() {
        let WithCache { store, cache, _dir, .. } = with_cache();
        let keys: Vec<String> = (0..8).map(|i| format!("key-{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let batch = |store: &SqliteStore| {
            let writes = [
                set_write(cache, &keys, Quota::UNLIMITED),
                set_write(cache, &keys[..4], Quota::UNLIMITED),
                Write::Delete { cache: Target { id: cache, name: "c".into() }, keys: vec!["key-7".into()] },
            ];
            let applied = store.apply(&mut writes.iter());
            assert!(applied.results.iter().all(Result::is_ok), "{:?}", applied.results);
            store.sync(applied.sync).unwrap();
        };
        // Every statement of these writes prepared and cached, then the misses counted afresh.
        batch(&store);
        lookaside_misses(&store);
        for _ in 0..20 {
            batch(&store);
        }
        assert_eq!(lookaside_misses(&store), 0, "the writer's statements went to malloc");
    }

    #[test]
    fn counts_stay_exact_when_values_are_replaced_in_place() {
        let WithCache { store, cache, _dir, .. } = with_cache();
        let apply = |entries: &[(&str, &str)], quota: Quota| {
            let write = Write::Set {
                cache: Target { id: cache, name: "c".into() },
                entries: entries.iter().map(|(k, v)| ((*k).to_owned(), Json::parse(*v).unwrap())).collect(),
                expires_at: None,
                quota,
            };
            let applied = store.apply(&mut std::slice::from_ref(&write).iter());
            store.sync(applied.sync).unwrap();
            applied.results.into_iter().next().unwrap()
        };
        let stats = || store.cache_stats(cache).unwrap().unwrap();
        apply(&[("a", "1"), ("b", "22")], Quota::UNLIMITED).unwrap();
        assert_eq!(stats(), Stats { entries: 2, bytes: 5 });
        apply(&[("a", "2"), ("b", "33")], Quota::UNLIMITED).unwrap();
        assert_eq!(stats(), Stats { entries: 2, bytes: 5 }, "replaced in place");
        assert_eq!(store.get(cache, "b").unwrap().unwrap().value.as_str(), "33");
        apply(&[("a", "333")], Quota::UNLIMITED).unwrap();
        assert_eq!(stats(), Stats { entries: 2, bytes: 7 }, "a value that grew");

        // Over a quota already: a value replaced in place passes, a value that grows does not.
        let tiny = Quota { max_entries: Some(1), max_bytes: Some(5), ..Quota::UNLIMITED };
        apply(&[("b", "44")], tiny.clone()).unwrap();
        assert!(matches!(apply(&[("b", "444")], tiny), Err(Error::QuotaExceeded(_))));
        assert_eq!(stats(), Stats { entries: 2, bytes: 7 });
        assert_eq!(store.get(cache, "b").unwrap().unwrap().value.as_str(), "44");

        // Once the cache is gone, no write to it is taken, in place or not.
        let drop = Write::DropCache { name: "c".into() };
        store.apply(&mut std::slice::from_ref(&drop).iter()).results.remove(0).unwrap();
        assert!(matches!(apply(&[("a", "9")], Quota::UNLIMITED), Err(Error::CacheDeleted(_))));
        assert!(matches!(apply(&[], Quota::UNLIMITED), Err(Error::CacheDeleted(_))));
    }

    #[test]
    fn the_fsync_moves_out_of_the_commit_while_others_write_and_reads_wait_for_what_they_see() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = open(&path);
        let other = open(&path);
        let cache = create(&writer);

        let before = writer.durable.syncs();
        set(&writer, cache, "k");
        set(&writer, cache, "k");
        assert_eq!(writer.durable.syncs(), before, "alone, the writer's commits are fsynced inside COMMIT");

        // Another process's commit, fsynced where it was made: known durable everywhere.
        let seen = other.durable.syncs();
        assert!(other.get(cache, "k").unwrap().is_some());
        assert_eq!(other.durable.syncs(), seen, "the writer's fsync counts for every process");

        // A commit nobody fsynced (a writer that is not easycaching), seen by a read: the
        // reader fsyncs before it answers, once.
        let outsider = Connection::open(&path).unwrap();
        outsider.execute_batch("PRAGMA synchronous = OFF; CREATE TABLE outsider (x);").unwrap();
        assert!(other.get(cache, "k").unwrap().is_some());
        assert_eq!(other.durable.syncs(), seen + 1, "a read of a commit not known durable fsyncs first");
        assert!(other.get(cache, "k").unwrap().is_some());
        assert!(other.contains(cache, "k").unwrap());
        assert_eq!(other.durable.syncs(), seen + 1, "nothing new committed: no fsync");

        // Once another process commits between its commits, the writer fsyncs after COMMIT.
        set(&other, cache, "o");
        set(&writer, cache, "k2");
        assert_eq!(writer.durable.syncs(), before + 1, "contended, the writer fsyncs after the commit");
        assert!(!writer.writer.lock().unwrap().fsync_in_commit);
        let seen = other.durable.syncs();
        assert!(other.contains(cache, "k2").unwrap());
        assert_eq!(other.durable.syncs(), seen, "the writer's fsync after its commit counts everywhere too");
        set(&writer, cache, "k3");
        assert!(!writer.writer.lock().unwrap().fsync_in_commit, "one quiet batch is not enough");
        for _ in 0..QUIET_BATCHES_FOR_FSYNC_IN_COMMIT {
            set(&writer, cache, "k3");
        }
        assert!(writer.writer.lock().unwrap().fsync_in_commit, "alone for a while: back inside COMMIT");
        assert!(other.contains(cache, "k3").unwrap());
    }
}
