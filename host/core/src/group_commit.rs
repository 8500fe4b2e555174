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
//! fsync four at a time, not eight. So a leader waits for the writers it can expect: as many as
//! were in the last batch or queued when it finished (PostgreSQL's `commit_delay` and
//! `commit_siblings`, sized by what was seen rather than by settings). It waits at most half as
//! long as the last batch took to run, so the wait is small next to the commit it saves, and a
//! writer that is gone costs that once: the next batch expects only the writers that came. A lone
//! writer expects only itself and never waits.
//!
//! The leader does not sit idle meanwhile: the batch takes its writes one at a time
//! ([`Gathering::next`]), so the leader applies those already queued, and each one that comes
//! after, as it comes. Less of the batch's work is left to do after its last writer arrives.
//! Between them the leader does not sleep: it yields the processor, to the writers it waits for
//! first, and looks again. They are due within a fraction of a batch, and on a small virtual
//! machine putting the leader to sleep and waking it costs about as much: 8 writer threads did
//! about a fifth more writes a second this way than with the leader asleep on a condition
//! variable until the last of them came, and so did 50 writers (docs/benchmark-log.md has the
//! runs). The yielding is bounded by the same deadline as the wait was, and costs nothing a
//! sleeping leader would have left to others: a processor with other work to do runs it
//! first.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// The longest a leader waits for the writers it expects, whatever the last batch took.
const MAX_GATHER_WAIT: Duration = Duration::from_millis(2);

/// The queue of writes waiting for a batch, and the results of finished batches.
pub(crate) struct GroupCommit<W, R> {
    state: Mutex<State<W, R>>,
    /// How many writes are queued (`State::queued`'s length, written under the lock), for a
    /// leader to watch without taking the lock.
    queued_count: AtomicUsize,
    max_batch: usize,
    writes: AtomicU64,
    batches: AtomicU64,
}

/// How many writes went through, in how many batches (commits), and how many went between
/// processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteStats {
    /// Writes submitted and answered.
    pub writes: u64,
    /// Batches run: one transaction, one fsync each (or one write handed over).
    pub batches: u64,
    /// Writes of this process that another process committed with its own (a lone write
    /// made while another process was writing, see the SQLite store's `handoffs`).
    pub handed_over: u64,
    /// Writes of other processes that this process committed with its own.
    pub committed_for_others: u64,
}

