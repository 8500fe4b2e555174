//! One write system call for a commit's WAL frames, not two for each.
//!
//! SQLite writes every frame of a commit to the WAL with two `pwrite` calls, its 24-byte
//! header and then its page, and a commit of 50 small writes changes about 50 pages: 100
//! system calls, measured at 2-5 µs each here (an overwrite of part of a page costs more than
//! an append), 0.5 ms in all, against 40 µs for the same bytes in one call. That time is spent
//! inside `COMMIT`, holding the write lock every other writer is waiting for.
//!
//! So the writing connection opens its database through a VFS of ours, [`VFS_NAME`]: the
//! default VFS, but for the WAL file, whose writes it can gather while a commit runs
//! ([`CommitWrites`]). Gathered writes reach the file in one `pwrite` at SQLite's sync of the
//! commit, the step just before SQLite makes the commit visible (it publishes a commit in the
//! wal-index only after that sync returns), and before any other use of the file (a read, a
//! size, a truncation, a close): everything SQLite reads from or makes visible in the WAL is in
//! the file first, as without us. A failed write fails that sync, and with it the commit,
//! before anything is visible.
//!
//! Gathering is only ever on while `COMMIT` runs with `synchronous = FULL`, the mode in which
//! SQLite syncs before it publishes, and only up to the commit's sync: anything SQLite writes
//! after it (the rest of a padded frame, on a file system without power-safe overwrite) goes
//! straight to the file. Every other connection, and every other file, is SQLite's own.
//!
//! That sync may also be deferred: when the store fsyncs the WAL itself after the commit,
//! outside the write lock (see `durable`), SQLite's own fsync inside `COMMIT` is not wanted.
//! A deferred sync still writes the gathered frames; it skips only the fsync, and only of the
//! commit's own sync, the one that finds frames gathered. Two others are always done: the
//! sync of the WAL's header that SQLite writes anew after a restart (it must reach the disk
//! before any frame after it, or a power cut could corrupt the database), told apart as the
//! sync that finds only the header gathered, at the start of the file (and a commit's sync
//! that writes the header with its frames is not deferred either); and the sync of a
//! checkpoint that runs within the same `COMMIT`, which finds nothing gathered (the frames
//! were written by then). What the store acknowledges is exactly as durable as before: nothing is
//! acknowledged before an fsync of the WAL that began after the commit has completed.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::marker::PhantomData;
use std::sync::OnceLock;

use rusqlite::{Connection, ffi};

/// The name our VFS is registered under.
pub(super) const VFS_NAME: &CStr = c"easycaching";

/// The size of the WAL's header, at the start of the file (<https://www.sqlite.org/fileformat.html>,
/// "WAL File Format").
const WAL_HEADER_BYTES: usize = 32;

/// The most one call to the default VFS writes: SQLite's Unix VFS writes at most 128 KiB
/// less one byte in one system call (and loops for the rest).
const MAX_WRITE_BYTES: usize = 124 << 10;

/// The gathering buffer keeps at most this much memory between commits: room for a commit of
/// about 120 writes.
const KEPT_BUFFER_BYTES: usize = 256 << 10;

/// Gathered writes beyond this many bytes go to the file at once: a commit's frames fit well
/// within it, and a transaction larger than that is not slowed by the system calls.
const MAX_GATHERED_BYTES: usize = 4 << 20;

/// Registers our VFS (once per process) and returns its name, to open the writing connection
/// with. Fails only if SQLite cannot find its default VFS or register ours.
pub(super) fn vfs() -> Result<&'static CStr, String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: runs once, guarded by the `OnceLock`.
            unsafe { register() }
        })
        .clone()?;
    Ok(VFS_NAME)
}

/// The default VFS, which ours hands every call to.
struct Base {
    vfs: *mut ffi::sqlite3_vfs,
    /// Where our state sits in a file object: just after the default VFS's own.
    extra_offset: usize,
}

