//! Group commit: concurrent writers share one transaction and one fsync.
//!
//! Every write in the process goes through [`GroupCommit::submit`]. A writer that finds no
//! batch in flight becomes the leader: it takes every write queued so far (its own first among
//! them, up to a batch limit), runs them as one batch, hands each writer its result and wakes
//! them. Writers that arrive while a batch is in flight queue up and go together in the next
//! one. An uncontended writer is its own leader and never waits for another thread; under load
//! the cost of a commit (an fsync, above all) is shared by the whole batch.
//!
//! Nobody is acknowledged before the batch holding their write has committed, so durability
//! is exactly that of one transaction per write.
//!
//! # Gathering a batch
//!
//! Writers that wait for their acknowledgement come back with their next write only after it.
//! Left alone, the first of them to come back leads a batch of one or two while the rest queue
//! behind it, and batches alternate between small and large: 8 synchronous writers then share an
//! fsync four at a time, not eight. So a leader first waits for the writers it can expect: as
//! many as were in the last batch or queued when it finished (PostgreSQL's `commit_delay` and
//! `commit_siblings`, sized by what was seen rather than by settings). It waits at most half as
//! long as the last batch took to run, so the wait is small next to the commit it saves, and a
//! writer that is gone costs that once: the next batch expects only the writers that came. A lone
//! writer expects only itself and never waits.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest a leader waits for the writers it expects, whatever the last batch took.
const MAX_GATHER_WAIT: Duration = Duration::from_millis(2);

/// The queue of writes waiting for a batch, and the results of finished batches.
pub(crate) struct GroupCommit<W, R> {
    state: Mutex<State<W, R>>,
    finished: Condvar,
    arrived: Condvar,
    max_batch: usize,
    writes: AtomicU64,
    batches: AtomicU64,
}

/// How many writes went through, in how many batches (commits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteStats {
    /// Writes submitted and answered.
    pub writes: u64,
    /// Batches run: one transaction, one fsync each.
    pub batches: u64,
}

struct State<W, R> {
    queued: VecDeque<(u64, W)>,
    results: HashMap<u64, R>,
    next_ticket: u64,
    batch_in_flight: bool,
    /// A leader is gathering, waiting for this many writes to be queued.
    gathering_for: Option<usize>,
    /// Writers the next leader may expect: the last batch's and those queued when it finished.
    expected_writers: usize,
    /// How long the last batch took to run; a leader waits for writers at most half of it.
    last_batch_time: Duration,
    /// Writers asleep until a batch finishes. A notification costs a system call even when
    /// nobody waits, which a lone writer would pay on every write.
    waiting: usize,
}

impl<W, R> GroupCommit<W, R> {
    /// A queue whose batches hold at most `max_batch` writes.
    pub(crate) fn new(max_batch: usize) -> Self {
        GroupCommit {
            state: Mutex::new(State {
                queued: VecDeque::new(),
                results: HashMap::new(),
                next_ticket: 0,
                batch_in_flight: false,
                gathering_for: None,
                expected_writers: 1,
                last_batch_time: Duration::ZERO,
                waiting: 0,
            }),
            finished: Condvar::new(),
            arrived: Condvar::new(),
            max_batch: max_batch.max(1),
            writes: AtomicU64::new(0),
            batches: AtomicU64::new(0),
        }
    }

    /// Writes and batches so far.
    pub(crate) fn stats(&self) -> WriteStats {
        WriteStats {
            writes: self.writes.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
        }
    }

