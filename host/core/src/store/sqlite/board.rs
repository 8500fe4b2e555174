//! The board: a page of counters beside the database (`<database>-board`), mapped into every
//! process that has the database open, through which they take turns to write (see
//! `write_turns`) and to fsync (see `fsync_board`), followed by the slots through which they
//! hand writes over to each other (see `handoffs`).
//!
//! No counter on the board is needed for correctness: SQLite's own locks keep writers apart
//! and every fsync is real; the counters only save waiting and flushing. The slots carry
//! writes, but a write handed over is acknowledged only once its poster knows it committed
//! (see `handoffs`), and one that is not taken is written by its poster. So a board that
//! cannot be made or mapped (a read-only directory, a file that is not ours) is replaced by
//! one in this process's memory, where it serves the threads of one process and hands
//! nothing over.
//!
//! What the slots do need is to know for sure whether the process that left a mark on the
//! board is gone: a slot is taken over from a poster or holder only once it is. Each opening
//! of the board draws a mark of its own, never drawn before, and holds an OFD lock on one
//! byte of the file named by that mark (far past its end: a lock needs no bytes) for as long
//! as it is open. The kernel releases the lock when the process ends, killed or not, before
//! anyone reaps it; so a mark is gone exactly when nobody holds its byte. A process id would
//! not do: in another PID namespace (containers sharing a volume) it names another process
//! or none, a process killed but not yet reaped still has one, and ids are reused. (A child
//! forked without `exec` shares the lock, and the mark lives until both have ended: never a
//! slot taken from a live process, but a poster whose holder died then learns nothing until
//! its busy timeout, and the slot is kept until the child ends. SQLite forbids carrying a
//! connection across `fork` anyway.) Where there are no OFD locks (outside Linux, or on a file
//! system without locks) the counters are shared all the same, but no slot is: nobody can be
//! told gone there, so a turn or an fsync held by a process that died is taken over when the
//! wait for it ends, and no write is handed over.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memmap2::MmapMut;

use super::handoffs::{SLOT_BYTES, SLOTS, Slot};
use crate::store::{AtomicChangeToken, ChangeToken};

/// Written once into a new board; a file holding anything else is left alone. (Builds that
/// marked the board with process ids used `<database>-turns`, magic `ecturns1`: a board of its
/// own, so that neither misreads the other's marks.)
const MAGIC: u64 = u64::from_le_bytes(*b"ecboard1");
/// Where the slots begin: the counters have the first page.
const SLOTS_AT: usize = 4096;
const _: () = assert!(std::mem::size_of::<Counters>() <= SLOTS_AT, "the counters fit their page");
/// The size of the board file: the counters' page and the slots.
const BOARD_BYTES: u64 = (SLOTS_AT + SLOTS * SLOT_BYTES) as u64;

/// The counters, laid out as they are in the board file. Each is explained where it is used.
#[repr(C)]
pub(super) struct Counters {
    magic: AtomicU64,
    /// Fsyncs begun (`fsync_board`).
    pub(super) begun: AtomicU64,
    /// The highest fsync number that completed.
    pub(super) completed: AtomicU64,
    /// The board fsyncing now (its mark), 0 when none.
    pub(super) in_flight: AtomicU64,
    /// Failed fsyncs, ever.
    pub(super) failures: AtomicU64,
    /// Bumped whenever an fsync ends (a futex word).
    pub(super) fsync_ended: AtomicU32,
    /// The board whose writer holds the turn to write (its mark), 0 when none
    /// (`write_turns`).
    pub(super) writer: AtomicU64,
    /// Writers waiting for the turn.
    pub(super) writers_waiting: AtomicU32,
    /// Bumped whenever a writer gives its turn up (a futex word).
    pub(super) write_turn_ended: AtomicU32,
    /// The token every commit up to which is durable, stored inverted (`fsync_board`).
    pub(super) synced: AtomicChangeToken,
    /// Marks drawn so far (see [`Board::me`]).
    marks: AtomicU64,
    /// This board's name, drawn when it was made: two boards of one database (one deleted
    /// and made anew while processes had it mapped, or an older build's `-turns`) number their
    /// slots alike, and what is recorded of a slot in the database must say whose it is.
    id: AtomicU64,
}

