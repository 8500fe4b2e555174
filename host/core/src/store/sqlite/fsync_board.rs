//! Fsyncs shared between the processes writing one database.
//!
//! Each process makes its commits durable itself (see `durable`). Left to themselves, 8
//! processes that commit one after another each fsync the WAL once per commit, 8 flushes in
//! flight at once, where one flush begun after all 8 commits would cover them all: an fsync
//! makes durable everything written to the file before it began, whoever wrote it. The board
//! is a small file of counters next to the database (`<database>-turns`), mapped into every
//! process, through which they take turns:
//!
//! - `begun` numbers fsyncs as they begin; a commit (or a read) notes `begun + 1` as its
//!   *ticket* right after it, and any fsync numbered at least that began after it.
//! - `completed` is the highest number whose fsync succeeded: everything holding a ticket up to
//!   it is durable, in whichever process it committed.
//! - `in_flight` lets one fsync run at a time. A process that needs one while another is in
//!   flight waits for it (on a futex, on Linux) and then looks again: most often the next fsync
//!   has begun meanwhile, for someone else's commit after its own, and covers it too.
//! - `synced` is the wal-index token read just before the last fsync that completed began (or
//!   right after a commit SQLite fsynced inside itself): a reader that sees that very token
//!   has seen nothing that is not durable, whoever fsynced it.
//! - `failures` counts failed fsyncs. A process that sees it change refuses to go on, as it
//!   does after a failure of its own: pages that failed to write may be gone.
//!
//! Nothing in the board is needed for correctness across a crash: the counters only ever grow,
//! a process that dies holding `in_flight` is found gone within milliseconds (one whose fsync
//! hangs is waited for [`STALE_FSYNC`] at most), after which two fsyncs may run at once, which
//! is only redundant (so a wrong guess either way costs time, never durability); and a
//! database whose board cannot be made (a read-only directory) keeps the counters in memory,
//! where they serve the threads of one process, as before.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memmap2::MmapMut;

use crate::store::{AtomicChangeToken, ChangeToken};

/// Written once into a new board; a file holding anything else is left alone.
const MAGIC: u64 = u64::from_le_bytes(*b"ecfsync1");
/// The size of the board file: one page.
const BOARD_BYTES: u64 = 4096;
/// How long an fsync in flight in another process is waited for before this process fsyncs
/// anyway: far above a healthy fsync, small enough that a process killed in the middle of one
/// costs the others little.
pub(super) const STALE_FSYNC: Duration = Duration::from_millis(50);
/// How often a process waiting for an fsync in flight looks whether its holder still lives.
const LIVENESS_CHECK: Duration = Duration::from_millis(2);

/// The counters, laid out as they are in the board file.
#[repr(C)]
struct Counters {
    magic: AtomicU64,
    begun: AtomicU64,
    completed: AtomicU64,
    in_flight: AtomicU64,
    failures: AtomicU64,
    /// Bumped whenever an fsync ends, to wake the processes waiting for it (a futex word).
    ended: AtomicU32,
    /// The token every commit up to which is durable, stored inverted (see [`inverted`]).
    synced: AtomicChangeToken,
}

/// The fsync counters of one database: shared through the board file when it could be mapped,
/// in this process's memory otherwise.
pub(super) struct FsyncBoard {
    place: Place,
    /// `failures` when this process opened the board.
    failures_at_open: u64,
}

enum Place {
    Shared(MmapMut),
    Local(Box<Counters>),
}

/// What became of a turn at the board.
pub(super) enum Turn {
    /// An fsync numbered at least the ticket has completed: nothing to do.
    Covered,
    /// This process holds the turn: fsync, then [`FsyncBoard::end`] with this number.
    Fsync(u64),
}

impl FsyncBoard {
    /// The board of the database at `db`, shared with every other process that has it open;
    /// this process's alone when the board file cannot be made or mapped.
    pub(super) fn open(path: &Path) -> FsyncBoard {
        let place = match map(path) {
            Ok(map) => Place::Shared(map),
            Err(error) => {
                tracing::debug!(board = %path.display(), %error, "fsyncs are not shared with other processes");
                Place::Local(Box::new(Counters::new()))
            }
        };
        let mut board = FsyncBoard { place, failures_at_open: 0 };
        board.failures_at_open = board.counters().failures.load(Ordering::Acquire);
        board
    }

    /// A board that only this process uses.
    #[cfg(test)]
    pub(super) fn local() -> FsyncBoard {
        FsyncBoard { place: Place::Local(Box::new(Counters::new())), failures_at_open: 0 }
    }

    /// Whether other processes share this board.
    #[cfg(test)]
    pub(super) fn is_shared(&self) -> bool {
        matches!(self.place, Place::Shared(_))
    }

