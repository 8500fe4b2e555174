//! The threads that plugin calls run on.
//!
//! A plugin call is synchronous and may wait for a durable write, so it runs on a thread of
//! its own, never on a worker of the async runtime (see `server.rs`). Handing a call to a
//! thread asleep costs a wake-up, which on a virtual machine is an interrupt through the
//! hypervisor: several µs of the caller's time, and more before the woken thread runs. tokio's
//! blocking pool, which ran them before, puts a thread to sleep as soon as it is idle. So a
//! thread here that has finished a call looks for the next one for a little while
//! ([`LOOK_FOR`]), yielding the processor in between, before it sleeps: under load, the next
//! call goes to a thread that is awake. At most as many threads look at once as there are
//! processors, so idle threads never crowd out the ones with work; with no load, every
//! thread sleeps. (Measured against the blocking pool, the two servers taking turns: GET at 50
//! connections 12.8-21.4k requests/s against 11.3-15.0k; median latency at 1 connection
//! 0.10-0.17 ms against 0.16-0.21 ms; POST at 50 connections within the noise.)

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use tokio::sync::oneshot;

/// A call waiting for a thread.
type Call = Box<dyn FnOnce() + Send>;

/// How long a thread that finished a call looks for the next before it sleeps.
const LOOK_FOR: Duration = Duration::from_micros(50);
/// How long a thread sleeps without a call before it ends (the last one never ends), as
/// tokio's blocking pool lets its threads go: a burst of calls does not keep its threads.
const IDLE_END: Duration = Duration::from_secs(10);

/// Threads that run plugin calls, each inside a tokio runtime's context (WASI's synchronous
/// bindings block on its futures). One starts at once, the others as calls need them (when a
/// call comes and every thread has one), up to a most; they stay for later calls until they
/// have had none for [`IDLE_END`], and all end once this is dropped and the calls already
/// handed to them have run.
pub(crate) struct PluginThreads {
    calls: Sender<Call>,
    pool: Arc<Pool>,
}

/// What the threads share.
struct Pool {
    queue: Receiver<Call>,
    runtime: tokio::runtime::Handle,
    /// [`Counts`], packed, changed by compare-and-swap: taking a lock here, on every call,
    /// would put threads to sleep whenever its holder is preempted.
    counts: AtomicU64,
    most: usize,
    /// [`IDLE_END`], but for tests.
    idle_end: Duration,
    /// Threads looking for a call, at most `most_looking`.
    looking: AtomicUsize,
    most_looking: usize,
}

/// Which thread will run each call sent. As it is sent, every call is matched with a free
/// thread, with a thread started for it, or (once `most` have started) with the next thread
/// to finish a call. Any thread may take any call: what must match is the counts.
#[derive(Clone, Copy)]
struct Counts {
    /// Threads started.
    started: u64,
    /// Threads without a call, and not matched with one.
    free: u64,
    /// Calls matched with the next threads to finish.
    owed: u64,
}

/// The bits of each count in [`Pool::counts`].
const COUNT_BITS: u32 = 21;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// The most threads: each count fits its bits (calls owed are at most one per thread, as
/// the server lets no more calls run at once than there are threads).
const MOST_THREADS: usize = 1 << 20;

impl Counts {
    fn pack(self) -> u64 {
        self.started | self.free << COUNT_BITS | self.owed << (2 * COUNT_BITS)
    }

    fn unpack(packed: u64) -> Counts {
        Counts {
            started: packed & COUNT_MASK,
            free: packed >> COUNT_BITS & COUNT_MASK,
            owed: packed >> (2 * COUNT_BITS) & COUNT_MASK,
        }
    }
}

impl PluginThreads {
    /// Starts the first of at most `most` threads (at least one), each entering `runtime`.
    pub(crate) fn start(most: usize, runtime: &tokio::runtime::Handle) -> std::io::Result<PluginThreads> {
        PluginThreads::start_ending_after(most, runtime, IDLE_END)
    }

    /// Like [`PluginThreads::start`], with threads (all but one) ending after `idle_end`
    /// without a call.
    fn start_ending_after(
        most: usize,
        runtime: &tokio::runtime::Handle,
        idle_end: Duration,
    ) -> std::io::Result<PluginThreads> {
        let (calls, queue) = crossbeam_channel::unbounded::<Call>();
        let pool = Arc::new(Pool {
            queue,
            runtime: runtime.clone(),
            counts: AtomicU64::new(Counts { started: 1, free: 1, owed: 0 }.pack()),
            most: most.clamp(1, MOST_THREADS),
            idle_end,
            looking: AtomicUsize::new(0),
            most_looking: std::thread::available_parallelism().map_or(1, usize::from),
        });
        // The first thread: should no other start later, every call still runs on it.
        Pool::spawn(&pool, 0)?;
        Ok(PluginThreads { calls, pool })
    }

