//! Where the store's I/O runs when its caller drives an async runtime.
//!
//! The synchronous `postgres` client blocks on a tokio runtime of its own, and tokio refuses
//! to start one on a thread that is already inside `block_on` or a task. Async code calling
//! the manager straight from its tasks (an axum handler, a `#[tokio::test]`) would make the
//! client panic. Such calls run instead on a small pool of threads of the store's own, made on
//! first need, and the caller blocks until they return, as it blocks on SQLite's I/O.
//! Every other caller runs its I/O on its own thread, as before, with no hand-over.

use std::sync::OnceLock;

use crate::{Error, Result};

/// The threads of the pool: as many as the read connections kept, so the pool does not
/// queue reads that the connections could serve at once.
const THREADS: usize = super::MAX_IDLE_READERS;

/// The store's pool, made on first need.
#[derive(Default)]
pub(super) struct IoThreads {
    pool: OnceLock<std::result::Result<rayon::ThreadPool, String>>,
}

impl IoThreads {
    /// Runs `io` here, or, when this thread drives an async runtime, on a thread of the pool,
    /// waiting for it. A panic in `io` is raised again here.
    pub(super) fn run<T: Send>(&self, io: impl FnOnce() -> T + Send) -> Result<T> {
        if !in_runtime() {
            return Ok(io());
        }
        let pool = self.pool.get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(THREADS)
                .thread_name(|index| format!("easycaching-pg-io-{index}"))
                .build()
                .map_err(|error| error.to_string())
        });
        match pool {
            Ok(pool) => Ok(pool.install(io)),
            Err(error) => Err(Error::Storage(format!(
                "cannot start the threads that run PostgreSQL I/O for async callers: {error}"
            ))),
        }
    }
}

/// Whether this thread has a tokio runtime: it is inside `block_on` or a task, or has entered
/// one, where the synchronous client may not block on its own.
pub(super) fn in_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}