    /// Submits `write` and waits for its result. `run_batch` runs a batch and returns one
    /// result per write, in order; it is called by whichever writer leads that batch, never by
    /// two threads at once, so it may also apply in-memory effects in commit order.
    /// `failed` makes the result of a write whose batch panicked.
    pub(crate) fn submit(&self, write: W, run_batch: impl Fn(Vec<W>) -> Vec<R>, failed: impl Fn() -> R) -> R {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queued.push_back((ticket, write));
        if state.gathering_for.is_some_and(|expected| state.queued.len() >= expected) {
            self.arrived.notify_one();
        }
        loop {
            if let Some(result) = state.results.remove(&ticket) {
                return result;
            }
            if state.batch_in_flight {
                state.waiting += 1;
                state = self.finished.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                state.waiting -= 1;
                continue;
            }
            state.batch_in_flight = true;
            state = self.gather(state);
            let take = state.queued.len().min(self.max_batch);
            let (tickets, writes): (Vec<u64>, Vec<W>) = state.queued.drain(..take).unzip();
            drop(state);
            self.batches.fetch_add(1, Ordering::Relaxed);
            self.writes.fetch_add(writes.len() as u64, Ordering::Relaxed);

            let mut guard = BatchGuard { group: self, tickets, failed: &failed };
            let started = Instant::now();
            let results = run_batch(writes);
            let took = started.elapsed();
            let tickets = std::mem::take(&mut guard.tickets);
            std::mem::forget(guard);

            state = self.lock();
            state.expected_writers = tickets.len() + state.queued.len();
            state.last_batch_time = took;
            state.results.extend(tickets.into_iter().zip(results));
            self.batch_done(&mut state);
        }
    }

    /// Marks the batch in flight as done and wakes the writers waiting for it.
    fn batch_done(&self, state: &mut State<W, R>) {
        state.batch_in_flight = false;
        if state.waiting > 0 {
            self.finished.notify_all();
        }
    }

    /// Waits, as the leader of the next batch, until the writers it expects have queued, or
    /// until half the last batch's run time has passed (see the module's documentation).
    fn gather<'a>(&'a self, mut state: MutexGuard<'a, State<W, R>>) -> MutexGuard<'a, State<W, R>> {
        let expected = state.expected_writers.min(self.max_batch);
        if state.queued.len() >= expected {
            return state;
        }
        let deadline = Instant::now() + (state.last_batch_time / 2).min(MAX_GATHER_WAIT);
        state.gathering_for = Some(expected);
        while state.queued.len() < expected {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            state = match self.arrived.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        state.gathering_for = None;
        state
    }

    fn lock(&self) -> MutexGuard<'_, State<W, R>> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Should the leader's `run_batch` panic, answers its batch with `failed()` and lets the next
/// writer lead, so one panic cannot leave every other writer waiting forever.
struct BatchGuard<'a, W, R, F: Fn() -> R> {
    group: &'a GroupCommit<W, R>,
    tickets: Vec<u64>,
    failed: &'a F,
}

impl<W, R, F: Fn() -> R> Drop for BatchGuard<'_, W, R, F> {
    fn drop(&mut self) {
        let mut state = self.group.lock();
        for ticket in self.tickets.drain(..) {
            state.results.insert(ticket, (self.failed)());
        }
        self.group.batch_done(&mut state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_lone_writer_gets_its_own_result() {
        let group: GroupCommit<u32, u32> = GroupCommit::new(8);
        assert_eq!(group.submit(20, |batch| batch.iter().map(|w| w + 1).collect(), || 0), 21);
        assert_eq!(group.submit(40, |batch| batch.iter().map(|w| w + 1).collect(), || 0), 41);
    }

    #[test]
    fn concurrent_writers_share_batches_and_each_gets_its_own_result() {
        let group: Arc<GroupCommit<u64, u64>> = Arc::new(GroupCommit::new(64));
        let batches = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8u64)
            .map(|thread| {
                let group = group.clone();
                let batches = batches.clone();
                std::thread::spawn(move || {
                    for i in 0..200u64 {
                        let write = thread * 1000 + i;
                        let result = group.submit(
                            write,
                            |batch| {
                                batches.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                batch.iter().map(|w| w * 2).collect()
                            },
                            || u64::MAX,
                        );
                        assert_eq!(result, write * 2);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let batches = batches.load(Ordering::Relaxed);
        assert!(batches < 1600, "1600 writes took {batches} batches: no grouping happened");
    }

    #[test]
    fn a_panicking_batch_fails_its_writers_and_the_next_batch_runs() {
        let group: Arc<GroupCommit<u32, u32>> = Arc::new(GroupCommit::new(8));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            group.submit(1, |_| panic!("storage bug"), || 0)
        }));
        assert!(panicked.is_err());
        assert_eq!(group.submit(2, |batch| batch.iter().map(|w| w + 1).collect(), || 0), 3);
    }
}
