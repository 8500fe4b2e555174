//! Opening connections with our settings, and a pool of read connections.

use std::ffi::c_void;
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, ffi};

use super::statements::{ReadStatements, ReaderConnection};
use super::{DbFile, wal_writes};
use crate::options::Durability;
use crate::{Error, Result};

/// Prepared statements kept per connection; we use fewer than this, so none is ever re-parsed.
const STATEMENT_CACHE: usize = 64;
/// The fewest read connections a pool may open; it may open two per processor when that is
/// more. Threads reading when every one is busy wait for one: each connection has a page cache
/// of its own (up to 2 MB) and file descriptors, so a process with hundreds of reading threads
/// would otherwise hold hundreds of them, and more connections than processors read no faster.
const MIN_READERS: usize = 16;

/// Settings every connection gets.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) durability: Durability,
    pub(super) busy_timeout: Duration,
}

/// Opens the writing connection, creating the file when it does not exist.
pub(super) fn open_writer(db: &DbFile, settings: &Settings) -> Result<Connection> {
    refuse_special_file(&db.path)?;
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // With `Durability::Full`, through our VFS, which writes each commit's WAL frames in one
    // system call (see `wal_writes`).
    let mut conn = match settings.durability {
        Durability::Full => {
            let vfs = wal_writes::vfs().map_err(Error::Storage)?;
            Connection::open_with_flags_and_vfs(&db.path, flags, vfs)
        }
        Durability::Normal => Connection::open_with_flags(&db.path, flags),
    }
    .map_err(|e| open_error(&db.path, e))?;
    configure(&mut conn, db, settings)?;
    // `Durability::Full` fsyncs inside COMMIT, unless the store has it skipped there, to fsync
    // after the commit while other processes commit (see `durable` and `wal_writes`).
    let synchronous = match settings.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!("PRAGMA synchronous = {synchronous};")).map_err(|e| db.error(e))?;
    set_checkpoint_pages(&conn, db, crate::options::DEFAULT_CHECKPOINT_PAGES)?;
    Ok(conn)
}

/// Has the writing connection copy the WAL into the database (checkpoint it) in the commit
/// that takes it past `pages` pages (`wal_autocheckpoint`). The checkpoint runs before that
/// commit returns: the writers of its batch wait for it, and so do other processes' writers,
/// queued for the write turn it still holds (see `write_turns`). Given the turn up first, the
/// others committed during the checkpoint, it could never copy the whole WAL and every commit
/// tried again: 8 writer processes did a third fewer writes (docs/benchmark-log.md).
///
/// It also bounds the WAL file kept after a checkpoint to [`wal_bytes_kept`] of that mark: a
/// WAL grown far past it (one large transaction, such as clearing a big cache, or checkpoints
/// held back by readers) is cut back to that size when SQLite next starts it over, instead of
/// keeping its largest size on disk for as long as any process has the database open.
pub(super) fn set_checkpoint_pages(conn: &Connection, db: &DbFile, pages: u32) -> Result<()> {
    let kept = wal_bytes_kept(pages);
    conn.execute_batch(&format!("PRAGMA wal_autocheckpoint = {pages}; PRAGMA journal_size_limit = {kept};"))
        .map_err(|e| db.error(e))
}

/// The most bytes of WAL file kept once it starts over (`journal_size_limit`): twice what the
/// checkpoint mark lets it reach, so a WAL of ordinary size is reused as it is (truncating and
/// growing it again would cost every commit a change of the file's size) and only one grown
/// past that is cut back.
pub(super) fn wal_bytes_kept(checkpoint_pages: u32) -> u64 {
    /// A WAL frame: a page and its 24-byte header.
    const FRAME_BYTES: u64 = super::schema::PAGE_SIZE as u64 + 24;
    2 * u64::from(checkpoint_pages) * FRAME_BYTES
}

/// Opens a read connection to an existing database.
pub(super) fn open_reader(db: &DbFile, settings: &Settings) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(&db.path, flags).map_err(|e| open_error(&db.path, e))?;
    configure(&mut conn, db, settings)?;
    conn.execute_batch("PRAGMA query_only = ON;").map_err(|e| db.error(e))?;
    Ok(conn)
}

fn configure(conn: &mut Connection, db: &DbFile, settings: &Settings) -> Result<()> {
    grow_lookaside(conn);
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_handler(Some(busy_handler(settings.busy_timeout, || None))).map_err(|e| db.error(e))
}

/// Slots of the connection's lookaside memory (see [`grow_lookaside`]), of [`LOOKASIDE_SLOT`]
/// bytes each (SQLite carves part of them into small slots of 128 bytes).
const LOOKASIDE_SLOTS: i32 = 120;
/// The size of a lookaside slot, SQLite's own default.
const LOOKASIDE_SLOT: i32 = 1200;

