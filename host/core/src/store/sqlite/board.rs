//! The board: a page of counters beside the database (`<database>-turns`), mapped into every
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

use std::fs::OpenOptions;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memmap2::MmapMut;

use super::handoffs::{SLOT_BYTES, SLOTS, Slot};
use crate::store::{AtomicChangeToken, ChangeToken};

/// Written once into a new board; a file holding anything else is left alone.
const MAGIC: u64 = u64::from_le_bytes(*b"ecturns1");
/// Where the slots begin: the counters have the first page.
const SLOTS_AT: usize = 4096;
/// The size of the board file: the counters' page and the slots. (A board made by an older
/// build, of the counters alone, grows when a newer one opens it.)
const BOARD_BYTES: u64 = (SLOTS_AT + SLOTS * SLOT_BYTES) as u64;

/// The counters, laid out as they are in the board file. Each is explained where it is used.
#[repr(C)]
pub(super) struct Counters {
    magic: AtomicU64,
    /// Fsyncs begun (`fsync_board`).
    pub(super) begun: AtomicU64,
    /// The highest fsync number that completed.
    pub(super) completed: AtomicU64,
    /// The process fsyncing now (its pid + 1), 0 when none.
    pub(super) in_flight: AtomicU64,
    /// Failed fsyncs, ever.
    pub(super) failures: AtomicU64,
    /// Bumped whenever an fsync ends (a futex word).
    pub(super) fsync_ended: AtomicU32,
    /// The process whose writer holds the turn to write (its pid + 1), 0 when none
    /// (`write_turns`).
    pub(super) writer: AtomicU64,
    /// Writers waiting for the turn.
    pub(super) writers_waiting: AtomicU32,
    /// Bumped whenever a writer gives its turn up (a futex word).
    pub(super) write_turn_ended: AtomicU32,
    /// The token every commit up to which is durable, stored inverted (`fsync_board`).
    pub(super) synced: AtomicChangeToken,
}

/// The board of one database.
pub(super) struct Board {
    place: Place,
    /// This process's mark, read once: `getpid` is a system call, and a writer needed it
    /// twice a write.
    me: u64,
}

enum Place {
    Shared(MmapMut),
    Local(Box<Counters>),
}

impl Board {
    /// The board of the database at `db`, shared with every other process that has it open;
    /// this process's alone when the board file cannot be made or mapped.
    pub(super) fn open(db: &Path) -> Board {
        let path = board_path(db);
        match map(&path) {
            Ok(map) => Board { place: Place::Shared(map), me: own_mark() },
            Err(error) => {
                tracing::debug!(board = %path.display(), %error, "writers and fsyncs are not shared with other processes");
                Board::local()
            }
        }
    }

    /// A board that only this process uses.
    pub(super) fn local() -> Board {
        Board { place: Place::Local(Box::new(Counters::new())), me: own_mark() }
    }

    /// Whether other processes share this board.
    pub(super) fn is_shared(&self) -> bool {
        matches!(self.place, Place::Shared(_))
    }

    /// The counters.
    pub(super) fn counters(&self) -> &Counters {
        match &self.place {
            // SAFETY: the map is `BOARD_BYTES` long (see `map`), page-aligned, and lives as
            // long as `self`; `Counters` is made of atomics, which any bit pattern is valid
            // for and which other processes only ever touch atomically.
            Place::Shared(map) => unsafe { &*map.as_ptr().cast::<Counters>() },
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
            Place::Shared(map) => unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(SLOTS_AT).cast::<Slot>(), SLOTS)
            },
            Place::Local(_) => &[],
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
                Place::Shared(_) => futex::wait(word, seen, left),
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
            && let Place::Shared(_) = self.place
        {
            futex::wake(word, waiters);
        }
    }

    /// This process's mark on the board: its pid + 1 (never 0, which means nobody), as it
    /// was when the board was opened.
    pub(super) fn me(&self) -> u64 {
        self.me
    }

    /// Whether the process that left `mark` (see [`Board::me`]) is gone.
    pub(super) fn is_gone(mark: u64) -> bool {
        process_is_gone(mark.saturating_sub(1))
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
        }
    }
}

/// The mark of the calling process: its pid + 1.
fn own_mark() -> u64 {
    u64::from(std::process::id()) + 1
}

/// `<database>-turns`, beside SQLite's `-wal` and `-shm`.
fn board_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-turns");
    PathBuf::from(name)
}

/// Maps the board file, making it (zeroed, then marked as a board) when it is new.
fn map(path: &Path) -> std::io::Result<MmapMut> {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    let len = file.metadata()?.len();
    if len > 0 {
        // Not grown before it is known to be a board (or a new one, all zeros).
        let mut magic = [0; 8];
        (&file).read_exact(&mut magic)?;
        if !matches!(u64::from_le_bytes(magic), 0 | MAGIC) {
            return Err(not_a_board());
        }
    }
    if len < BOARD_BYTES {
        // Growing only ever adds zeros; two processes doing it at once agree.
        file.set_len(BOARD_BYTES)?;
    }
    // SAFETY: the file is at least `BOARD_BYTES` long and never shrinks (nothing truncates a
    // board); its contents are only read through atomics (see `Board::counters`).
    let map = unsafe { memmap2::MmapOptions::new().len(BOARD_BYTES as usize).map_mut(&file)? };
    // SAFETY: as in `Board::counters`.
    let counters = unsafe { &*map.as_ptr().cast::<Counters>() };
    match counters.magic.compare_exchange(0, MAGIC, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) | Err(MAGIC) => Ok(map),
        Err(_) => Err(not_a_board()),
    }
}

fn not_a_board() -> std::io::Error {
    std::io::Error::other("the file is not an easycaching board")
}

/// Whether no process `pid` exists (as far as this process can tell: in another PID
/// namespace it may be someone else's).
#[cfg(unix)]
fn process_is_gone(pid: u64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return true };
    // SAFETY: signal 0 sends nothing; it only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

#[cfg(not(unix))]
fn process_is_gone(_pid: u64) -> bool {
    false
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

/// Processes for tests to mark the board with: one that lives while the test runs, one gone.
#[cfg(test)]
pub(super) mod test_processes {
    /// Another process, alive while the test runs (to hold the write turn, say).
    pub(in crate::store::sqlite) struct OtherProcess(std::process::Child);

    impl OtherProcess {
        pub(in crate::store::sqlite) fn start() -> OtherProcess {
            OtherProcess(std::process::Command::new("sleep").arg("60").spawn().unwrap())
        }

        /// Its mark on the board (see [`super::Board::me`]).
        pub(in crate::store::sqlite) fn mark(&self) -> u64 {
            u64::from(self.0.id()) + 1
        }
    }

    impl Drop for OtherProcess {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// The mark of a process that has exited.
    pub(in crate::store::sqlite) fn gone_mark() -> u64 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let mark = u64::from(child.id()) + 1;
        child.wait().unwrap();
        mark
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_process_that_exited_is_gone_and_this_one_is_not() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = u64::from(child.id());
        child.wait().unwrap();
        assert!(process_is_gone(pid));
        assert!(!process_is_gone(u64::from(std::process::id())));
        assert!(!Board::is_gone(Board::local().me()));
    }
}