struct State<W, R> {
    queued: VecDeque<(u64, W)>,
    results: HashMap<u64, R>,
    next_ticket: u64,
    batch_in_flight: bool,
    /// Writers the next leader may expect: the last batch's and those queued when it finished.
    expected_writers: usize,
    /// How long the last batch took to run, less its waits for writers; a leader waits for
    /// writers at most half of it.
    last_batch_time: Duration,
    /// Writers asleep until their batch finishes (or until they may lead the next one), by
    /// ticket. Each is woken on its own: a finished batch wakes its writers and the writer at
    /// the front of the queue, never every writer asleep (with 50 writers and a batch of 25,
    /// waking all of them would wake 25 only to put them back to sleep, all fighting for this
    /// lock), and a lone writer, with nobody asleep, makes no system call at all.
    parked: HashMap<u64, Thread>,
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
                expected_writers: 1,
                last_batch_time: Duration::ZERO,
                parked: HashMap::new(),
            }),
            queued_count: AtomicUsize::new(0),
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
            ..WriteStats::default()
        }
    }

    /// Submits `write` and waits for its result. `run_batch` runs a batch: it takes the
    /// writes one at a time from the [`Gathering`] until it answers `None` (a batch that
    /// stops early leaves the rest to the next one), and returns one result per write taken,
    /// in order. It is called by whichever writer leads that batch, never by two threads at
    /// once, so it may also apply in-memory effects in commit order. `failed` makes the result
    /// of a write whose batch panicked.
    pub(crate) fn submit(
        &self,
        write: W,
        run_batch: impl Fn(&mut Gathering<'_, W, R>) -> Vec<R>,
        failed: impl Fn() -> R + Sync,
    ) -> R {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queued.push_back((ticket, write));
        self.count_queued(&state);
        loop {
            if let Some(result) = state.results.remove(&ticket) {
                return result;
            }
            if state.batch_in_flight {
                // Woken by the batch that answers this write, or to lead the next one; a
                // spurious wake-up just looks again.
                state.parked.insert(ticket, thread::current());
                drop(state);
                thread::park();
                state = self.lock();
                state.parked.remove(&ticket);
                continue;
            }
            state.batch_in_flight = true;
            let expected = state.expected_writers.min(self.max_batch);
            let gather_for = (state.last_batch_time / 2).min(MAX_GATHER_WAIT);
            drop(state);
            self.batches.fetch_add(1, Ordering::Relaxed);

            let started = Instant::now();
            let mut gathering = Gathering {
                group: self,
                failed: &failed,
                taken: Vec::new(),
                handed: 0,
                expected,
                deadline: started + gather_for,
                waited: Duration::ZERO,
                done: false,
            };
            let results = run_batch(&mut gathering);
            gathering.done = true;
            let took = started.elapsed().saturating_sub(gathering.waited);

            state = self.lock();
            let handed = gathering.handed;
            // Writes taken but not handed over (the batch stopped early) go back to the front
            // of the queue, for the next batch.
            for queued in gathering.taken.split_off(handed).into_iter().rev() {
                state.queued.push_front(queued);
            }
            self.count_queued(&state);
            self.writes.fetch_add(handed as u64, Ordering::Relaxed);
            state.expected_writers = handed + state.queued.len();
            state.last_batch_time = took;
            // One result per write handed over; should the batch return fewer, the rest fail
            // rather than wait forever.
            let mut results = results.into_iter();
            let answered =
                gathering.taken.drain(..).map(|(ticket, _)| (ticket, results.next().unwrap_or_else(&failed)));
            self.finish_batch(state, answered);
            state = self.lock();
        }
    }

    /// Gives each write of the batch in flight its result (`answered`: tickets with results)
    /// and marks the batch done. Then, once the lock is released (woken under it, each would
    /// only wait for it), wakes those writers and the writer at the front of the queue, to lead
    /// the next batch.
    fn finish_batch(&self, mut state: MutexGuard<'_, State<W, R>>, answered: impl Iterator<Item = (u64, R)>) {
        let mut wake = Vec::new();
        for (ticket, result) in answered {
            state.results.insert(ticket, result);
            if !state.parked.is_empty()
                && let Some(writer) = state.parked.remove(&ticket)
            {
                wake.push(writer);
            }
        }
        state.batch_in_flight = false;
        if let Some(next_leader) = state.queued.front().map(|(ticket, _)| *ticket)
            && let Some(writer) = state.parked.remove(&next_leader)
        {
            wake.push(writer);
        }
        drop(state);
        wake.iter().for_each(Thread::unpark);
    }

    /// Publishes how many writes are queued, after the queue changed.
    fn count_queued(&self, state: &State<W, R>) {
        self.queued_count.store(state.queued.len(), Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, State<W, R>> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The batch a leader is running: the writes it has taken so far, and more as they arrive.
///
/// Should the leader's `run_batch` panic, dropping it answers every write it took with
/// `failed()` and lets the next writer lead, so one panic cannot leave every other writer
/// waiting forever.
pub(crate) struct Gathering<'a, W, R> {
    group: &'a GroupCommit<W, R>,
    failed: &'a (dyn Fn() -> R + Sync),
    /// The writes taken from the queue, with their tickets.
    taken: Vec<(u64, W)>,
    /// How many of them were handed to the batch.
    handed: usize,
    /// How many writes the batch waits for.
    expected: usize,
    /// How long it waits for them.
    deadline: Instant,
    /// The time spent asleep waiting for them.
    waited: Duration,
    /// The batch returned normally.
    done: bool,
}

impl<W, R> Gathering<'_, W, R> {
    /// The next write of the batch: one already queued, or one expected, waited for (see the
    /// module's documentation); `None` once the batch is complete.
    pub(crate) fn next(&mut self) -> Option<&W> {
        if self.handed == self.taken.len() && !self.take_more() {
            return None;
        }
        self.handed += 1;
        self.taken.get(self.handed - 1).map(|(_, write)| write)
    }

    /// Asked before the first write is taken: whether the batch will be that write alone. It
    /// expects no other (the last batch was a lone write too), and no other is queued.
    pub(crate) fn is_lone(&self) -> bool {
        self.taken.is_empty() && self.expected <= 1 && self.group.queued_count.load(Ordering::Acquire) == 1
    }

    /// Every write handed to the batch so far, in order.
    pub(crate) fn writes(&self) -> impl ExactSizeIterator<Item = &W> {
        self.taken[..self.handed].iter().map(|(_, write)| write)
    }

    /// Takes every write queued, up to the batch limit, waiting for one while fewer than
    /// expected have come; false when there are no more for this batch.
    fn take_more(&mut self) -> bool {
        let group = self.group;
        if self.taken.len() >= group.max_batch {
            return false;
        }
        loop {
            if group.queued_count.load(Ordering::Acquire) > 0 {
                let mut state = group.lock();
                let take = state.queued.len().min(group.max_batch - self.taken.len());
                self.taken.extend(state.queued.drain(..take));
                group.count_queued(&state);
                if take > 0 {
                    return true;
                }
            }
            if self.taken.len() >= self.expected {
                return false;
            }
            // Waits by giving the processor to whoever wants it, the writers it waits for
            // first: they are due within a fraction of a batch, and putting the leader to
            // sleep and waking it again costs as much (see the module's documentation).
            let now = Instant::now();
            if now >= self.deadline {
                return false;
            }
            thread::yield_now();
            self.waited += now.elapsed();
        }
    }
}

impl<W, R> Drop for Gathering<'_, W, R> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let state = self.group.lock();
        let failed = self.failed;
        self.group.finish_batch(state, self.taken.drain(..).map(|(ticket, _)| (ticket, failed())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// Every write of a batch, as the batch hands them over.
    fn all<W: Copy, R>(batch: &mut Gathering<'_, W, R>) -> Vec<W> {
        std::iter::from_fn(|| batch.next().copied()).collect()
    }

    fn add_one(batch: &mut Gathering<'_, u32, u32>) -> Vec<u32> {
        all(batch).into_iter().map(|w| w + 1).collect()
    }

    /// Submits `first` on a thread of its own and, once its batch is under way (its leader
    /// holds no lock while it runs), `others`, each on a thread of its own. Answers the first
    /// write's result and the others', sorted.
    fn lead_then_queue(
        group: &Arc<GroupCommit<u32, u32>>,
        run: impl Fn(&mut Gathering<'_, u32, u32>) -> Vec<u32> + Clone + Send + 'static,
        first: u32,
        others: [u32; 2],
    ) -> (u32, Vec<u32>) {
        let submit = |write: u32| {
            let (group, run) = (group.clone(), run.clone());
            std::thread::spawn(move || group.submit(write, run, || 0))
        };
        let leader = submit(first);
        while group.stats().batches == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let others: Vec<_> = others.into_iter().map(submit).collect();
        let mut answers: Vec<u32> = others.into_iter().map(|other| other.join().unwrap()).collect();
        answers.sort();
        (leader.join().unwrap(), answers)
    }

    #[test]
    fn a_lone_writer_gets_its_own_result() {
        let group: GroupCommit<u32, u32> = GroupCommit::new(8);
        assert_eq!(group.submit(20, add_one, || 0), 21);
        assert_eq!(group.submit(40, add_one, || 0), 41);
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
                                all(batch).into_iter().map(|w| w * 2).collect()
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
    fn a_finished_batch_wakes_the_writer_at_the_front_of_the_queue_to_lead() {
        // One write a batch, and one write a writer: once the first batch is done, its
        // writer leaves, and the writers queued behind it go on only if it woke one of them.
        let group: Arc<GroupCommit<u32, u32>> = Arc::new(GroupCommit::new(1));
        let run = {
            let group = group.clone();
            move |batch: &mut Gathering<'_, u32, u32>| {
                let writes = all(batch);
                if writes == [0] {
                    group.wait_for_queued(3);
                }
                writes.into_iter().map(|w| w + 1).collect()
            }
        };
        let (done, finished) = std::sync::mpsc::channel();
        let submit = |write: u32| {
            let (group, run, done) = (group.clone(), run.clone(), done.clone());
            std::thread::spawn(move || done.send(group.submit(write, run, || u32::MAX)).unwrap());
        };
        submit(0);
        while group.stats().batches == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        (1..=3).for_each(submit);
        let mut answers: Vec<u32> = (0..4)
            .map(|_| {
                finished.recv_timeout(std::time::Duration::from_secs(30)).expect(
                    "every writer finishes: the writers queued behind the first batch were never woken",
                )
            })
            .collect();
        answers.sort();
        assert_eq!(answers, [1, 2, 3, 4]);
        assert_eq!(group.stats(), WriteStats { writes: 4, batches: 4, ..WriteStats::default() });
    }

    #[test]
    fn writers_left_queued_by_a_full_batch_are_woken_to_lead_the_next() {
        // Batches of at most 2 for 6 writers: most writers wait behind a batch that cannot
        // take them, and only a finished batch wakes one of them to lead. Should it not, they
        // would sleep forever; the test would then time out rather than hang.
        let group: Arc<GroupCommit<u64, u64>> = Arc::new(GroupCommit::new(2));
        writers_all_finish(&group, 6, 50, Duration::from_micros(100));
        assert_eq!(group.stats().writes, 300);
    }

    /// Runs `writers` threads that each submit `writes` writes to `group`, in batches that
    /// take `batch_time`, and checks that every writer gets its results and finishes (within
    /// a minute rather than never, should one be left asleep) and none is left registered
    /// as asleep.
    fn writers_all_finish(
        group: &Arc<GroupCommit<u64, u64>>,
        writers: u64,
        writes: u64,
        batch_time: Duration,
    ) {
        let (done, finished) = std::sync::mpsc::channel();
        for thread in 0..writers {
            let (group, done) = (group.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..writes {
                    let write = thread * 1000 + i;
                    let run = |batch: &mut Gathering<'_, u64, u64>| {
                        std::thread::sleep(batch_time);
                        all(batch).into_iter().map(|w| w + 1).collect()
                    };
                    assert_eq!(group.submit(write, run, || u64::MAX), write + 1);
                }
                done.send(thread).unwrap();
            });
        }
        for _ in 0..writers {
            finished
                .recv_timeout(Duration::from_secs(60))
                .expect("every writer finishes: a writer left asleep was never woken");
        }
        assert!(group.lock().parked.is_empty(), "no writer is left registered as asleep");
    }

    impl<W, R> GroupCommit<W, R> {
        /// Waits until `count` writes are queued.
        fn wait_for_queued(&self, count: usize) {
            while self.lock().queued.len() < count {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }

    #[test]
    fn writes_that_arrive_while_a_batch_runs_join_it_and_a_batch_that_stops_early_leaves_the_rest() {
        let group: Arc<GroupCommit<u32, u32>> = Arc::new(GroupCommit::new(8));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let run = {
            let group = group.clone();
            let batches = batches.clone();
            move |batch: &mut Gathering<'_, u32, u32>| {
                let mut writes = vec![*batch.next().expect("the leader's own write")];
                if writes[0] == 1 {
                    // While the first write is being applied, two more arrive: the batch
                    // takes them as they come, and this one stops after the first of them.
                    group.wait_for_queued(2);
                    writes.extend(batch.next().copied());
                } else {
                    writes.extend(std::iter::from_fn(|| batch.next().copied()));
                }
                batches.lock().unwrap().push(writes.clone());
                writes.iter().map(|w| w * 10).collect()
            }
        };
        assert_eq!(lead_then_queue(&group, run, 1, [2, 3]), (10, vec![20, 30]));
        let batches = batches.lock().unwrap().clone();
        assert_eq!(batches.len(), 2, "{batches:?}");
        assert_eq!(batches[0].len(), 2, "the first batch takes a write that came while it ran: {batches:?}");
        assert_eq!(batches[1].len(), 1, "the write it left runs in the next batch: {batches:?}");
        assert_eq!(group.stats(), WriteStats { writes: 3, batches: 2, ..WriteStats::default() });
    }

    #[test]
    fn a_leader_waits_a_bounded_time_for_the_writers_it_expects_then_expects_only_those_that_came() {
        let group: Arc<GroupCommit<u32, u32>> = Arc::new(GroupCommit::new(8));
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let run = {
            let (group, sizes) = (group.clone(), sizes.clone());
            move |batch: &mut Gathering<'_, u32, u32>| {
                let first = *batch.next().expect("the leader's own write");
                if first == 1 {
                    // The first batch lets two more writes queue before it takes them.
                    group.wait_for_queued(2);
                }
                let writes: Vec<u32> = std::iter::once(first).chain(all(batch)).collect();
                sizes.lock().unwrap().push(writes.len());
                writes.into_iter().map(|w| w + 1).collect()
            }
        };
        assert_eq!(lead_then_queue(&group, run.clone(), 1, [2, 3]), (2, vec![3, 4]));
        assert_eq!(*sizes.lock().unwrap(), [3]);
        assert_eq!(group.lock().expected_writers, 3, "the next leader expects the three writers");

        // One of them comes back alone: its batch waits for the other two only so long, then
        // commits without them, and the batch after it expects one writer.
        let started = Instant::now();
        assert_eq!(group.submit(4, run.clone(), || 0), 5);
        assert!(started.elapsed() < Duration::from_secs(5), "the wait is bounded: {:?}", started.elapsed());
        assert_eq!(*sizes.lock().unwrap(), [3, 1]);
        assert_eq!(group.lock().expected_writers, 1, "a writer that did not come is expected no more");
    }

    #[test]
    fn every_writer_asleep_through_a_large_batch_is_woken() {
        // 40 writers, most of them asleep through each batch. One left asleep would never
        // finish; the test would then time out rather than hang.
        let group: Arc<GroupCommit<u64, u64>> = Arc::new(GroupCommit::new(64));
        writers_all_finish(&group, 40, 30, Duration::from_micros(500));
        let stats = group.stats();
        assert_eq!(stats.writes, 40 * 30);
        assert!(stats.writes / stats.batches >= 4, "batches of many writers: {stats:?}");
    }

    #[test]
    fn a_panicking_batch_fails_its_writers_and_the_next_batch_runs() {
        let group: Arc<GroupCommit<u32, u32>> = Arc::new(GroupCommit::new(8));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            group.submit(1, |_| panic!("storage bug"), || 0)
        }));
        assert!(panicked.is_err());
        assert_eq!(group.submit(2, add_one, || 0), 3);
    }
}
