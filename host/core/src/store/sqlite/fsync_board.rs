//! Fsyncs shared between the processes writing one database.
//!
//! Each process makes its commits durable itself (see `durable`). Left to themselves, 8
//! processes that commit one after another each fsync the WAL once per commit, 8 flushes in
//! flight at once, where one flush begun after all 8 commits would cover them all: an fsync
//! makes durable everything written to the file before it began, whoever wrote it. So they
//! take turns through counters on the board (see `board`):
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
//! Nothing here is needed for correctness across a crash: the counters only ever grow, and a
//! process that dies holding `in_flight` is found gone within milliseconds (one whose fsync
//! hangs is waited for [`STALE_FSYNC`] at most), after which two fsyncs may run at once, which
//! is only redundant: a wrong guess either way costs time, never durability.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::board::Board;
use crate::store::ChangeToken;

/// How long an fsync in flight in another process is waited for before this process fsyncs
/// anyway: far above a healthy fsync, small enough that a process killed in the middle of one
/// costs the others little.
pub(super) const STALE_FSYNC: Duration = Duration::from_millis(50);
/// How often a process waiting for an fsync in flight looks whether its holder still lives.
const LIVENESS_CHECK: Duration = Duration::from_millis(2);

/// The fsync turns of one database.
pub(super) struct FsyncBoard {
    board: Arc<Board>,
    /// `failures` when this process opened the board.
    failures_at_open: u64,
}

/// What became of a turn at the board.
pub(super) enum Turn {
    /// An fsync numbered at least the ticket has completed: nothing to do.
    Covered,
    /// This process holds the turn: fsync, then [`FsyncBoard::end`] with this number.
    Fsync(u64),
}

impl FsyncBoard {
    /// The fsync turns kept on `board`.
    pub(super) fn new(board: Arc<Board>) -> FsyncBoard {
        let failures_at_open = board.counters().failures.load(Ordering::Acquire);
        FsyncBoard { board, failures_at_open }
    }

    /// The ticket of something that has just happened: the number of the next fsync to begin.
    pub(super) fn ticket(&self) -> u64 {
        self.board.counters().begun.load(Ordering::SeqCst) + 1
    }

    /// Whether an fsync numbered at least `ticket` has completed.
    pub(super) fn covers(&self, ticket: u64) -> bool {
        self.board.counters().completed.load(Ordering::Acquire) >= ticket
    }

    /// Whether every commit up to `token` is known durable: the last fsync to complete began
    /// at this very token.
    pub(super) fn synced_at(&self, token: ChangeToken) -> bool {
        self.board.counters().synced.matches(inverted(token))
    }

    /// Records that every commit up to `token` is durable.
    pub(super) fn record_synced(&self, token: ChangeToken) {
        self.board.counters().synced.store(inverted(token));
    }

    /// The token recorded last.
    #[cfg(test)]
    pub(super) fn synced(&self) -> ChangeToken {
        inverted(self.board.counters().synced.load())
    }

    /// Whether an fsync failed in another process since this one opened the board.
    pub(super) fn failed_elsewhere(&self) -> bool {
        self.board.counters().failures.load(Ordering::Acquire) != self.failures_at_open
    }

    /// Waits for a turn to fsync for `ticket`, unless an fsync that covers it completes first.
    /// One process fsyncs at a time; the others wait for it to end and look again.
    pub(super) fn turn(&self, ticket: u64) -> Turn {
        let counters = self.board.counters();
        let me = self.board.me();
        loop {
            let ended = counters.fsync_ended.load(Ordering::SeqCst);
            if self.covers(ticket) {
                return Turn::Covered;
            }
            match counters.in_flight.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Turn::Fsync(counters.begun.fetch_add(1, Ordering::SeqCst) + 1),
                Err(holder) => {
                    let waiting = Instant::now();
                    while !self.board.wait(&counters.fsync_ended, ended, LIVENESS_CHECK) {
                        // Its holder died in the middle of it, or its disk hangs: take over.
                        if self.board.is_gone(holder) || waiting.elapsed() >= STALE_FSYNC {
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
        let counters = self.board.counters();
        if succeeded {
            counters.completed.fetch_max(number, Ordering::SeqCst);
        } else {
            counters.failures.fetch_add(1, Ordering::SeqCst);
        }
        counters.in_flight.store(0, Ordering::SeqCst);
        self.board.bump(&counters.fsync_ended, i32::MAX);
    }
}

/// A token with every bit flipped, as the board stores it: a new board, all zeros, then holds
/// all ones, which no real token is (its second word is a checksum), so it matches nothing.
fn inverted(token: ChangeToken) -> ChangeToken {
    ChangeToken(token.0.map(|word| !word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::board::test_processes::gone_mark;

    /// Two fsync boards of one database, as two processes would have them.
    fn two(dir: &tempfile::TempDir) -> (FsyncBoard, FsyncBoard) {
        let db = dir.path().join("t.db");
        (FsyncBoard::new(Arc::new(Board::open(&db))), FsyncBoard::new(Arc::new(Board::open(&db))))
    }

    #[test]
    fn an_fsync_and_a_synced_token_are_seen_by_every_process() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = two(&dir);

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
        let (first, second) = two(&dir);
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

        // A holder that never ends (a hung disk) is taken over after a while.
        let Turn::Fsync(_) = first.turn(first.ticket()) else { panic!() };
        let started = Instant::now();
        let Turn::Fsync(taken) = second.turn(second.ticket()) else { panic!("nothing covers it") };
        assert!(started.elapsed() >= STALE_FSYNC);
        second.end(taken, true);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_turn_held_by_a_process_that_is_gone_is_taken_over_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (board, _) = two(&dir);
        let gone = gone_mark(&dir.path().join("t.db"));
        board.board.counters().in_flight.store(gone, Ordering::SeqCst);
        let started = Instant::now();
        let Turn::Fsync(number) = board.turn(board.ticket()) else { panic!("nothing covers it") };
        assert!(started.elapsed() < STALE_FSYNC, "took {:?}", started.elapsed());
        board.end(number, true);
    }

    #[test]
    fn a_failed_fsync_is_seen_by_every_process() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = two(&dir);
        let ticket = second.ticket();
        let Turn::Fsync(number) = first.turn(first.ticket()) else { panic!() };
        first.end(number, false);
        assert!(!second.covers(ticket), "a failed fsync covers nothing");
        assert!(second.failed_elsewhere());
        let (later, _) = two(&dir);
        assert!(!later.failed_elsewhere(), "a process opened later is not refused");
    }
}