/// Marks are below this: a slot's state word holds a mark in its upper 56 bits.
pub(super) const MARKS_END: u64 = 1 << 56;
/// Board names are below this (and above 0, which the builds before them used).
const IDS_END: u64 = 1 << 40;

/// The board of one database, as one opening of it sees it.
pub(super) struct Board {
    place: Place,
    /// This opening's mark.
    me: u64,
}

enum Place {
    /// The board file, mapped; `file` holds the lock on the byte of this opening's mark, when
    /// `marks_held` (there are OFD locks here).
    Shared {
        map: MmapMut,
        file: File,
        marks_held: bool,
    },
    Local(Box<Counters>),
}

impl Board {
    /// The board of the database at `db`, shared with every other process that has it open;
    /// this process's alone when the board file cannot be made or mapped.
    pub(super) fn open(db: &Path) -> Board {
        let path = board_path(db);
        match shared(&path, db) {
            Ok(board) => board,
            Err(error) => {
                tracing::debug!(board = %path.display(), %error, "writers and fsyncs are not shared with other processes");
                Board::local()
            }
        }
    }

    /// A board that only this process uses.
    pub(super) fn local() -> Board {
        Board { place: Place::Local(Box::new(Counters::new())), me: 1 }
    }

    /// Whether other processes share this board.
    pub(super) fn is_shared(&self) -> bool {
        matches!(self.place, Place::Shared { .. })
    }

    /// The counters.
    pub(super) fn counters(&self) -> &Counters {
        match &self.place {
            Place::Shared { map, .. } => counters_of(map),
            Place::Local(counters) => counters,
        }
    }

    /// The slots for writes handed over between processes; none on a board only this process
    /// uses.
    pub(super) fn slots(&self) -> &[Slot] {
        match &self.place {
            // SAFETY: the map is `BOARD_BYTES` long, which holds `SLOTS` slots from `SLOTS_AT`
            // (page-aligned, so aligned for `Slot`); a `Slot` is made of atomics, valid for any
            // bit pattern and only ever touched atomically, by this process and others.
            Place::Shared { map, marks_held: true, .. } => unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(SLOTS_AT).cast::<Slot>(), SLOTS)
            },
            Place::Shared { .. } | Place::Local(_) => &[],
        }
    }

    /// Waits until `word` (one of the counters or slots) moves on from `seen`, at most `timeout`;
    /// false when it did not. Asleep on a futex where the board is shared (on Linux); in
    /// short sleeps otherwise.
    pub(super) fn wait(&self, word: &AtomicU32, seen: u32, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while word.load(Ordering::SeqCst) == seen {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
            match self.place {
                Place::Shared { .. } => futex::wait(word, seen, left),
                Place::Local(_) => std::thread::sleep(left.min(Duration::from_micros(50))),
            }
        }
        true
    }

    /// Bumps `word` (one of the counters or slots) and wakes up to `waiters` of those waiting on it
    /// (none: no system call).
    pub(super) fn bump(&self, word: &AtomicU32, waiters: i32) {
        word.fetch_add(1, Ordering::SeqCst);
        if waiters > 0
            && let Place::Shared { .. } = self.place
        {
            futex::wake(word, waiters);
        }
    }

    /// This opening's mark on the board: drawn when it was opened, never drawn by another
    /// (never 0, which means nobody).
    pub(super) fn me(&self) -> u64 {
        self.me
    }

    /// This board's name (see `Counters::id`), from 1 up, below 2^40; 0 for a board of this
    /// process alone, which has no slots.
    pub(super) fn id(&self) -> u64 {
        match &self.place {
            Place::Shared { .. } => self.counters().id.load(Ordering::SeqCst),
            Place::Local(_) => 0,
        }
    }

    /// Whether the opening that left `mark` (see [`Board::me`]) is gone: closed, or its
    /// process ended. Never this one; and on a board of this process alone, never.
    pub(super) fn is_gone(&self, mark: u64) -> bool {
        match &self.place {
            Place::Shared { file, marks_held: true, .. } => mark != self.me && presence::is_free(file, mark),
            Place::Shared { .. } | Place::Local(_) => false,
        }
    }
}