    /// Runs `call` on one of the threads as soon as one is free. Its result comes through the
    /// receiver; should it panic, the receiver gets an error instead (and the thread goes on).
    pub(crate) fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> oneshot::Receiver<T> {
        let (ended, result) = oneshot::channel();
        let pool = self.pool.clone();
        let call: Call = Box::new(move || {
            let value = call();
            // Finished before its caller hears, so that a caller that calls again at once
            // finds this thread free rather than starting another.
            pool.finished();
            // The caller may have stopped waiting (its connection closed): nothing to tell.
            let _ = ended.send(value);
        });
        // Every thread holds the receiving end until this is dropped: sending cannot fail.
        let _ = self.calls.send(call);
        self.pool.match_call();
        result
    }

    /// Threads started so far.
    #[cfg(test)]
    fn started(&self) -> u64 {
        Counts::unpack(self.pool.counts.load(Ordering::Acquire)).started
    }
}

impl Pool {
    /// Changes the counts as `change` says, and answers what they were.
    fn change(&self, change: impl Fn(Counts) -> Counts) -> Counts {
        // Fails only when the change answers `None`, which this one never does.
        self.try_change(|counts| Some(change(counts))).unwrap_or_else(|counts| counts)
    }

    /// Changes the counts as `change` says, unless it answers `None`; answers what they were
    /// (`Err` when left unchanged).
    fn try_change(&self, change: impl Fn(Counts) -> Option<Counts>) -> Result<Counts, Counts> {
        self.counts
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |packed| {
                change(Counts::unpack(packed)).map(Counts::pack)
            })
            .map(Counts::unpack)
            .map_err(Counts::unpack)
    }

    /// Matches a call just sent with a thread: a free one, else one started for it, else the
    /// next to finish.
    fn match_call(self: &Arc<Pool>) {
        let most = self.most as u64;
        let before = self.change(|counts| match counts {
            Counts { free: 1.., .. } => Counts { free: counts.free - 1, ..counts },
            Counts { started, .. } if started < most => Counts { started: started + 1, ..counts },
            _ => Counts { owed: counts.owed + 1, ..counts },
        });
        if before.free > 0 || before.started >= most {
            return;
        }
        if let Err(error) = Pool::spawn(self, before.started) {
            tracing::warn!(%error, "cannot start another thread for plugin calls; the call waits for one");
            self.change(|counts| Counts { started: counts.started - 1, owed: counts.owed + 1, ..counts });
        }
    }

    /// A thread has finished a call: it takes an owed call next, or is free.
    fn finished(&self) {
        self.change(|counts| match counts.owed {
            0 => Counts { free: counts.free + 1, ..counts },
            owed => Counts { owed: owed - 1, ..counts },
        });
    }

    /// Starts thread number `index`.
    fn spawn(pool: &Arc<Pool>, index: u64) -> std::io::Result<()> {
        let thread = pool.clone();
        std::thread::Builder::new().name(format!("easycaching-plugin-{index}")).spawn(move || {
            let _context = thread.runtime.enter();
            thread.serve();
        })?;
        Ok(())
    }

    /// One thread's life: each call in turn, until the sender is gone.
    fn serve(&self) {
        while let Some(call) = self.look_for_next().or_else(|| self.wait_for_next()) {
            // A call counts its thread finished once it has its result; one that panics does
            // not get that far. Its panic drops its sender, which tells its caller; the thread
            // serves on.
            if std::panic::catch_unwind(AssertUnwindSafe(call)).is_err() {
                self.finished();
            }
        }
    }

    /// The next call, asleep until it comes; `None` once the sender is gone, or when this
    /// thread may end, having had no call for `idle_end`.
    fn wait_for_next(&self) -> Option<Call> {
        loop {
            match self.queue.recv_timeout(self.idle_end) {
                Ok(call) => return Some(call),
                Err(RecvTimeoutError::Disconnected) => return None,
                // Only a thread not matched with a call may end, and never the last one.
                Err(RecvTimeoutError::Timeout) => {
                    let ended = self.try_change(|counts| {
                        (counts.free > 0 && counts.started > 1).then(|| Counts {
                            started: counts.started - 1,
                            free: counts.free - 1,
                            ..counts
                        })
                    });
                    if ended.is_ok() {
                        return None;
                    }
                }
            }
        }
    }

    /// The next call, if one comes within [`LOOK_FOR`] and fewer than `most_looking` other
    /// threads are looking already.
    fn look_for_next(&self) -> Option<Call> {
        if self.looking.fetch_add(1, Ordering::AcqRel) >= self.most_looking {
            self.looking.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let until = Instant::now() + LOOK_FOR;
        let found = loop {
            match self.queue.try_recv() {
                Ok(call) => break Some(call),
                Err(TryRecvError::Disconnected) => break None,
                Err(TryRecvError::Empty) if Instant::now() >= until => break None,
                Err(TryRecvError::Empty) => std::thread::yield_now(),
            }
        };
        self.looking.fetch_sub(1, Ordering::AcqRel);
        found
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Barrier;

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().build().unwrap()
    }

    /// Runs `count` calls of `call` (given its index), each of which first waits for all the
    /// others to be running: they finish only if all run at once. Their results, in order.
    fn all_at_once<T: Send + 'static>(
        threads: &PluginThreads,
        count: usize,
        call: impl Fn(usize) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        let (all, call) = (Arc::new(Barrier::new(count)), Arc::new(call));
        let ended: Vec<_> = (0..count)
            .map(|index| {
                let (all, call) = (all.clone(), call.clone());
                threads.run(move || {
                    all.wait();
                    call(index)
                })
            })
            .collect();
        ended.into_iter().map(answer).collect()
    }

    /// A call's result, within 10 s.
    fn answer<T>(mut ended: oneshot::Receiver<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match ended.try_recv() {
                Ok(value) => return value,
                Err(oneshot::error::TryRecvError::Empty) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(error) => panic!("no answer: {error}"),
            }
        }
    }

    #[test]
    fn threads_start_as_calls_need_them_and_never_more_than_the_most() {
        let runtime = runtime();
        let threads = PluginThreads::start(3, runtime.handle()).unwrap();
        for call in 0..20 {
            assert_eq!(answer(threads.run(move || call)), call);
        }
        assert_eq!(threads.started(), 1, "one call at a time: one thread");
        all_at_once(&threads, 3, |_| ());
        assert_eq!(threads.started(), 3, "three at once: three threads");
        let ended: Vec<_> =
            (0..10).map(|_| threads.run(|| std::thread::sleep(Duration::from_millis(20)))).collect();
        ended.into_iter().for_each(answer);
        assert_eq!(threads.started(), 3, "the most, however many wait");
    }

    #[test]
    fn as_many_calls_run_at_once_as_there_are_threads() {
        let runtime = runtime();
        let threads = PluginThreads::start(8, runtime.handle()).unwrap();
        assert_eq!(all_at_once(&threads, 8, |index| index), (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn threads_without_calls_end_all_but_one_and_calls_still_run() {
        let runtime = runtime();
        let threads =
            PluginThreads::start_ending_after(4, runtime.handle(), Duration::from_millis(50)).unwrap();
        all_at_once(&threads, 4, |_| ());
        assert_eq!(threads.started(), 4);
        let deadline = Instant::now() + Duration::from_secs(10);
        while threads.started() > 1 {
            assert!(Instant::now() < deadline, "idle threads did not end");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(threads.started(), 1, "one stays");
        assert_eq!(answer(threads.run(|| 5)), 5);
        assert_eq!(all_at_once(&threads, 3, |index| index), vec![0, 1, 2], "and more start again");
    }

    #[test]
    fn a_call_that_panics_is_reported_and_its_thread_serves_on() {
        let runtime = runtime();
        let threads = PluginThreads::start(1, runtime.handle()).unwrap();
        let panicked = threads.run(|| -> u32 { panic!("a call that panics") });
        assert!(panicked.blocking_recv().is_err(), "its caller hears of it");
        assert_eq!(answer(threads.run(|| 7)), 7, "the one thread still runs calls");
        assert_eq!(threads.started(), 1, "and is free again");
    }

    #[test]
    fn calls_run_inside_the_runtime_and_the_threads_end_with_the_pool() {
        let runtime = runtime();
        let threads = PluginThreads::start(2, runtime.handle()).unwrap();
        let inside = threads.run(|| tokio::runtime::Handle::try_current().is_ok());
        assert!(answer(inside), "WASI's blocking calls need the runtime");
        // Both threads, held at once so that each runs one: their tasks in the kernel.
        let tasks = all_at_once(&threads, 2, |_| {
            Path::new("/proc").join(std::fs::read_link("/proc/thread-self").unwrap())
        });
        assert!(tasks.iter().all(|task| task.exists()));
        drop(threads);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tasks.iter().any(|task| task.exists()) {
            assert!(Instant::now() < deadline, "a thread outlived its pool");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