// SAFETY: a VFS is shared by every connection of the process by design; SQLite makes its
// methods safe to call from any thread. `Base` is written once, before our VFS is registered.
unsafe impl Send for Base {}
unsafe impl Sync for Base {}

static BASE: OnceLock<Base> = OnceLock::new();

/// Builds our VFS from the default one and registers it.
///
/// # Safety
/// Calls into SQLite's C API; must run once (see [`vfs`]).
unsafe fn register() -> Result<(), String> {
    // SAFETY: `sqlite3_vfs_find(NULL)` initializes SQLite if needed and returns the default VFS,
    // which lives as long as the process.
    let base = unsafe { ffi::sqlite3_vfs_find(std::ptr::null()) };
    if base.is_null() {
        return Err("SQLite has no default VFS".into());
    }
    // SAFETY: `base` is a registered, live VFS; we only read it.
    let base_size = usize::try_from(unsafe { (*base).szOsFile }).map_err(|_| "bad VFS file size")?;
    let extra_offset = base_size.next_multiple_of(std::mem::align_of::<Extra>());
    let os_file =
        c_int::try_from(extra_offset + std::mem::size_of::<Extra>()).map_err(|_| "VFS file too big")?;
    let _ = BASE.set(Base { vfs: base, extra_offset });
    // A copy of the default VFS (its other methods and its own data, which they read through
    // the pointer they are given), with room for our state in each file and our `xOpen`.
    // SAFETY: a plain copy of a C struct of pointers and integers.
    let mut ours: ffi::sqlite3_vfs = unsafe { std::ptr::read(base) };
    ours.szOsFile = os_file;
    ours.zName = VFS_NAME.as_ptr();
    ours.pNext = std::ptr::null_mut();
    ours.xOpen = Some(open);
    // Registered for the life of the process, as SQLite requires of a VFS in use.
    let ours = Box::leak(Box::new(ours));
    // SAFETY: `ours` is a complete VFS that lives forever; not made the default.
    let rc = unsafe { ffi::sqlite3_vfs_register(ours, 0) };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(format!("registering the easycaching VFS failed (SQLite code {rc})"))
    }
}

/// What we keep in a WAL file object, after the default VFS's own part.
#[repr(C)]
struct Extra {
    /// The default VFS's methods for the file, which ours call.
    base: *const ffi::sqlite3_io_methods,
    /// Owned; freed on close.
    gathered: *mut Gathered,
}

/// The writes of a commit not yet in the file.
#[derive(Default)]
struct Gathered {
    /// Writes are gathered (see [`CommitWrites`]).
    on: bool,
    /// A sync that finds writes gathered writes them and skips the fsync.
    defer_fsync: bool,
    /// A sync was deferred since gathering began.
    deferred: bool,
    /// Where in the file the gathered bytes begin.
    offset: i64,
    bytes: Vec<u8>,
    /// Calls to the default VFS's write and sync, for tests.
    #[cfg(test)]
    base_calls: BaseCalls,
}

#[cfg(test)]
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct BaseCalls {
    writes: u64,
    syncs: u64,
}

unsafe extern "C" fn open(
    _ours: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // Nothing may unwind out of a function SQLite calls: a missing method is an error code.
    let Some((base, base_open)) = BASE.get().and_then(|base| {
        // SAFETY: the default VFS, registered and live.
        unsafe { (*base.vfs).xOpen }.map(|open| (base, open))
    }) else {
        return ffi::SQLITE_CANTOPEN;
    };
    // SAFETY: SQLite gives us room for `szOsFile` bytes at `file`; the default VFS fills in its
    // part, the first `szOsFile` bytes of its own size.
    let rc = unsafe { base_open(base.vfs, name, file, flags, out_flags) };
    // SAFETY: on success `file` is open and its methods set; our part lies within our
    // `szOsFile`, aligned for `Extra`.
    unsafe {
        if rc == ffi::SQLITE_OK && flags & ffi::SQLITE_OPEN_WAL != 0 && !(*file).pMethods.is_null() {
            extra(file).write(Extra { base: (*file).pMethods, gathered: Box::into_raw(Box::default()) });
            (*file).pMethods = &WAL_METHODS;
        }
    }
    rc
}