impl Counters {
    fn new() -> Counters {
        Counters {
            magic: AtomicU64::new(MAGIC),
            begun: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            fsync_ended: AtomicU32::new(0),
            writer: AtomicU64::new(0),
            writers_waiting: AtomicU32::new(0),
            write_turn_ended: AtomicU32::new(0),
            synced: AtomicChangeToken::new(ChangeToken([0, 0])),
            marks: AtomicU64::new(1),
            id: AtomicU64::new(0),
        }
    }
}

/// Gives the board file the permissions of the database, as SQLite gives its `-wal` and
/// `-shm` (whatever the umask): everyone who may write the database may share the board, and
/// without it a process writes alone, its writes and fsyncs shared with no other. Best effort:
/// a board made by another user keeps its owner's choice.
fn share_as(board: &File, db: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let (Ok(db), Ok(ours)) = (std::fs::metadata(db), board.metadata()) else { return };
    let wanted = db.permissions().mode() & 0o666;
    if ours.permissions().mode() & 0o777 != wanted {
        let _ = board.set_permissions(std::fs::Permissions::from_mode(wanted));
    }
}

/// `<database>-board`, beside SQLite's `-wal` and `-shm`.
fn board_path(db: &Path) -> PathBuf {
    super::sidecar(db, "-board")
}

/// The board file, mapped, with a mark of this opening's own held.
fn shared(path: &Path, db: &Path) -> std::io::Result<Board> {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    share_as(&file, db);
    let map = map(&file)?;
    let counters = counters_of(&map);
    let _ = counters.id.compare_exchange(0, fastrand::u64(1..IDS_END), Ordering::SeqCst, Ordering::SeqCst);
    if !(1..IDS_END).contains(&counters.id.load(Ordering::SeqCst)) {
        return Err(not_a_board());
    }
    // A mark is drawn once; should its byte be held all the same (a board copied over this
    // one, say), the next is drawn.
    for _ in 0..8 {
        let me = counters.marks.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
        if !(1..MARKS_END).contains(&me) {
            return Err(std::io::Error::other("the board has drawn all its marks"));
        }
        match presence::hold(&file, me) {
            Ok(()) => return Ok(Board { place: Place::Shared { map, file, marks_held: true }, me }),
            // Held by another (POSIX allows either answer for that).
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::PermissionDenied) => {
                continue;
            }
            Err(error) => {
                tracing::debug!(%error, "no OFD locks here: the board's counters are shared, its slots are not");
                return Ok(Board { place: Place::Shared { map, file, marks_held: false }, me });
            }
        }
    }
    Err(std::io::Error::other("no mark of the board was free"))
}

/// The counters at the start of a mapped board file.
fn counters_of(map: &MmapMut) -> &Counters {
    // SAFETY: every map of a board is `BOARD_BYTES` long (see `map`), which holds `Counters`
    // at its page-aligned start, and lives as long as the borrow; `Counters` is made of
    // atomics, which any bit pattern is valid for and which other processes only ever touch
    // atomically.
    unsafe { &*map.as_ptr().cast::<Counters>() }
}

