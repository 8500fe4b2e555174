//! A storage backend from outside the crate: `CacheManagerBuilder::open_with_store` takes any
//! `Store`, and the LRU, group commit and coherence between processes work over it. The backend
//! here wraps the SQLite store and counts what the manager asks of it, which is what a second
//! backend (PostgreSQL) would be asked.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use easycaching::store::{
    Applied, CacheId, ChangeToken, Changes, HandoffStats, KeyRange, Listed, QueueId, SqliteStore, Stats,
    Store, Stored, SyncTarget, Target, Writes,
};
use easycaching::{CacheManager, Durability, Error, Json, Page, Result};

mod common;
use common::json;

/// The SQLite store, with a count of the calls that write, sync and read through it.
struct Counting {
    inner: SqliteStore,
    counts: Arc<Counts>,
}

/// What went through a [`Counting`] store, kept by the test after the manager took the store.
#[derive(Default)]
struct Counts {
    applied: AtomicUsize,
    synced: AtomicUsize,
    reads: AtomicUsize,
}

impl Counting {
    fn read(&self) {
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
    }
}

impl Store for Counting {
    fn apply(&self, writes: &mut dyn Writes) -> Applied {
        self.counts.applied.fetch_add(1, Ordering::Relaxed);
        self.inner.apply(writes)
    }

    fn sync(&self, target: SyncTarget) -> Result<()> {
        self.counts.synced.fetch_add(1, Ordering::Relaxed);
        self.inner.sync(target)
    }

    fn get(&self, cache: CacheId, key: &str) -> Result<Option<Stored>> {
        self.read();
        self.inner.get(cache, key)
    }

    fn get_many(&self, cache: CacheId, keys: &[&str], max_bytes: usize) -> Result<Vec<Option<Stored>>> {
        self.read();
        self.inner.get_many(cache, keys, max_bytes)
    }

    fn contains(&self, cache: CacheId, key: &str) -> Result<bool> {
        self.read();
        self.inner.contains(cache, key)
    }

    fn entries(
        &self,
        cache: CacheId,
        range: KeyRange<'_>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page<(String, Json)>> {
        self.read();
        self.inner.entries(cache, range, limit, max_bytes)
    }

    fn keys(&self, cache: CacheId, range: KeyRange<'_>, limit: usize) -> Result<Page<String>> {
        self.read();
        self.inner.keys(cache, range, limit)
    }

    fn cache_stats(&self, cache: CacheId) -> Result<Option<Stats>> {
        self.inner.cache_stats(cache)
    }

    fn find_cache(&self, name: &str) -> Result<Option<CacheId>> {
        self.inner.find_cache(name)
    }

    fn list_caches(&self) -> Result<Vec<Listed>> {
        self.inner.list_caches()
    }

    fn peek(&self, queue: &Target<QueueId>) -> Result<Option<Json>> {
        self.read();
        self.inner.peek(queue)
    }

    fn queue_items(
        &self,
        queue: &Target<QueueId>,
        after: Option<i64>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page<Json, i64>> {
        self.read();
        self.inner.queue_items(queue, after, limit, max_bytes)
    }

    fn queue_stats(&self, queue: QueueId) -> Result<Option<Stats>> {
        self.inner.queue_stats(queue)
    }

    fn find_queue(&self, name: &str) -> Result<Option<QueueId>> {
        self.inner.find_queue(name)
    }

    fn list_queues(&self) -> Result<Vec<Listed>> {
        self.inner.list_queues()
    }

    fn change_token(&self) -> ChangeToken {
        self.inner.change_token()
    }

    fn change_cursor(&self) -> Result<i64> {
        self.inner.change_cursor()
    }

    fn changes_since(&self, cursor: i64) -> Result<Changes> {
        self.inner.changes_since(cursor)
    }

    fn handoff_stats(&self) -> HandoffStats {
        self.inner.handoff_stats()
    }
}

#[test]
fn a_manager_over_a_backend_of_its_own_writes_reads_and_stays_coherent_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seam.db");
    let inner = SqliteStore::open(&path, Durability::Full, Duration::from_secs(10)).unwrap();
    let counts = Arc::new(Counts::default());
    let store = Counting { inner, counts: counts.clone() };
    // The builder's path only names the backend: nothing is opened there (its directory does
    // not even exist).
    let named = dir.path().join("elsewhere").join("named.db");
    let manager = CacheManager::builder(&named).open_with_store(store).unwrap();
    assert_eq!(manager.path(), named);

    let cache = manager.create_cache("c").unwrap();
    cache.set("k", json("1")).unwrap();
    let queue = manager.create_queue("q").unwrap();
    queue.put(json("\"job\"")).unwrap();
    let reads = counts.reads.load(Ordering::Relaxed);
    assert_eq!(queue.items().collect::<Result<Vec<_>>>().unwrap(), [json("\"job\"")]);
    assert!(counts.reads.load(Ordering::Relaxed) > reads, "a queue is scanned through the backend");
    let writes = counts.applied.load(Ordering::Relaxed);
    assert!(writes >= 4, "every write goes through the backend's apply: {writes}");
    assert!(counts.synced.load(Ordering::Relaxed) >= writes, "and is made durable through its sync");
    assert_eq!(cache.get("k").unwrap(), Some(json("1")));

    // Another process's manager, on SQLite directly, sees what went through the backend...
    let other = CacheManager::open(&path).unwrap();
    let in_other = other.open_cache("c").unwrap();
    assert_eq!(in_other.get("k").unwrap(), Some(json("1")));
    assert_eq!(other.open_queue("q").unwrap().get().unwrap(), Some(json("\"job\"")));
    // ...and its writes reach this manager's LRU through the backend's change token and log.
    in_other.set("k", json("2")).unwrap();
    in_other.set("fresh", json("3")).unwrap();
    assert_eq!(cache.get("k").unwrap(), Some(json("2")), "the cached value was replaced elsewhere");
    let reads = counts.reads.load(Ordering::Relaxed);
    assert_eq!(cache.get("fresh").unwrap(), Some(json("3")));
    assert!(counts.reads.load(Ordering::Relaxed) > reads, "a key never cached is read from the backend");
    assert_eq!(queue.len().unwrap(), 0);
    assert_eq!(manager.list_caches().unwrap().len(), 1);

    // A cache deleted elsewhere fails this manager's handle: the deletion reaches it through
    // the backend's change log.
    assert!(other.delete_cache("c").unwrap());
    assert!(matches!(cache.set("k", json("4")), Err(Error::CacheDeleted(_))));
    assert!(matches!(manager.open_cache("c"), Err(Error::NoSuchCache(_))));
    assert!(!dir.path().join("elsewhere").exists(), "nothing was opened at the builder's path");
}