/// Our part of a WAL file object.
///
/// # Safety
/// `file` must have been opened through our VFS.
unsafe fn extra(file: *mut ffi::sqlite3_file) -> *mut Extra {
    let offset = BASE.get().map_or(0, |base| base.extra_offset);
    // SAFETY: within the object SQLite allocated for our `szOsFile`.
    unsafe { file.cast::<u8>().add(offset).cast::<Extra>() }
}

/// The default VFS's methods for a WAL file opened through ours.
///
/// # Safety
/// `file` must be a WAL file opened through our VFS and not yet closed.
unsafe fn base(file: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    // SAFETY: set in `open`; the default VFS's methods are static.
    unsafe { &*(*extra(file)).base }
}

/// # Safety
/// As for [`base`].
unsafe fn gathered<'f>(file: *mut ffi::sqlite3_file) -> &'f mut Gathered {
    // SAFETY: set in `open`, freed only in `close`; a file is used by one thread at a time.
    unsafe { &mut *(*extra(file)).gathered }
}

/// Writes the gathered bytes to the file: in one call, unless there are more than
/// [`MAX_WRITE_BYTES`].
///
/// # Safety
/// As for [`base`].
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: the caller's guarantee.
    let gathered = unsafe { gathered(file) };
    if gathered.bytes.is_empty() {
        return ffi::SQLITE_OK;
    }
    // SAFETY: the caller's guarantee.
    let Some(base_write) = (unsafe { base(file) }).xWrite else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let mut rc = ffi::SQLITE_OK;
    let mut offset = gathered.offset;
    for chunk in gathered.bytes.chunks(MAX_WRITE_BYTES) {
        // SAFETY: the default VFS's write of our bytes, at the offset they were gathered for.
        rc = unsafe { base_write(file, chunk.as_ptr().cast(), chunk.len() as c_int, offset) };
        #[cfg(test)]
        {
            gathered.base_calls.writes += 1;
        }
        if rc != ffi::SQLITE_OK {
            break;
        }
        offset += chunk.len() as i64;
    }
    gathered.bytes.clear();
    // A large transaction's buffer is not kept for the small commits after it.
    gathered.bytes.shrink_to(KEPT_BUFFER_BYTES);
    rc
}