/// Maps the board file, making it (zeroed, then marked as a board) when it is new.
fn map(file: &File) -> std::io::Result<MmapMut> {
    let len = file.metadata()?.len();
    if len > 0 {
        // Not grown before it is known to be a board (or a new one, all zeros).
        let mut magic = [0; 8];
        let mut reader = file;
        reader.read_exact(&mut magic)?;
        if !matches!(u64::from_le_bytes(magic), 0 | MAGIC) {
            return Err(not_a_board());
        }
    }
    allocate(file)?;
    if len < BOARD_BYTES {
        // Growing only ever adds zeros; two processes doing it at once agree.
        file.set_len(BOARD_BYTES)?;
    }
    // SAFETY: the file is at least `BOARD_BYTES` long and never shrinks (nothing truncates a
    // board); its contents are only read through atomics (see `counters_of`).
    let map = unsafe { memmap2::MmapOptions::new().len(BOARD_BYTES as usize).map_mut(file)? };
    let counters = counters_of(&map);
    match counters.magic.compare_exchange(0, MAGIC, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) | Err(MAGIC) => Ok(map),
        Err(_) => Err(not_a_board()),
    }
}

/// Gives every byte of the board a place on the disk (growing the file to `BOARD_BYTES` where
/// it is shorter), as SQLite does for its `-shm`: a page of a sparse file that is first
/// touched through the map when the disk is full kills the process with SIGBUS, where this
/// fails with ENOSPC and the process goes on with a board of its own. Changes no byte: two
/// processes doing it at once agree. Where the file system cannot (EOPNOTSUPP), the board
/// stays as `set_len` makes it, sparse. (Not `posix_fallocate`, whose fallback writes zeros
/// over counters other processes may be changing.)
#[cfg(target_os = "linux")]
fn allocate(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain system call on a file descriptor we own; mode 0 only allocates.
    let allocated = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, BOARD_BYTES as libc::off_t) };
    match allocated {
        0 => Ok(()),
        _ => match std::io::Error::last_os_error() {
            error if error.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
            error => Err(error),
        },
    }
}

#[cfg(not(target_os = "linux"))]
fn allocate(_file: &File) -> std::io::Result<()> {
    Ok(())
}

fn not_a_board() -> std::io::Error {
    std::io::Error::other("the file is not an easycaching board")
}

/// Marks held as OFD locks on bytes of the board file: one byte per mark, from
/// [`presence::FIRST_BYTE`].
#[cfg(target_os = "linux")]
mod presence {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    /// The byte of mark 0 (which nobody holds): far past the end of the board.
    pub(super) const FIRST_BYTE: i64 = 1 << 40;

    /// The lock on `mark`'s byte, as `fcntl` takes it; `None` for a mark past the last byte.
    fn lock_of(mark: u64, kind: libc::c_int) -> Option<libc::flock> {
        let start = libc::off_t::try_from(i64::try_from(mark).ok()?.checked_add(FIRST_BYTE)?).ok()?;
        // SAFETY: `flock` is plain data, for which all zeros is a valid value.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = kind as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        lock.l_start = start;
        lock.l_len = 1;
        Some(lock)
    }

    /// Holds `mark` for as long as `file` (this opening of it) stays open. Fails with
    /// `WouldBlock` when another holds it.
    pub(super) fn hold(file: &File, mark: u64) -> std::io::Result<()> {
        let mut lock =
            lock_of(mark, libc::F_WRLCK).ok_or_else(|| std::io::Error::other("mark out of range"))?;
        // SAFETY: F_OFD_SETLK reads the `flock` it is given and writes nothing to memory.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut lock) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether nobody holds `mark` (this opening of `file` aside: its own lock never
    /// conflicts with itself). When the kernel cannot tell, the mark counts as held.
    pub(super) fn is_free(file: &File, mark: u64) -> bool {
        let Some(mut lock) = lock_of(mark, libc::F_WRLCK) else { return false };
        // SAFETY: F_OFD_GETLK reads the `flock` it is given and writes the answer into it.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
        rc == 0 && lock.l_type == libc::F_UNLCK as libc::c_short
    }
}

/// Without OFD locks nobody can tell a mark is gone: the board's slots are not shared.
#[cfg(not(target_os = "linux"))]
mod presence {
    use std::fs::File;

    pub(super) fn hold(_file: &File, _mark: u64) -> std::io::Result<()> {
        Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "no OFD locks here"))
    }

    pub(super) fn is_free(_file: &File, _mark: u64) -> bool {
        false
    }
}