    fn counters(&self) -> &Counters {
        match &self.place {
            // SAFETY: the map is `BOARD_BYTES` long (see `map`), page-aligned, and lives as
            // long as `self`; `Counters` is made of atomics, which any bit pattern is valid
            // for and which other processes only ever touch atomically.
            Place::Shared(map) => unsafe { &*map.as_ptr().cast::<Counters>() },
            Place::Local(counters) => counters,
        }
    }

    /// The ticket of something that has just happened: the number of the next fsync to begin.
    pub(super) fn ticket(&self) -> u64 {
        self.counters().begun.load(Ordering::SeqCst) + 1
    }

    /// Whether an fsync numbered at least `ticket` has completed.
    pub(super) fn covers(&self, ticket: u64) -> bool {
        self.counters().completed.load(Ordering::Acquire) >= ticket
    }

    /// Whether every commit up to `token` is known durable: the last fsync to complete began
    /// at this very token.
    pub(super) fn synced_at(&self, token: ChangeToken) -> bool {
        self.counters().synced.matches(inverted(token))
    }

    /// Records that every commit up to `token` is durable.
    pub(super) fn record_synced(&self, token: ChangeToken) {
        self.counters().synced.store(inverted(token));
    }

    /// The token recorded last.
    #[cfg(test)]
    pub(super) fn synced(&self) -> ChangeToken {
        inverted(self.counters().synced.load())
    }

    /// Whether an fsync failed in another process since this one opened the board.
    pub(super) fn failed_elsewhere(&self) -> bool {
        self.counters().failures.load(Ordering::Acquire) != self.failures_at_open
    }