/// Flushes, then makes `call` on the default VFS's methods.
macro_rules! flushed {
    ($file:ident, $method:ident ( $($arg:expr),* )) => {{
        // SAFETY: `$file` is a WAL file opened through our VFS (only such files have these
        // methods).
        unsafe {
            let rc = flush($file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            match base($file).$method {
                Some(method) => method($file, $($arg),*),
                None => ffi::SQLITE_IOERR,
            }
        }
    }};
}

/// Makes `call` on the default VFS's methods, with nothing to flush first (the call neither
/// reads nor writes the file's contents).
macro_rules! passed {
    ($file:ident, $method:ident ( $($arg:expr),* ), $missing:expr) => {{
        // SAFETY: as in `flushed!`.
        unsafe {
            match base($file).$method {
                Some(method) => method($file, $($arg),*),
                None => $missing,
            }
        }
    }};
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: a WAL file opened through our VFS, closed once; our state is freed after its
    // last use, and the default VFS closes its part.
    unsafe {
        let flushed = flush(file);
        let extra = extra(file);
        let base = (*extra).base;
        drop(Box::from_raw((*extra).gathered));
        (*extra).gathered = std::ptr::null_mut();
        let closed = match (*base).xClose {
            Some(base_close) => base_close(file),
            None => ffi::SQLITE_IOERR_CLOSE,
        };
        if flushed != ffi::SQLITE_OK { flushed } else { closed }
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    flushed!(file, xRead(buf, amount, offset))
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: a WAL file opened through our VFS; `buf` holds `amount` bytes (SQLite's contract).
    unsafe {
        let gathered = gathered(file);
        if gathered.on && amount >= 0 {
            let end = gathered.offset + gathered.bytes.len() as i64;
            if !gathered.bytes.is_empty() && offset != end {
                let rc = flush(file);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
            }
            let gathered = self::gathered(file);
            if gathered.bytes.is_empty() {
                gathered.offset = offset;
            }
            gathered.bytes.extend_from_slice(std::slice::from_raw_parts(buf.cast::<u8>(), amount as usize));
            if gathered.bytes.len() < MAX_GATHERED_BYTES {
                return ffi::SQLITE_OK;
            }
            return flush(file);
        }
        #[cfg(test)]
        {
            self::gathered(file).base_calls.writes += 1;
        }
    }
    flushed!(file, xWrite(buf, amount, offset))
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    flushed!(file, xTruncate(size))
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: a WAL file opened through our VFS.
    unsafe {
        let gathered = gathered(file);
        if gathered.on && !gathered.bytes.is_empty() {
            if gathered.offset == 0 && gathered.bytes.len() <= WAL_HEADER_BYTES {
                // The WAL's header alone, written anew after a restart: SQLite syncs it before
                // any frame goes after it, as a frame written before it could otherwise be read
                // with the old header after a power cut and corrupt the database
                // (https://sqlite.org/src/info/ff5be73dee). Done in full; the commit's frames
                // come next, gathered again.
            } else {
                // The commit's own sync: SQLite publishes the commit after it. Deferred only
                // when the header is not among what it writes.
                gathered.on = false;
                if gathered.defer_fsync && gathered.offset != 0 {
                    let rc = flush(file);
                    if rc == ffi::SQLITE_OK {
                        self::gathered(file).deferred = true;
                    }
                    return rc;
                }
            }
        } else {
            // Nothing gathered: a sync of what is in the file already (a checkpoint's).
            gathered.on = false;
        }
        #[cfg(test)]
        {
            self::gathered(file).base_calls.syncs += 1;
        }
    }
    flushed!(file, xSync(flags))
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    flushed!(file, xFileSize(size))
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    passed!(file, xLock(level), ffi::SQLITE_OK)
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    passed!(file, xUnlock(level), ffi::SQLITE_OK)
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    passed!(file, xCheckReservedLock(out), ffi::SQLITE_OK)
}

unsafe extern "C" fn file_control(file: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    flushed!(file, xFileControl(op, arg))
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    passed!(file, xSectorSize(), 4096)
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    passed!(file, xDeviceCharacteristics(), 0)
}

unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    passed!(file, xShmMap(region, size, extend, out), ffi::SQLITE_IOERR_SHMMAP)
}

unsafe extern "C" fn shm_lock(file: *mut ffi::sqlite3_file, offset: c_int, n: c_int, flags: c_int) -> c_int {
    passed!(file, xShmLock(offset, n, flags), ffi::SQLITE_IOERR_SHMLOCK)
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: as in `passed!`.
    unsafe {
        if let Some(barrier) = base(file).xShmBarrier {
            barrier(file);
        }
    }
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    passed!(file, xShmUnmap(delete), ffi::SQLITE_OK)
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    flushed!(file, xFetch(offset, amount, out))
}

unsafe extern "C" fn unfetch(file: *mut ffi::sqlite3_file, offset: i64, page: *mut c_void) -> c_int {
    passed!(file, xUnfetch(offset, page), ffi::SQLITE_OK)
}

/// Gathers the WAL writes of the commit about to run on a connection opened through our VFS
/// with `synchronous = FULL` (see the module's documentation). Ends, writing anything still
/// gathered, with [`CommitWrites::finish`] or when dropped.
pub(super) struct CommitWrites<'c> {
    /// The connection's WAL, when it is open and ours.
    file: Option<*mut ffi::sqlite3_file>,
    connection: PhantomData<&'c Connection>,
}

impl<'c> CommitWrites<'c> {
    /// Starts gathering on `conn`'s WAL. With `defer_fsync`, SQLite's fsync of the commit is
    /// skipped: the caller fsyncs the WAL itself before it acknowledges the commit. The caller
    /// must not use `conn` on another thread until this ends.
    pub(super) fn start(conn: &'c Connection, defer_fsync: bool) -> CommitWrites<'c> {
        let file = super::connection::open_file(conn, ffi::SQLITE_FCNTL_JOURNAL_POINTER)
            // SAFETY: an open file of `conn`; reading its methods pointer.
            .filter(|&file| unsafe { std::ptr::eq((*file).pMethods, &WAL_METHODS) });
        if let Some(file) = file {
            // SAFETY: `file` is `conn`'s open WAL and ours, used by this thread only.
            let gathered = unsafe { gathered(file) };
            gathered.on = true;
            gathered.defer_fsync = defer_fsync;
            gathered.deferred = false;
        }
        CommitWrites { file, connection: PhantomData }
    }

    /// Ends gathering, writing anything still gathered (of a commit that failed before its
    /// sync). Answers whether SQLite's fsync of the commit was deferred to the caller: `false`
    /// when it ran inside `COMMIT` (or the WAL is not ours, and SQLite fsynced it as usual).
    pub(super) fn finish(mut self) -> rusqlite::Result<bool> {
        self.end()
    }

    fn end(&mut self) -> rusqlite::Result<bool> {
        let Some(file) = self.file.take() else { return Ok(false) };
        // SAFETY: as in `start`.
        let (rc, deferred) = unsafe {
            let gathered = gathered(file);
            gathered.on = false;
            let deferred = std::mem::take(&mut gathered.deferred);
            (flush(file), deferred)
        };
        if rc == ffi::SQLITE_OK {
            Ok(deferred)
        } else {
            Err(rusqlite::Error::SqliteFailure(
                ffi::Error::new(rc),
                Some("writing the write-ahead log failed".into()),
            ))
        }
    }
}

impl Drop for CommitWrites<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.end() {
            tracing::error!(%error, "writing the gathered WAL frames of a failed commit failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::OpenFlags;

    fn open(path: &std::path::Path) -> Connection {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let conn = Connection::open_with_flags_and_vfs(path, flags, vfs().unwrap()).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 2048; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT);",
        )
        .unwrap();
        conn
    }

    /// Calls to the default VFS for `conn`'s WAL so far.
    fn base_calls(conn: &Connection) -> BaseCalls {
        let file = super::super::connection::open_file(conn, ffi::SQLITE_FCNTL_JOURNAL_POINTER).unwrap();
        // SAFETY: `conn`'s open WAL, ours (checked), used by this thread only.
        unsafe {
            assert!(std::ptr::eq((*file).pMethods, &WAL_METHODS), "the WAL is opened through our VFS");
            gathered(file).base_calls
        }
    }

    /// Commits, inside one transaction, rows `keys` with values of `size` bytes (two rows of
    /// 1,000 bytes fill a page), gathering with `defer_fsync`; answers whether the
    /// fsync was deferred.
    fn commit(conn: &Connection, keys: std::ops::Range<i64>, size: usize, defer_fsync: bool) -> bool {
        insert(conn, keys, size);
        let writes = CommitWrites::start(conn, defer_fsync);
        conn.execute_batch("COMMIT").unwrap();
        writes.finish().unwrap()
    }

    /// Opens a transaction and inserts rows `keys` with values of `size` bytes.
    fn insert(conn: &Connection, keys: std::ops::Range<i64>, size: usize) {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        for k in keys {
            conn.execute("INSERT OR REPLACE INTO t VALUES (?1, ?2)", (k * 1000, format!("{k:0size$}")))
                .unwrap();
        }
    }

    fn rows(path: &std::path::Path) -> Vec<(i64, String)> {
        let plain = Connection::open(path).unwrap();
        let check: String = plain.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
        assert_eq!(check, "ok");
        let mut statement = plain.prepare("SELECT k, v FROM t ORDER BY k").unwrap();
        statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn a_commit_reaches_the_wal_in_one_write_and_other_connections_see_it_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open(&path);
        commit(&conn, 0..1, 10, false);
        let other = Connection::open(&path).unwrap();

        // Without gathering: SQLite's two writes a frame.
        let before = base_calls(&conn);
        insert(&conn, 1..21, 1000);
        conn.execute_batch("COMMIT").unwrap();
        let plain = base_calls(&conn).writes - before.writes;
        assert!(
            plain >= 20,
            "20 rows of 1,000 bytes fill 10 pages or more, 2 writes a frame: {plain} writes"
        );

        // Gathered: one write, made before the commit is visible anywhere, so that another
        // connection reads every row of it as soon as COMMIT returns (before gathering ends).
        let before = base_calls(&conn);
        insert(&conn, 21..41, 1000);
        let writes = CommitWrites::start(&conn, false);
        conn.execute_batch("COMMIT").unwrap();
        let values: Vec<String> = other
            .prepare("SELECT v FROM t")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(values.len(), 41);
        assert!(
            values[21..].iter().all(|value| value.len() == 1000 && value.bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(!writes.finish().unwrap(), "not deferred: SQLite fsyncs inside COMMIT");
        let after = base_calls(&conn);
        assert_eq!(after.writes - before.writes, 1, "one write for the whole commit");
        assert_eq!(after.syncs - before.syncs, 1, "and SQLite's own fsync");
    }

    #[test]
    fn a_deferred_fsync_skips_only_the_commits_own_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open(&path);
        commit(&conn, 0..1, 10, false);

        let before = base_calls(&conn);
        assert!(commit(&conn, 1..5, 10, true), "the commit's fsync is left to the caller");
        let after = base_calls(&conn);
        assert_eq!((after.writes - before.writes, after.syncs - before.syncs), (1, 0));

        // The first commit after the WAL restarts writes the WAL's header anew, and SQLite
        // syncs it before the frames: that sync is done, deferred or not, and the frames are
        // still written in one call.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        let before = base_calls(&conn);
        assert!(commit(&conn, 9..13, 10, true), "the commit's own fsync is still deferred");
        let after = base_calls(&conn);
        assert_eq!(
            (after.writes - before.writes, after.syncs - before.syncs),
            (2, 1),
            "header, synced; frames"
        );

        // A checkpoint run by the same COMMIT fsyncs the WAL before it copies it into the
        // database, deferred or not.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 1").unwrap();
        let before = base_calls(&conn);
        assert!(commit(&conn, 13..17, 10, true));
        let after = base_calls(&conn);
        assert_eq!(after.syncs - before.syncs, 1, "the checkpoint's fsync of the WAL is done");
        assert_eq!(rows(&path).len(), 13);
    }

    #[test]
    fn large_transactions_and_restarted_wals_keep_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open(&path);
        // More than one write call (124 KiB) and more than the most ever gathered (4 MiB),
        // in one transaction: 3,000 rows of 2,000 bytes.
        commit(&conn, 0..3000, 2000, true);
        let mut expected: Vec<(i64, String)> = (0..3000).map(|k| (k * 1000, format!("{k:02000}"))).collect();
        // Small commits, with the WAL checkpointed and restarted from its start between them:
        // SQLite then writes the WAL's header anew at the start of the file, before the frames.
        for round in 0..20 {
            if round % 5 == 0 {
                conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())).unwrap();
            }
            let keys = 3000 + round * 3..3000 + round * 3 + 3;
            commit(&conn, keys.clone(), 100, round % 2 == 0);
            expected.extend(keys.map(|k| (k * 1000, format!("{k:0100}"))));
        }
        drop(conn);
        assert_eq!(rows(&path), expected);
    }
}