/// Waiting on a word of shared memory across processes.
#[cfg(target_os = "linux")]
mod futex {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    /// Sleeps while `word` holds `expected`, at most `timeout` (spurious wake-ups allowed).
    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
        let timeout = libc::timespec {
            tv_sec: timeout.as_secs().try_into().unwrap_or(libc::time_t::MAX),
            tv_nsec: timeout.subsec_nanos().into(),
        };
        // SAFETY: FUTEX_WAIT (shared: no FUTEX_PRIVATE_FLAG, as the word is in a shared
        // mapping) reads the aligned word and sleeps; it writes nothing.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, &timeout);
        }
    }

    /// Wakes up to `waiters` processes waiting on `word`.
    pub(super) fn wake(word: &AtomicU32, waiters: i32) {
        // SAFETY: FUTEX_WAKE only wakes waiters; it reads nothing of the word.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, waiters);
        }
    }
}

/// Elsewhere, waiting is polling.
#[cfg(not(target_os = "linux"))]
mod futex {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
        if word.load(Ordering::SeqCst) == expected {
            std::thread::sleep(timeout.min(Duration::from_micros(50)));
        }
    }

    pub(super) fn wake(_word: &AtomicU32, _waiters: i32) {}
}

/// Other processes' marks, for tests: another opening of the board holds a mark exactly as
/// another process's would.
#[cfg(test)]
pub(super) mod test_processes {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::Board;

    /// Another process, as far as the board of `db` can tell, alive while the test runs (to
    /// hold the write turn, say).
    pub(in crate::store::sqlite) struct OtherProcess(Board);

    impl OtherProcess {
        pub(in crate::store::sqlite) fn start(db: &Path) -> OtherProcess {
            let board = Board::open(db);
            assert!(board.is_shared());
            OtherProcess(board)
        }

        /// Its mark on the board (see [`Board::me`]).
        pub(in crate::store::sqlite) fn mark(&self) -> u64 {
            self.0.me()
        }
    }

    /// The mark of a process that has ended, on the board of `db`: once `is_gone` says so.
    pub(in crate::store::sqlite) fn gone_mark(db: &Path) -> u64 {
        let mark = OtherProcess::start(db).mark();
        wait_until_gone(&Board::open(db), mark);
        mark
    }

