//! Processes that write one database queue for its write lock.
//!
//! SQLite's write lock is a lock that never blocks: a connection that finds it taken returns
//! `SQLITE_BUSY` to its busy handler, which sleeps and tries again. With 8 processes writing,
//! most of a commit's turn went to sleeping past the moment the lock came free, and to failed
//! attempts (15 lock calls a write). So before it asks SQLite for the write lock, a writer takes
//! a turn on the board (see `board`): a word holding the mark of the board opening whose
//! writer has it. A writer that finds the turn taken sleeps on a futex until the holder gives
//! it up and wakes the next one, so when it asks SQLite, its lock is free; taking a free turn
//! is one compare-and-swap. Nobody holds a turn outside a write transaction, nor while waiting for
//! SQLite's lock: a writer that finds that lock held all the same (by a writer that is not
//! easycaching, or one opening the database) gives its turn up before its busy handler waits.
//!
//! The turn only ever saves waiting: SQLite's lock still keeps writers apart. So a writer
//! waiting for it looks every few milliseconds whether the holder's process still lives, and
//! takes the turn over from one that died in the middle of a transaction; and it waits at most
//! until its transaction's waits end (for a holder stopped in a debugger, say), then takes the
//! turn anyway and goes to SQLite, whose lock gets the clear "stayed locked" error. A write
//! transaction's waits (handing its write over, this turn, SQLite's lock) end together, its
//! `busy_timeout` after it began ([`WriteTurns::waits`]), not each a `busy_timeout` after the
//! last. Without a shared board, nothing is queued and SQLite's busy handler does all the
//! waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::board::Board;

/// How long a waiting writer sleeps before it looks at the holder on its own (a holder that
/// died wakes nobody).
const RECHECK: Duration = Duration::from_millis(2);

/// The queue for the write lock of one database, for one writing connection.
pub(super) struct WriteTurns {
    board: Arc<Board>,
    /// Whether the turn is ours now.
    held: AtomicBool,
    /// How long the waits of one write transaction take at most, all together.
    patience: Duration,
    /// When the waits of the transaction under way end, in nanoseconds after `origin`;
    /// [`NO_WAITS`] outside one.
    waits_end: AtomicU64,
    origin: Instant,
}

/// [`WriteTurns::waits_end`] outside a write transaction.
const NO_WAITS: u64 = u64::MAX;

/// The waits of one write transaction, which end together at `deadline`. Made by
/// [`WriteTurns::waits`].
pub(super) struct Waits<'a> {
    turns: &'a WriteTurns,
    pub(super) deadline: Instant,
}

impl Drop for Waits<'_> {
    fn drop(&mut self) {
        self.turns.waits_end.store(NO_WAITS, Ordering::Relaxed);
    }
}

/// This writer's turn, given up when it drops (or earlier, with [`WriteTurns::give_up`]).
pub(super) struct WriteTurn<'a> {
    turns: &'a WriteTurns,
}

impl WriteTurns {
    /// The queue on `board`; a write transaction waits at most `patience` in all.
    pub(super) fn new(board: Arc<Board>, patience: Duration) -> WriteTurns {
        let origin = Instant::now();
        WriteTurns {
            board,
            held: AtomicBool::new(false),
            patience,
            waits_end: AtomicU64::new(NO_WAITS),
            origin,
        }
    }

    /// Begins the waits of a write transaction: they end `patience` from now, until the
    /// [`Waits`] drop.
    pub(super) fn waits(&self) -> Waits<'_> {
        let deadline = super::connection::deadline_after(self.patience);
        let nanos = deadline.duration_since(self.origin).as_nanos();
        self.waits_end.store(u64::try_from(nanos).unwrap_or(NO_WAITS - 1), Ordering::Relaxed);
        Waits { turns: self, deadline }
    }

    /// When the waits of the write transaction under way end, for SQLite's busy handler;
    /// `None` outside one.
    pub(super) fn waits_end(&self) -> Option<Instant> {
        match self.waits_end.load(Ordering::Relaxed) {
            NO_WAITS => None,
            nanos => Some(self.origin + Duration::from_nanos(nanos)),
        }
    }

    /// Waits for this writer's turn, asleep, behind the writers of other processes, until
    /// `deadline` at most.
    pub(super) fn take(&self, deadline: Instant) -> WriteTurn<'_> {
        if !self.board.is_shared() {
            return WriteTurn { turns: self };
        }
        let counters = self.board.counters();
        let me = self.board.me();
        loop {
            let ended = counters.write_turn_ended.load(Ordering::SeqCst);
            let holder = match counters.writer.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(holder) => holder,
            };
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                // Held all this while: its holder is stuck. Take it over.
                if counters.writer.compare_exchange(holder, me, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                    break;
                }
                continue;
            };
            counters.writers_waiting.fetch_add(1, Ordering::SeqCst);
            let woken = self.board.wait(&counters.write_turn_ended, ended, left.min(RECHECK));
            counters.writers_waiting.fetch_sub(1, Ordering::SeqCst);
            if !woken {
                free_if_gone(&self.board, holder);
            }
        }
        self.held.store(true, Ordering::Release);
        WriteTurn { turns: self }
    }

    /// Gives the turn up, if it is ours, and wakes the next writer waiting.
    pub(super) fn give_up(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            // Unless another took it over meanwhile.
            free(&self.board, self.board.me());
        }
    }

    /// Whether the turn is ours.
    #[cfg(test)]
    fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }
}

