//! Processes that write one database queue for its write lock in the kernel.
//!
//! SQLite's write lock is a lock that never blocks: a connection that finds it taken returns
//! `SQLITE_BUSY` to its busy handler, which sleeps and tries again. With 8 processes writing,
//! most of a commit's turn went to sleeping past the moment the lock came free, and to failed
//! attempts (15 lock calls a write). So before it asks SQLite for the write lock, a writer takes
//! a lock of ours that blocks: an open-file-description lock on a byte of the board file
//! (`<database>-turns`, see `fsync_board`). Writers wait for it asleep in the kernel, which
//! hands it to the next one the moment it is released, and when they ask SQLite next, its lock
//! is free. The kernel releases the lock of a process that dies, and nobody holds it outside a
//! write transaction. Nor while waiting for SQLite's lock: should a writer find SQLite's lock
//! taken all the same (by a writer that is not easycaching, or one opening the database), it
//! gives its turn up before its busy handler waits, so the writers queued behind it do not wait
//! for its wait, and every writer still gives up after its own `busy_timeout`.
//!
//! Where there are no such locks (not Linux), or the file cannot be opened, nothing is queued
//! and SQLite's busy handler does all the waiting.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// The queue for the write lock of one database, for one writing connection.
pub(super) struct WriteTurns {
    /// The board file, opened for its lock alone. `None` when writers do not queue.
    file: Option<File>,
    /// Whether the turn is ours now.
    held: AtomicBool,
}

/// This writer's turn, given up when it drops (or earlier, with [`WriteTurns::give_up`]).
pub(super) struct WriteTurn<'a> {
    turns: &'a WriteTurns,
}

impl WriteTurns {
    /// The queue of the database whose board is at `board`.
    pub(super) fn open(board: &Path) -> WriteTurns {
        let file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(board);
        WriteTurns { file: file.ok(), held: AtomicBool::new(false) }
    }

    /// Waits for this writer's turn (asleep, behind the writers of other processes).
    pub(super) fn take(&self) -> WriteTurn<'_> {
        if let Some(file) = &self.file
            && ofd::lock(file, true)
        {
            self.held.store(true, Ordering::Release);
        }
        WriteTurn { turns: self }
    }

    /// Gives the turn up, if it is ours, to the next writer in the queue.
    pub(super) fn give_up(&self) {
        if self.held.swap(false, Ordering::AcqRel)
            && let Some(file) = &self.file
        {
            ofd::lock(file, false);
        }
    }

    /// Whether the turn is ours.
    #[cfg(test)]
    fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }
}

impl Drop for WriteTurn<'_> {
    fn drop(&mut self) {
        self.turns.give_up();
    }
}

/// Open-file-description locks (Linux 3.15 and later): owned by an open file, not a process,
/// so they neither conflict between threads nor vanish when another descriptor of the file is
/// closed, and `F_OFD_SETLKW` waits for a lock in the kernel.
#[cfg(target_os = "linux")]
mod ofd {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    /// The byte locked: past the counters the board maps, which locks do not touch anyway.
    const TURN_BYTE: libc::off_t = 8192;

    /// Takes (waiting for it) or releases the lock; false when the system refused.
    pub(super) fn lock(file: &File, take: bool) -> bool {
        // SAFETY: an all-zero `flock` is valid (l_pid must be 0 for OFD locks).
        let mut request: libc::flock = unsafe { std::mem::zeroed() };
        request.l_type = if take { libc::F_WRLCK } else { libc::F_UNLCK } as libc::c_short;
        request.l_whence = libc::SEEK_SET as libc::c_short;
        request.l_start = TURN_BYTE;
        request.l_len = 1;
        let command = if take { libc::F_OFD_SETLKW } else { libc::F_OFD_SETLK };
        loop {
            // SAFETY: `file` is open and `request` a valid `flock` the call only reads.
            let rc = unsafe { libc::fcntl(file.as_raw_fd(), command, &request) };
            if rc == 0 {
                return true;
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return false;
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod ofd {
    use std::fs::File;

    pub(super) fn lock(_file: &File, _take: bool) -> bool {
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_second_writer_waits_for_the_first_to_finish() {
        let dir = tempfile::tempdir().unwrap();
        let board = dir.path().join("t.db-turns");
        std::fs::write(&board, b"").unwrap();
        let first = WriteTurns::open(&board);
        let second = WriteTurns::open(&board);
        let turn = first.take();
        assert!(first.is_held());
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let _turn = second.take();
                second.is_held()
            });
            std::thread::sleep(Duration::from_millis(20));
            assert!(!waiter.is_finished(), "the second writer waits its turn");
            drop(turn);
            assert!(waiter.join().unwrap());
        });
        assert!(!first.is_held() && !second.is_held());
    }

    #[test]
    fn a_turn_given_up_early_lets_the_next_writer_in() {
        let dir = tempfile::tempdir().unwrap();
        let board = dir.path().join("t.db-turns");
        let first = WriteTurns::open(&board);
        let second = WriteTurns::open(&board);
        let _turn = first.take();
        first.give_up();
        let _next = second.take();
        assert!(second.is_held() && !first.is_held());
    }
}