    /// Waits until `board` sees `mark` gone, at most 10 s. A closed opening's mark is not gone
    /// at once when a process is forked meanwhile (by a test on another thread spawning a
    /// command, say): the child holds a copy of the board file, and with it the mark, until it
    /// closes the copy or `exec`s.
    pub(in crate::store::sqlite) fn wait_until_gone(board: &Board, mark: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !board.is_gone(mark) {
            assert!(Instant::now() < deadline, "mark {mark} is still held 10 s after it was closed");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_takes_the_permissions_of_its_database_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o666, 0o600, 0o640] {
            let db = dir.path().join(format!("{mode:o}.db"));
            File::create(&db).unwrap().set_permissions(std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(Board::open(&db).is_shared());
            let board = std::fs::metadata(board_path(&db)).unwrap().permissions().mode() & 0o777;
            assert_eq!(board, mode, "the board of a database of mode {mode:o}");
        }
    }

    #[test]
    fn two_boards_of_one_database_share_their_counters() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let (first, second) = (Board::open(&db), Board::open(&db));
        assert!(first.is_shared() && second.is_shared());
        first.counters().begun.store(7, Ordering::SeqCst);
        assert_eq!(second.counters().begun.load(Ordering::SeqCst), 7);

        let word = &second.counters().fsync_ended;
        let seen = word.load(Ordering::SeqCst);
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| second.wait(word, seen, Duration::from_secs(5)));
            std::thread::sleep(Duration::from_millis(10));
            first.bump(&first.counters().fsync_ended, 1);
            assert!(waiter.join().unwrap(), "the bump on one board wakes a waiter on the other");
        });
        assert!(!second.wait(word, seen + 1, Duration::from_millis(5)), "nothing bumped: timed out");
    }

    #[test]
    fn a_file_that_is_not_a_board_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        std::fs::write(board_path(&db), vec![7u8; 4096]).unwrap();
        let board = Board::open(&db);
        assert!(!board.is_shared());
        assert_eq!(std::fs::read(board_path(&db)).unwrap(), vec![7u8; 4096]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_mark_is_held_while_its_board_is_open_and_gone_once_it_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let (first, second) = (Board::open(&db), Board::open(&db));
        assert_ne!(first.me(), second.me(), "each opening draws a mark of its own");
        assert!(!first.is_gone(first.me()) && !first.is_gone(second.me()) && !second.is_gone(first.me()));
        let closed = second.me();
        drop(second);
        test_processes::wait_until_gone(&first, closed);
        assert!(first.is_gone(first.me() + 100), "a mark never drawn is nobody's");
        assert!(!first.is_gone(u64::MAX), "a mark the kernel cannot check counts as held");
        assert!(!Board::local().is_gone(closed), "on a board of its own, nobody else is gone");
    }

    #[test]
    fn a_board_out_of_marks_or_with_a_name_out_of_range_is_not_shared() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let first = Board::open(&db);
        assert!((1..IDS_END).contains(&first.id()));
        assert_eq!(Board::open(&db).id(), first.id(), "one board, one name");
        // The last mark a slot's word can hold, then none: the next opening is alone.
        first.counters().marks.store(MARKS_END - 2, Ordering::SeqCst);
        let last = Board::open(&db);
        assert!(last.is_shared() && last.me() == MARKS_END - 1);
        assert!(!Board::open(&db).is_shared(), "a mark past 56 bits would be cut short in a slot");
        first.counters().marks.store(u64::MAX, Ordering::SeqCst);
        assert!(!Board::open(&db).is_shared(), "the counter wrapped to 0, which is nobody");
        first.counters().marks.store(1, Ordering::SeqCst);
        first.counters().id.store(IDS_END, Ordering::SeqCst);
        assert!(!Board::open(&db).is_shared(), "a name past 40 bits would not fit a row key");
    }

    /// In another PID namespace, or killed and not yet reaped, a process's id says nothing
    /// true; its lock does.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_killed_is_gone_before_it_is_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let board = Board::open(&db);
        // A mark held by a child alone: held through a file the child inherits, closed here.
        let file = OpenOptions::new().read(true).write(true).open(board_path(&db)).unwrap();
        let mark = board.me() + 1000;
        presence::hold(&file, mark).unwrap();
        let keep = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: the child calls nothing but `close` and `pause`, which are async-signal-safe,
        // until it is killed. It closes what it inherited but `file`, so that the boards of
        // tests running meanwhile on other threads keep no mark alive through it.
        let child = unsafe { libc::fork() };
        if child == 0 {
            for fd in (3..4096).filter(|fd| *fd != keep) {
                unsafe { libc::close(fd) };
            }
            loop {
                unsafe { libc::pause() };
            }
        }
        assert!(child > 0, "fork failed");
        /// Kills and reaps the child whatever the test does.
        struct Reaped(libc::pid_t);
        impl Drop for Reaped {
            fn drop(&mut self) {
                let mut status = 0;
                // SAFETY: signals and reaps a child of this test.
                unsafe {
                    libc::kill(self.0, libc::SIGKILL);
                    libc::waitpid(self.0, &mut status, 0);
                }
            }
        }
        let _reaped = Reaped(child);
        drop(file);
        assert!(!board.is_gone(mark), "the child holds it");
        // SAFETY: signals a child of this test.
        unsafe { libc::kill(child, libc::SIGKILL) };
        test_processes::wait_until_gone(&board, mark);
        // SAFETY: as above; signal 0 only checks that the process exists.
        assert_eq!(unsafe { libc::kill(child, 0) }, 0, "not reaped yet: a zombie, whose pid still answers");
    }
}