    /// Waits for a turn to fsync for `ticket`, unless an fsync that covers it completes first.
    /// One process fsyncs at a time; the others wait for it to end and look again.
    pub(super) fn turn(&self, ticket: u64) -> Turn {
        let counters = self.counters();
        let me = u64::from(std::process::id()) + 1;
        loop {
            let ended = counters.ended.load(Ordering::SeqCst);
            if self.covers(ticket) {
                return Turn::Covered;
            }
            match counters.in_flight.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Turn::Fsync(counters.begun.fetch_add(1, Ordering::SeqCst) + 1),
                Err(holder) => {
                    let waiting = Instant::now();
                    while !self.wait_for_end(ended, LIVENESS_CHECK) {
                        // Its holder died in the middle of it, or its disk hangs: take over.
                        if process::is_gone(holder - 1) || waiting.elapsed() >= STALE_FSYNC {
                            let _ = counters.in_flight.compare_exchange(
                                holder,
                                0,
                                Ordering::SeqCst,
                                Ordering::SeqCst,
                            );
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Ends this process's turn: records fsync `number` as completed when it `succeeded` (as
    /// failed otherwise), and wakes whoever waits.
    pub(super) fn end(&self, number: u64, succeeded: bool) {
        let counters = self.counters();
        if succeeded {
            counters.completed.fetch_max(number, Ordering::SeqCst);
        } else {
            counters.failures.fetch_add(1, Ordering::SeqCst);
        }
        counters.in_flight.store(0, Ordering::SeqCst);
        counters.ended.fetch_add(1, Ordering::SeqCst);
        if let Place::Shared(_) = self.place {
            futex::wake_all(&counters.ended);
        }
    }

    /// Waits until `ended` moves on from `seen`, at most `timeout`; false when it did not.
    fn wait_for_end(&self, seen: u32, timeout: Duration) -> bool {
        let ended = &self.counters().ended;
        let deadline = Instant::now() + timeout;
        while ended.load(Ordering::SeqCst) == seen {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
            match self.place {
                Place::Shared(_) => futex::wait(ended, seen, left),
                // Only this process's threads use the counters, and `DurableMark` lets one of
                // them fsync at a time: nobody else can be in flight.
                Place::Local(_) => std::thread::sleep(left.min(Duration::from_micros(50))),
            }
        }
        true
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
            ended: AtomicU32::new(0),
            synced: AtomicChangeToken::new(ChangeToken([0, 0])),
        }
    }
}

/// A token with every bit flipped, as the board stores it: a new board, all zeros, then holds
/// all ones, which no real token is (its second word is a checksum), so it matches nothing.
fn inverted(token: ChangeToken) -> ChangeToken {
    ChangeToken(token.0.map(|word| !word))
}

/// `<database>-turns`, beside SQLite's `-wal` and `-shm`.
pub(super) fn board_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-turns");
    PathBuf::from(name)
}

/// Maps the board file, making it (zeroed, then marked as a board) when it is new.
fn map(path: &Path) -> std::io::Result<MmapMut> {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    if file.metadata()?.len() < BOARD_BYTES {
        // Growing only ever adds zeros; two processes doing it at once agree.
        file.set_len(BOARD_BYTES)?;
    }
    // SAFETY: the file is at least `BOARD_BYTES` long and never shrinks (nothing truncates a
    // board); its contents are only read through atomics (see `FsyncBoard::counters`).
    let map = unsafe { memmap2::MmapOptions::new().len(BOARD_BYTES as usize).map_mut(&file)? };
    // SAFETY: as in `FsyncBoard::counters`.
    let counters = unsafe { &*map.as_ptr().cast::<Counters>() };
    match counters.magic.compare_exchange(0, MAGIC, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => Ok(map),
        Err(MAGIC) => Ok(map),
        Err(_) => Err(std::io::Error::other("the file is not an easycaching fsync board")),
    }
}

/// Whether a process is still alive.
mod process {
    /// Whether no process `pid` exists (as far as this process can tell: in another PID
    /// namespace it may be someone else's).
    #[cfg(unix)]
    pub(super) fn is_gone(pid: u64) -> bool {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return true };
        // SAFETY: signal 0 sends nothing; it only checks that the process exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }

    #[cfg(not(unix))]
    pub(super) fn is_gone(_pid: u64) -> bool {
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

    /// Wakes every process waiting on `word`.
    pub(super) fn wake_all(word: &AtomicU32) {
        // SAFETY: FUTEX_WAKE only wakes waiters; it reads nothing of the word.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
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

    pub(super) fn wake_all(_word: &AtomicU32) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_boards_of_one_database_share_their_counters() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let first = FsyncBoard::open(&board_path(&db));
        let second = FsyncBoard::open(&board_path(&db));
        assert!(first.is_shared() && second.is_shared());

        let ticket = second.ticket();
        assert!(!second.covers(ticket));
        let Turn::Fsync(number) = first.turn(first.ticket()) else { panic!("nothing was in flight") };
        assert!(number >= ticket, "an fsync begun after a ticket was taken is numbered at least it");
        first.end(number, true);
        assert!(second.covers(ticket), "the other board sees the fsync completed");
        assert!(matches!(second.turn(ticket), Turn::Covered));

        let token = ChangeToken([7, 9]);
        assert_eq!(second.synced(), ChangeToken([u64::MAX; 2]), "a new board holds no real token");
        assert!(!second.synced_at(token));
        first.record_synced(token);
        assert!(second.synced_at(token), "the other board sees the token synced");
    }

    #[test]
    fn a_turn_in_flight_is_waited_for_and_a_stale_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let first = FsyncBoard::open(&board_path(&db));
        let second = FsyncBoard::open(&board_path(&db));
        let ticket = second.ticket();
        let Turn::Fsync(number) = first.turn(first.ticket()) else { panic!() };

        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| second.turn(ticket));
            std::thread::sleep(Duration::from_millis(5));
            assert!(!waiter.is_finished(), "one fsync at a time");
            first.end(number, true);
            assert!(
                matches!(waiter.join().unwrap(), Turn::Covered),
                "the fsync in flight covered the ticket"
            );
        });

        // A holder that never ends (a process killed mid-fsync) is taken over after a while.
        let Turn::Fsync(_) = first.turn(first.ticket()) else { panic!() };
        let started = Instant::now();
        let Turn::Fsync(taken) = second.turn(second.ticket()) else { panic!("nothing covers it") };
        assert!(started.elapsed() >= STALE_FSYNC);
        second.end(taken, true);
    }

    #[test]
    fn a_turn_held_by_a_process_that_is_gone_is_taken_over_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let board = FsyncBoard::open(&board_path(&dir.path().join("t.db")));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = u64::from(child.id());
        child.wait().unwrap();
        board.counters().in_flight.store(gone + 1, Ordering::SeqCst);
        let started = Instant::now();
        let Turn::Fsync(number) = board.turn(board.ticket()) else { panic!("nothing covers it") };
        assert!(started.elapsed() < STALE_FSYNC, "took {:?}", started.elapsed());
        board.end(number, true);
    }

    #[test]
    fn a_failed_fsync_is_seen_by_every_process() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let first = FsyncBoard::open(&board_path(&db));
        let second = FsyncBoard::open(&board_path(&db));
        let ticket = second.ticket();
        let Turn::Fsync(number) = first.turn(first.ticket()) else { panic!() };
        first.end(number, false);
        assert!(!second.covers(ticket), "a failed fsync covers nothing");
        assert!(second.failed_elsewhere());
        assert!(
            !FsyncBoard::open(&board_path(&db)).failed_elsewhere(),
            "a process opened later is not refused"
        );
    }

    #[test]
    fn a_file_that_is_not_a_board_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        std::fs::write(board_path(&db), vec![7u8; 4096]).unwrap();
        let board = FsyncBoard::open(&board_path(&db));
        assert!(!board.is_shared());
        assert_eq!(std::fs::read(board_path(&db)).unwrap(), vec![7u8; 4096]);
    }
}