/// Gives the connection 144 KB of lookaside memory, three times SQLite's default. SQLite takes
/// its small, short-lived allocations (cursors, values, a statement's run) from there, without
/// `malloc` and its global memory mutex; but every statement prepared holds some of it for as
/// long as it lives, and ours stay prepared. With the default, the writer's statements had used
/// it up and each statement run went to `malloc`: one statement more on the writer, never run,
/// cost a lone `set` 3.1k instructions (6%). 96 KB, 192 KB and 600 KB all took that back;
/// 144 KB leaves room for statements to come.
/// Must come before anything else on the connection; should SQLite refuse (its memory in use),
/// the connection keeps the default.
fn grow_lookaside(conn: &Connection) {
    // SAFETY: `conn.handle()` is a live connection, used by this thread alone here; with a
    // null buffer SQLite allocates the lookaside memory itself, of the size given.
    let code = unsafe {
        ffi::sqlite3_db_config(
            conn.handle(),
            ffi::SQLITE_DBCONFIG_LOOKASIDE,
            std::ptr::null_mut::<c_void>(),
            LOOKASIDE_SLOT,
            LOOKASIDE_SLOTS,
        )
    };
    if code != ffi::SQLITE_OK {
        tracing::debug!(code, "SQLite kept its default lookaside memory");
    }
}

/// What a wait too long for an `Instant` (`Duration::MAX`, meant as "for ever") waits: a year.
const FOR_EVER: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The moment `wait` from now, or [`FOR_EVER`] from now when that is past what an `Instant`
/// holds.
pub(super) fn deadline_after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait).or_else(|| now.checked_add(FOR_EVER)).unwrap_or(now)
}

/// Makes the writing connection call `before_waiting` when it first finds a lock taken,
/// before it waits for it; it answers when the waiting must end at the latest (the end of the
/// waits of the transaction under way), if sooner than the busy timeout.
pub(super) fn before_waiting(
    conn: &mut Connection,
    db: &DbFile,
    settings: &Settings,
    before_waiting: impl FnMut() -> Option<Instant> + Send + 'static,
) -> Result<()> {
    conn.busy_handler(Some(busy_handler(settings.busy_timeout, before_waiting))).map_err(|e| db.error(e))
}

/// Waits for a lock held by another connection: short, jittered sleeps that grow to 200 µs,
/// about the time a writer holds the lock now that its fsync comes after the commit, so a
/// waiter gets in soon after the lock frees (SQLite's own handler sleeps up to 100 ms; 2 ms
/// here cost writer processes a sixth of their throughput), until `timeout` has passed since
/// the first attempt, or until the end `before_waiting` answers, which runs at the first
/// attempt.
fn busy_handler(
    timeout: Duration,
    mut before_waiting: impl FnMut() -> Option<Instant> + Send + 'static,
) -> impl FnMut(i32) -> bool + Send + 'static {
    let mut ends = Instant::now();
    move |attempt: i32| {
        if attempt == 0 {
            let timed_out = deadline_after(timeout);
            ends = before_waiting().map_or(timed_out, |end| end.min(timed_out));
        }
        if Instant::now() >= ends {
            return false;
        }
        let ceiling_us = (50u64 << attempt.clamp(0, 6) as u32).min(200);
        std::thread::sleep(Duration::from_micros(fastrand::u64(ceiling_us / 2..=ceiling_us)));
        true
    }
}

/// One of the open files of `conn`'s main database, as SQLite's VFS holds it: `op` is
/// `SQLITE_FCNTL_FILE_POINTER` (the database file) or `SQLITE_FCNTL_JOURNAL_POINTER` (its WAL).
/// `None` when the file is not open. The pointer is valid while the file stays open, at
/// most until `conn` is closed.
pub(super) fn open_file(conn: &Connection, op: i32) -> Option<*mut ffi::sqlite3_file> {
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `conn` is open; with these opcodes `sqlite3_file_control` writes one
    // `sqlite3_file*` to the pointer given (sqlite3.h), which we check before reading through.
    // A file with no methods is not open.
    unsafe {
        let rc = ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            op,
            (&mut file as *mut *mut ffi::sqlite3_file).cast::<c_void>(),
        );
        (rc == ffi::SQLITE_OK && !file.is_null() && !(*file).pMethods.is_null()).then_some(file)
    }
}

/// Refuses a path that names something other than a file or a directory (a FIFO, a device, a
/// socket) before SQLite opens it: on those it fails with a bare "disk I/O error", and on a
/// device such as `/dev/null` it first makes a `-journal` file beside it. (A directory gets
/// its own message from [`open_error`].)
fn refuse_special_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(kind) = std::fs::metadata(path).map(|found| found.file_type()) else { return Ok(()) };
    let what = if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        return Ok(());
    };
    Err(Error::path("open", path, format!("it is {what}, not a regular file")))
}

/// Why `path` could not be opened, said once: SQLite's own message ("unable to open database
/// file") names neither a missing directory nor a directory given as the file.
fn open_error(path: &Path, error: rusqlite::Error) -> Error {
    let reason = match path.parent() {
        _ if path.is_dir() => "it is a directory, not a file".to_owned(),
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => match dir.exists() {
            true => format!("{} is a file, not a directory", dir.display()),
            false => format!("the directory {} does not exist", dir.display()),
        },
        _ => match why_not_opened(path) {
            Some(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                "permission denied (check the permissions of the file and of its directory)".to_owned()
            }
            Some(io) => io.to_string(),
            None => error.to_string(),
        },
    };
    Error::path("open", path, reason)
}

