//! Waiting for an item: what [`Queue::get_wait`](crate::Queue::get_wait) and
//! [`Queue::lease_wait`](crate::Queue::lease_wait) do while their queue has nothing to hand out.
//!
//! A waiter sleeps until something may have changed, then looks ([`Queue::peek`], a read, so
//! that waiters do not take the write turn for nothing) and takes only when an item waits:
//!
//! - **This process's puts** ring a [`Bell`] the manager's handles share (a put, a give-back, a
//!   release): its waiters wake at once.
//! - **Other processes' commits** move the store's [change token](crate::store::Store::change_token)
//!   (SQLite's wal-index; PostgreSQL's commit notifications, as they arrive), which a waiter
//!   reads (no I/O) at intervals growing from 1 ms to [`LAST_POLL`] as it goes on waiting.
//!   They stay long when the token moves: most commits of a busy database are not puts to
//!   this queue, and a waiter that looked after each would read the queue a thousand times a
//!   second.
//! - **What no commit announces** (a lease that ends; on PostgreSQL, another host's commit
//!   while the store's listening connection is down) is seen by a look every [`LOOK_EVERY`]
//!   at the latest.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::Result;
use crate::queue::Queue;
use crate::store::ChangeToken;

/// The longest a waiter goes between two reads of the change token: how late, at most, it
/// sees another process's put on SQLite.
pub(crate) const LAST_POLL: Duration = Duration::from_millis(16);
/// The longest a waiter goes without looking at its queue, whatever it was told.
pub(crate) const LOOK_EVERY: Duration = Duration::from_millis(100);
/// The first interval between two reads of the change token.
const FIRST_POLL: Duration = Duration::from_millis(1);

/// Rung whenever this process makes items available to take; waiters sleep on it.
#[derive(Debug, Default)]
pub(crate) struct Bell {
    state: Mutex<BellState>,
    ringing: Condvar,
}

#[derive(Debug, Default)]
struct BellState {
    /// How many times it has rung.
    rung: u64,
    /// How many threads sleep on it: a ring with none wakes nobody (no system call).
    sleeping: usize,
}

impl Bell {
    /// Wakes every waiter.
    pub(crate) fn ring(&self) {
        let mut state = self.lock();
        state.rung += 1;
        if state.sleeping > 0 {
            self.ringing.notify_all();
        }
    }

    /// How many times it has rung so far.
    fn rung(&self) -> u64 {
        self.lock().rung
    }

    /// Sleeps until it rings after `seen` rings, or until `until`; whether it rang.
    fn wait(&self, seen: u64, until: Instant) -> bool {
        let mut state = self.lock();
        loop {
            if state.rung != seen {
                return true;
            }
            let Some(left) = until.checked_duration_since(Instant::now()).filter(|left| !left.is_zero())
            else {
                return false;
            };
            state.sleeping += 1;
            state = self.ringing.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
            state.sleeping -= 1;
        }
    }