/// The board opening whose writer holds the turn on `board`, when that is another than
/// `board`'s own.
pub(super) fn held_elsewhere(board: &Board) -> Option<u64> {
    let holder = board.counters().writer.load(Ordering::SeqCst);
    (holder != 0 && holder != board.me()).then_some(holder)
}

/// Frees the turn held by `holder` when that opening is gone (killed in the middle of a
/// transaction: it gives nothing up and wakes nobody), and wakes the next writer waiting.
/// Whether it was gone.
pub(super) fn free_if_gone(board: &Board, holder: u64) -> bool {
    let gone = board.is_gone(holder);
    if gone {
        free(board, holder);
    }
    gone
}

/// Frees the turn if `holder` has it, and wakes the next writer waiting.
fn free(board: &Board, holder: u64) {
    let counters = board.counters();
    let _ = counters.writer.compare_exchange(holder, 0, Ordering::SeqCst, Ordering::SeqCst);
    let waiting = counters.writers_waiting.load(Ordering::SeqCst);
    board.bump(&counters.write_turn_ended, waiting.min(1) as i32);
}

impl Drop for WriteTurn<'_> {
    fn drop(&mut self) {
        self.turns.give_up();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::board::test_processes::gone_mark;

    /// Two queues of one database, as two processes would have them.
    fn two(dir: &tempfile::TempDir, patience: Duration) -> (WriteTurns, WriteTurns) {
        let db = dir.path().join("t.db");
        let open = || WriteTurns::new(Arc::new(Board::open(&db)), patience);
        (open(), open())
    }

    #[test]
    fn a_second_writer_waits_for_the_first_and_is_woken_when_it_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = two(&dir, Duration::from_secs(10));
        let turn = first.take(first.waits().deadline);
        assert!(first.is_held());
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let started = Instant::now();
                let _turn = second.take(second.waits().deadline);
                (second.is_held(), started.elapsed())
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(!waiter.is_finished(), "the second writer waits its turn");
            drop(turn);
            let (held, waited) = waiter.join().unwrap();
            assert!(held);
            assert!(waited < Duration::from_secs(5), "woken when the turn was given up: {waited:?}");
        });
        assert!(!first.is_held() && !second.is_held());
    }

    #[test]
    fn a_turn_given_up_early_lets_the_next_writer_in() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = two(&dir, Duration::from_secs(10));
        let _turn = first.take(first.waits().deadline);
        first.give_up();
        let _next = second.take(second.waits().deadline);
        assert!(second.is_held() && !first.is_held());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_turn_held_by_a_process_that_is_gone_is_taken_over_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (turns, _) = two(&dir, Duration::from_secs(10));
        let gone = gone_mark(&dir.path().join("t.db"));
        turns.board.counters().writer.store(gone, Ordering::SeqCst);
        let started = Instant::now();
        let _turn = turns.take(turns.waits().deadline);
        assert!(turns.is_held());
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[test]
    fn a_turn_held_too_long_is_taken_over_after_the_patience() {
        let dir = tempfile::tempdir().unwrap();
        let patience = Duration::from_millis(100);
        let (first, second) = two(&dir, patience);
        let _stuck = first.take(first.waits().deadline);
        let started = Instant::now();
        let _turn = second.take(second.waits().deadline);
        assert!(second.is_held(), "it took the turn over");
        assert!(started.elapsed() >= patience && started.elapsed() < patience * 5, "{:?}", started.elapsed());
    }
}