/// Why `path` could not be opened, as the system says it, where SQLite says only "unable to
/// open database file": found by opening the file to read it, or, when there is none, by
/// creating a file of this process's own beside it, as SQLite just failed to create the
/// database (removed again should that succeed after all). Not the database's own name: a
/// file made and removed there could be the one another process opens meanwhile.
fn why_not_opened(path: &Path) -> Option<std::io::Error> {
    use std::fs::OpenOptions;
    if path.exists() {
        return OpenOptions::new().read(true).open(path).err();
    }
    let name = path.file_name()?.to_string_lossy();
    let probe = path.with_file_name(format!(".{name}.open-probe-{}", std::process::id()));
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(error) => Some(error),
    }
}

/// Read connections with their statements, reused across calls and threads, at most
/// `max_open` of them open at once.
pub(super) struct ReaderPool {
    db: DbFile,
    settings: Settings,
    readers: Mutex<Readers>,
    /// Signalled when a connection goes back to the pool, or a place for one frees up.
    returned: Condvar,
    max_open: usize,
}

struct Readers {
    idle: Vec<ReaderConnection>,
    /// Connections open: idle, in use, or being opened.
    open: usize,
}

/// A place in the pool, and the connection in it once there is one. Dropped, it gives the
/// connection back to the pool, or closes it when [`MIN_READERS`] are idle already (so a
/// burst of readers does not keep its connections for ever) or when its read panicked (its
/// statements may be left midway); either way a thread waiting for a connection is woken.
struct Lease<'a> {
    pool: &'a ReaderPool,
    conn: Option<ReaderConnection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut readers = self.pool.lock();
        match self.conn.take() {
            Some(conn) if readers.idle.len() < MIN_READERS && !std::thread::panicking() => {
                readers.idle.push(conn)
            }
            closed => {
                readers.open -= 1;
                drop(readers);
                drop(closed);
            }
        }
        self.pool.returned.notify_one();
    }
}

impl ReaderPool {
    pub(super) fn new(db: DbFile, settings: Settings) -> ReaderPool {
        let processors = std::thread::available_parallelism().map_or(1, |n| n.get());
        ReaderPool {
            db,
            settings,
            readers: Mutex::new(Readers { idle: Vec::new(), open: 0 }),
            returned: Condvar::new(),
            max_open: MIN_READERS.max(2 * processors),
        }
    }

    /// Runs `read` on an idle connection and its statements, opening one when none is idle and
    /// fewer than the most are open, and otherwise waiting for one.
    pub(super) fn with<T>(
        &self,
        read: impl FnOnce(&Connection, &mut ReadStatements<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut lease = Lease { pool: self, conn: None };
        {
            let mut readers = self.lock();
            loop {
                if let Some(conn) = readers.idle.pop() {
                    lease.conn = Some(conn);
                    break;
                }
                if readers.open < self.max_open {
                    readers.open += 1;
                    break;
                }
                readers = self.returned.wait(readers).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }
        let conn = match &mut lease.conn {
            Some(conn) => conn,
            // Should opening fail, dropping the lease frees its place.
            empty => empty.insert(
                open_reader(&self.db, &self.settings)
                    .and_then(|conn| ReaderConnection::prepare(conn).map_err(|e| self.db.error(e)))?,
            ),
        };
        conn.with_dependent_mut(|conn, statements| read(conn, statements)).map_err(|e| self.db.error(e))
    }

    fn lock(&self) -> MutexGuard<'_, Readers> {
        self.readers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn threads_reading_at_once_share_a_bounded_number_of_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("readers.db");
        drop(crate::CacheManager::open(&path).unwrap());
        let settings = Settings { durability: Durability::Full, busy_timeout: Duration::from_secs(5) };
        let pool = ReaderPool::new(DbFile { path, busy_timeout: settings.busy_timeout }, settings);
        let (reading, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let threads = pool.max_open * 3;
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    pool.with(|conn, _| {
                        let now = reading.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        reading.fetch_sub(1, Ordering::SeqCst);
                        conn.query_row("SELECT count(*) FROM entries", [], |row| row.get::<_, i64>(0))
                    })
                    .unwrap();
                });
            }
        });
        let most = most.load(Ordering::SeqCst);
        assert!(
            most > 1 && most <= pool.max_open,
            "{most} reads at once, with at most {} connections",
            pool.max_open
        );
        {
            let readers = pool.lock();
            assert_eq!(readers.open, readers.idle.len(), "every connection went back or was closed");
            assert!(readers.open <= MIN_READERS, "{} idle connections kept", readers.open);
        }
        // A read that panics closes its connection and frees its place.
        for _ in 0..pool.max_open + 1 {
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.with(|_, _| -> rusqlite::Result<()> { panic!("a read that panics") })
            }));
            assert!(panicked.is_err());
        }
        // Each closed the connection it had: the idle ones, then one opened for the last.
        let readers = pool.lock();
        assert_eq!((readers.open, readers.idle.len()), (0, 0));
        drop(readers);
        pool.with(|conn, _| conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))).unwrap();
    }
}