    fn lock(&self) -> MutexGuard<'_, BellState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Calls `take` until it hands something out, or until `timeout` has passed (`None` then),
/// sleeping in between until an item may wait in `queue`. `take` is called at once, and a
/// `timeout` of zero waits no further.
pub(crate) fn until_taken<T>(
    queue: &Queue,
    timeout: Duration,
    mut take: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    // A timeout past what an `Instant` holds waits for ever.
    let deadline = Instant::now().checked_add(timeout);
    let bell = &queue.shared.queue_bell;
    let store = &queue.shared.store;
    loop {
        // Read before taking: a put in between rings or moves them, and is not slept through.
        let mut seen = Seen { rung: bell.rung(), token: store.change_token(), poll: FIRST_POLL };
        if let Some(taken) = take()? {
            return Ok(Some(taken));
        }
        loop {
            if seen.wait_for_news(queue, deadline).is_none() {
                return Ok(None);
            }
            if queue.peek()?.is_some() {
                break;
            }
        }
    }
}

/// [`until_taken`] for takes of several items at once: calls `take` until it hands out at
/// least one, or until `timeout` has passed (empty then).
pub(crate) fn until_any_taken<T>(
    queue: &Queue,
    timeout: Duration,
    mut take: impl FnMut() -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let taken = until_taken(queue, timeout, || {
        let items = take()?;
        Ok((!items.is_empty()).then_some(items))
    })?;
    Ok(taken.unwrap_or_default())
}

/// What a waiter knew when it last looked, and how long it sleeps before it reads the token
/// again.
struct Seen {
    rung: u64,
    token: ChangeToken,
    poll: Duration,
}

/// Why a waiter looks at its queue again.
#[derive(Debug, PartialEq, Eq)]
enum News {
    /// This process made items available.
    Rung,
    /// A process committed something.
    Moved,
    /// Nothing told it, but it is time to look.
    Due,
}

impl Seen {
    /// Sleeps until the queue may hold something new, and says why; `None` once `deadline`
    /// has passed.
    fn wait_for_news(&mut self, queue: &Queue, deadline: Option<Instant>) -> Option<News> {
        let since = Instant::now();
        loop {
            let now = Instant::now();
            if deadline.is_some_and(|deadline| now >= deadline) {
                return None;
            }
            let look_at = since + LOOK_EVERY;
            if now >= look_at {
                return Some(News::Due);
            }
            let until = deadline.map_or(look_at, |deadline| deadline.min(look_at)).min(now + self.poll);
            if queue.shared.queue_bell.wait(self.rung, until) {
                self.rung = queue.shared.queue_bell.rung();
                return Some(News::Rung);
            }
            self.poll = (self.poll * 2).min(LAST_POLL);
            let token = queue.shared.store.change_token();
            if token != self.token {
                self.token = token;
                return Some(News::Moved);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;
    use crate::CacheManager;

    const LATER: Duration = Duration::from_millis(20);

    fn seen(queue: &Queue) -> Seen {
        Seen {
            rung: queue.shared.queue_bell.rung(),
            token: queue.shared.store.change_token(),
            poll: FIRST_POLL,
        }
    }

    fn far() -> Option<Instant> {
        Some(Instant::now() + Duration::from_secs(10))
    }

    /// The news a waiter gets, past any look that was merely due (a slow disk can delay a
    /// commit that long).
    fn news(waiter: &mut Seen, queue: &Queue) -> Option<News> {
        loop {
            match waiter.wait_for_news(queue, far()) {
                Some(News::Due) => continue,
                news => return news,
            }
        }
    }

    #[test]
    fn puts_here_ring_and_puts_elsewhere_move_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let manager = CacheManager::open(dir.path().join("test.db")).unwrap();
        let other = CacheManager::open(dir.path().join("test.db")).unwrap();
        let queue = manager.create_queue("jobs").unwrap();
        let theirs = other.open_queue("jobs").unwrap();
        let bell = &queue.shared.queue_bell;
        let far = Instant::now() + Duration::from_secs(10);
        thread::scope(|scope| {
            // (The bell alone: a put of this manager moves the token too.)
            let rung = bell.rung();
            scope.spawn(|| {
                thread::sleep(LATER);
                queue.put_value("1")
            });
            assert!(bell.wait(rung, far), "a put rings");
            let rung = bell.rung();
            scope.spawn(|| {
                thread::sleep(LATER);
                let taken = queue.get_many(2).unwrap();
                queue.give_back(taken)
            });
            assert!(bell.wait(rung, far), "a give-back rings");
            let leased = queue.lease(Duration::from_secs(60)).unwrap().expect("item 1");
            let rung = bell.rung();
            let releaser = &queue;
            scope.spawn(move || {
                thread::sleep(LATER);
                releaser.release(&leased.receipt)
            });
            assert!(bell.wait(rung, far), "a release rings");

            // Another manager's put rings nothing of this one's, but moves the wal-index.
            let mut waiter = seen(&queue);
            scope.spawn(|| {
                thread::sleep(LATER);
                theirs.put_value("2")
            });
            assert_eq!(news(&mut waiter, &queue), Some(News::Moved));
        });
    }

    #[test]
    fn a_database_busy_with_other_writes_is_not_looked_at_after_every_commit() {
        const BUSY: Duration = Duration::from_millis(500);
        let dir = tempfile::tempdir().unwrap();
        let manager = CacheManager::open(dir.path().join("test.db")).unwrap();
        let other = CacheManager::open(dir.path().join("test.db")).unwrap();
        let queue = manager.create_queue("jobs").unwrap();
        let cache = other.create_cache("busy").unwrap();
        let writing = std::sync::atomic::AtomicBool::new(true);
        let looks = thread::scope(|scope| {
            scope.spawn(|| {
                let mut n = 0u64;
                while writing.load(std::sync::atomic::Ordering::Relaxed) {
                    cache.set_value("counter", &n).unwrap();
                    n += 1;
                }
            });
            let mut waiter = seen(&queue);
            let end = Instant::now() + BUSY;
            let mut looks = 0;
            while waiter.wait_for_news(&queue, Some(end)).is_some() {
                looks += 1;
            }
            writing.store(false, std::sync::atomic::Ordering::Relaxed);
            looks
        });
        // Commits come every few hundred microseconds; a look after each would be hundreds.
        // At most one a 16 ms read of the token, and the first few reads sooner: about 35.
        let most = (BUSY.as_millis() / LAST_POLL.as_millis()) as usize + 10;
        assert!(looks <= most, "{looks} looks in {BUSY:?}, more than {most}");
    }

    #[test]
    fn with_no_news_it_looks_anyway_until_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let manager = CacheManager::open(dir.path().join("test.db")).unwrap();
        let queue = manager.create_queue("jobs").unwrap();
        let mut waiter = seen(&queue);
        let started = Instant::now();
        assert_eq!(waiter.wait_for_news(&queue, far()), Some(News::Due));
        assert!(started.elapsed() >= LOOK_EVERY);
        let started = Instant::now();
        assert_eq!(waiter.wait_for_news(&queue, Some(started + LATER)), None);
        assert!(started.elapsed() >= LATER);
        assert_eq!(waiter.wait_for_news(&queue, Some(started)), None, "a deadline passed");
    }
}
