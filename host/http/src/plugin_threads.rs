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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use tokio::sync::oneshot;

/// A call waiting for a thread.
type Call = Box<dyn FnOnce() + Send>;

/// How long a thread that finished a call looks for the next before it sleeps.
const LOOK_FOR: Duration = Duration::from_micros(50);

/// A fixed number of threads that run plugin calls, each inside a tokio runtime's context
/// (WASI's synchronous bindings block on its futures). They end once this is dropped and the
/// calls already handed to them have run.
pub(crate) struct PluginThreads {
    calls: Sender<Call>,
}

impl PluginThreads {
    /// Starts `threads` threads (at least one), each entering `runtime`.
    pub(crate) fn start(threads: usize, runtime: &tokio::runtime::Handle) -> std::io::Result<PluginThreads> {
        let (calls, queue) = crossbeam_channel::unbounded::<Call>();
        let looking = Arc::new(AtomicUsize::new(0));
        let most_looking = std::thread::available_parallelism().map_or(1, usize::from);
        for index in 0..threads.max(1) {
            let (queue, looking, runtime) = (queue.clone(), looking.clone(), runtime.clone());
            std::thread::Builder::new().name(format!("easycaching-plugin-{index}")).spawn(move || {
                let _context = runtime.enter();
                serve(&queue, &looking, most_looking);
            })?;
        }
        Ok(PluginThreads { calls })
    }

    /// Runs `call` on one of the threads as soon as one is free. Its result comes through the
    /// receiver; should it panic, the receiver gets an error instead (and the thread goes on).
    pub(crate) fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> oneshot::Receiver<T> {
        let (ended, result) = oneshot::channel();
        let call: Call = Box::new(move || {
            // The caller may have stopped waiting (its connection closed): nothing to tell.
            let _ = ended.send(call());
        });
        // Every thread holds the receiving end until this is dropped: sending cannot fail.
        let _ = self.calls.send(call);
        result
    }
}

/// One thread's life: each call in turn, until the sender is gone.
fn serve(queue: &Receiver<Call>, looking: &AtomicUsize, most_looking: usize) {
    loop {
        let call = match look_for_next(queue, looking, most_looking) {
            Some(call) => call,
            None => match queue.recv() {
                Ok(call) => call,
                Err(_) => return,
            },
        };
        // A panic drops the call's sender, which tells its caller; the thread serves on.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(call));
    }
}

/// The next call, if one comes within [`LOOK_FOR`] and fewer than `most_looking` other
/// threads are looking already.
fn look_for_next(queue: &Receiver<Call>, looking: &AtomicUsize, most_looking: usize) -> Option<Call> {
    if looking.fetch_add(1, Ordering::AcqRel) >= most_looking {
        looking.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    let until = Instant::now() + LOOK_FOR;
    let found = loop {
        match queue.try_recv() {
            Ok(call) => break Some(call),
            Err(TryRecvError::Disconnected) => break None,
            Err(TryRecvError::Empty) if Instant::now() >= until => break None,
            Err(TryRecvError::Empty) => std::thread::yield_now(),
        }
    };
    looking.fetch_sub(1, Ordering::AcqRel);
    found
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
        ended.into_iter().map(|ended| ended.blocking_recv().unwrap()).collect()
    }

    #[test]
    fn as_many_calls_run_at_once_as_there_are_threads() {
        let runtime = runtime();
        let threads = PluginThreads::start(8, runtime.handle()).unwrap();
        assert_eq!(all_at_once(&threads, 8, |index| index), (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn a_call_that_panics_is_reported_and_its_thread_serves_on() {
        let runtime = runtime();
        let threads = PluginThreads::start(1, runtime.handle()).unwrap();
        let panicked = threads.run(|| -> u32 { panic!("a call that panics") });
        assert!(panicked.blocking_recv().is_err(), "its caller hears of it");
        assert_eq!(threads.run(|| 7).blocking_recv().unwrap(), 7, "the one thread still runs calls");
    }

    #[test]
    fn calls_run_inside_the_runtime_and_the_threads_end_with_the_pool() {
        let runtime = runtime();
        let threads = PluginThreads::start(2, runtime.handle()).unwrap();
        let inside = threads.run(|| tokio::runtime::Handle::try_current().is_ok());
        assert!(inside.blocking_recv().unwrap(), "WASI's blocking calls need the runtime");
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
