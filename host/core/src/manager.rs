//! [`CacheManager`]: the entry point, and the state every handle of a database shares.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::cache::{ABSENT_KEYS_BUDGET, AbsentKeys, Cache, CacheState};
use crate::group_commit::{Gathering, GroupCommit, WriteStats};
use crate::options::CacheManagerBuilder;
use crate::queue::Queue;
use crate::queue_wait::Bell;
use crate::store::{
    Applied, AtomicChangeToken, CacheId, Change, ChangeToken, Changes, Copied, DiskUsage, Listed, Outcome,
    OwnCommit, QueueId, SqliteStore, Store, Target, Write, Writes,
};
use crate::{Clock, Error, Json, Limits, Quota, Result, validate_name};

/// How many times a cache is created again when it is deleted before it could be opened.
const CREATE_ATTEMPTS: usize = 8;

/// Opens a database of named caches and queues, and hands out handles to them.
///
/// Cloning a manager is cheap; clones share everything. Many managers, in many processes, may
/// open the same database file at once: a write through one is seen by every other from the
/// moment it returns.
///
/// ```
/// use easycaching::CacheManager;
///
/// # let dir = tempfile::tempdir()?;
/// let manager = CacheManager::open(dir.path().join("app.db"))?;
/// let test = manager.create_cache("test")?;
/// test.set_value("foo", "bar")?;
///
/// // Elsewhere, the same cache by name.
/// let again = manager.open_cache("test")?;
/// assert_eq!(again.get_value::<String>("foo")?.as_deref(), Some("bar"));
///
/// let jobs = manager.create_queue("jobs")?;
/// jobs.put_value(&serde_json::json!({"task": "resize", "id": 7}))?;
/// assert_eq!(jobs.len()?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct CacheManager {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CacheManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheManager").field("path", &self.shared.path).finish()
    }
}

/// A cache or queue as listed by [`CacheManager::list_caches`] and
/// [`CacheManager::list_queues`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The name.
    pub name: String,
    /// Entries in the cache, items in the queue.
    pub entries: u64,
    /// Bytes of keys and values (of items, for a queue).
    pub bytes: u64,
}

/// What a backup holds, as [`CacheManager::backup`] answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// Every cache, in name order, with its size.
    pub caches: Vec<Summary>,
    /// Every queue, in name order, with its size.
    pub queues: Vec<Summary>,
    /// The size of the file written, in bytes.
    pub bytes: u64,
}

impl From<Copied> for Backup {
    fn from(copied: Copied) -> Self {
        Backup {
            caches: copied.caches.into_iter().map(Summary::from).collect(),
            queues: copied.queues.into_iter().map(Summary::from).collect(),
            bytes: copied.bytes,
        }
    }
}

/// What [`CacheManager::restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// What the database holds now.
    pub holds: Backup,
    /// Where the database it replaced went; `None` when there was none.
    pub replaced: Option<PathBuf>,
}

impl From<Listed> for Summary {
    fn from(listed: Listed) -> Self {
        Summary { name: listed.name, entries: listed.stats.entries, bytes: listed.stats.bytes }
    }
}

impl CacheManager {
    /// Opens the database at `path` with the default settings, creating it when needed.
    pub fn open(path: impl AsRef<Path>) -> Result<CacheManager> {
        Self::builder(path).open()
    }

    /// Starts configuring a manager for the database at `path`.
    pub fn builder(path: impl AsRef<Path>) -> CacheManagerBuilder {
        CacheManagerBuilder::new(path.as_ref())
    }

    /// Starts configuring a manager over the PostgreSQL database at `url`
    /// (`postgres://user:password@host:port/dbname`; cargo feature `postgres`), its tables in
    /// the schema `easycaching` unless [`CacheManagerBuilder::postgres_schema`] names another.
    /// [`open`](CacheManagerBuilder::open) connects, creating the schema and tables when they
    /// do not exist. [`CacheManager::path`] is then the server as messages name it,
    /// `postgres://user@host:port/dbname`, without the password.
    /// [`busy_timeout`](CacheManagerBuilder::busy_timeout) bounds the wait for another
    /// writer's lock; [`durability`](CacheManagerBuilder::durability) and
    /// [`checkpoint_pages`](CacheManagerBuilder::checkpoint_pages) are SQLite's and not applied
    /// (every commit is durable on the server when it returns). See
    /// [`store::postgres`](crate::store::postgres) for what differs from SQLite.
    ///
    /// ```no_run
    /// use easycaching::CacheManager;
    ///
    /// let manager = CacheManager::builder_postgres("postgres://app@db.internal/app").lru_capacity(1000).open()?;
    /// manager.create_cache("sessions")?.set_value("ada", &1)?;
    /// # Ok::<(), easycaching::Error>(())
    /// ```
    #[cfg(feature = "postgres")]
    pub fn builder_postgres(url: &str) -> CacheManagerBuilder {
        let described = crate::store::postgres::describe_url(url);
        let mut builder = CacheManagerBuilder::new(Path::new(&described));
        builder.postgres = Some(crate::options::PostgresTarget {
            url: url.to_owned(),
            schema: crate::store::postgres::DEFAULT_SCHEMA.to_owned(),
        });
        builder
    }

    pub(crate) fn from_builder(options: CacheManagerBuilder) -> Result<CacheManager> {
        #[cfg(feature = "postgres")]
        if let Some(target) = &options.postgres {
            let store = crate::store::PostgresStore::open_in_schema(
                &target.url,
                &target.schema,
                options.busy_timeout,
            )?
            .with_clock(options.clock.clone());
            return Self::from_store(Box::new(store), options.path.clone(), &options);
        }
        let store = SqliteStore::open(&options.path, options.durability, options.busy_timeout)?
            .with_clock(options.clock.clone());
        store.set_checkpoint_pages(options.checkpoint_pages)?;
        if !store.detects_changes_in_memory() {
            tracing::warn!(
                path = %options.path.display(),
                "cannot read the wal-index (the -shm file beside the database); every read will ask \
                 the database for other processes' writes, which is slower"
            );
        }
        let path = store.path().to_owned();
        Self::from_store(Box::new(store), path, &options)
    }

    pub(crate) fn from_store(
        store: Box<dyn Store>,
        path: PathBuf,
        options: &CacheManagerBuilder,
    ) -> Result<CacheManager> {
        Ok(CacheManager { shared: Arc::new(Shared::new(store, path, options)?) })
    }

    /// The database file (its canonical path); for a manager opened over a store of its own
    /// ([`CacheManagerBuilder::open_with_store`]), the path the builder was given.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The clock expiry and leases are told by (see [`CacheManagerBuilder::clock`]).
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// How many writes this manager made, in how many commits: with many concurrent writers
    /// group commit makes the second much smaller than the first. And how many writes went
    /// between this process and others, committed one for the other.
    pub fn write_stats(&self) -> WriteStats {
        let handoffs = self.shared.store.handoff_stats();
        WriteStats {
            handed_over: handoffs.handed_over,
            committed_for_others: handoffs.committed_for_others,
            ..self.shared.writes.stats()
        }
    }

    /// How much room the database file takes, and how much of that is free pages, which
    /// later writes reuse before the file grows: deleting and clearing never shrink the file.
    /// `None` for a store with no file of its own (PostgreSQL). A backup holds only the pages
    /// in use: [`CacheManager::restore`]-ing one gives the free ones back.
    ///
    /// ```
    /// use easycaching::CacheManager;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let manager = CacheManager::open(dir.path().join("app.db"))?;
    /// let cache = manager.create_cache("test")?;
    /// let value = easycaching::Json::from_value(&"x".repeat(500))?;
    /// cache.set_many((0..1000).map(|i| (format!("key{i}"), value.clone())))?;
    /// let full = manager.disk_usage()?.expect("a file");
    /// cache.clear()?;
    /// let cleared = manager.disk_usage()?.expect("a file");
    /// assert_eq!(cleared.file_bytes, full.file_bytes);
    /// assert!(cleared.free_bytes > 500 * 1000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn disk_usage(&self) -> Result<Option<DiskUsage>> {
        self.shared.store.disk_usage()
    }

    /// The size limits in force.
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// Takes in other processes' writes now, forgetting the cached entries they changed.
    ///
    /// Every read does this first, so there is no need to call it: it is for callers that want
    /// stale entries dropped eagerly, and for measuring the cost of coherence on its own. When
    /// no process has committed since the last look it costs two loads from the shared
    /// wal-index and two comparisons.
    pub fn refresh(&self) -> Result<()> {
        self.shared.refresh()
    }

    /// Opens the cache called `name`, creating it empty when it does not exist, as the
    /// original `create_cache` does.
    pub fn create_cache(&self, name: &str) -> Result<Cache> {
        self.create_cache_within(name, &self.shared.default_quota)
    }

    /// Like [`CacheManager::create_cache`], for a handle held to `quota`; when the quota is
    /// shared by a prefix, a new cache's name counts toward it.
    pub fn create_cache_within(&self, name: &str, quota: &Quota) -> Result<Cache> {
        validate_name(name)?;
        if let Some(cache) = self.registered_cache(name)? {
            return Ok(cache.with_quota(quota.clone()));
        }
        // Another thread or process may delete the cache between finding or creating it and
        // this process taking it in: then it is looked for, or created, again, as asked.
        for _ in 0..CREATE_ATTEMPTS {
            // A cache that exists needs no write (nor the write lock) to be opened.
            let id = match self.shared.store.find_cache(name)? {
                Some(id) => id,
                None => match self
                    .shared
                    .write(Write::CreateCache { name: name.to_owned(), quota: quota.clone() })?
                {
                    Outcome::Created { id, .. } => CacheId(id),
                    other => return Err(unexpected(other)),
                },
            };
            match self.shared.install(id, name) {
                Ok(state) => return Ok(self.handle(state).with_quota(quota.clone())),
                Err(Error::NoSuchCache(_)) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(Error::CacheDeleted(name.to_owned()))
    }

    /// Opens the existing cache called `name`; [`Error::NoSuchCache`] when there is none.
    pub fn open_cache(&self, name: &str) -> Result<Cache> {
        validate_name(name)?;
        if let Some(cache) = self.registered_cache(name)? {
            return Ok(cache);
        }
        match self.shared.store.find_cache(name)? {
            Some(id) => self.shared.install(id, name).map(|state| self.handle(state)),
            None => Err(Error::NoSuchCache(name.to_owned())),
        }
    }

    /// Every cache in the database, in name order, with its size.
    pub fn list_caches(&self) -> Result<Vec<Summary>> {
        Ok(self.shared.store.list_caches()?.into_iter().map(Summary::from).collect())
    }

    /// Deletes the cache called `name` and its entries; `true` when it existed. Handles to it
    /// fail with [`Error::CacheDeleted`] from then on, in every process (on PostgreSQL, another
    /// host learns of the delete a moment later, or at once when one of its writes finds the
    /// cache gone; until then its reads answer what its LRU held, and find nothing else).
    pub fn delete_cache(&self, name: &str) -> Result<bool> {
        validate_name(name)?;
        match self.shared.write(Write::DropCache { name: name.to_owned() })? {
            Outcome::Dropped(id) => Ok(id.is_some()),
            other => Err(unexpected(other)),
        }
    }

    /// Opens the queue called `name`, creating it empty when it does not exist.
    pub fn create_queue(&self, name: &str) -> Result<Queue> {
        self.create_queue_within(name, &self.shared.default_quota)
    }

    /// Like [`CacheManager::create_queue`], for a handle held to `quota`; when the quota is
    /// shared by a prefix, a new queue's name counts toward it.
    pub fn create_queue_within(&self, name: &str, quota: &Quota) -> Result<Queue> {
        validate_name(name)?;
        // A queue that exists needs no write (nor the write lock) to be opened.
        if let Some(id) = self.shared.store.find_queue(name)? {
            return Ok(self.queue_handle(id, name).with_quota(quota.clone()));
        }
        match self.shared.write(Write::CreateQueue { name: name.to_owned(), quota: quota.clone() })? {
            Outcome::Created { id, .. } => Ok(self.queue_handle(QueueId(id), name).with_quota(quota.clone())),
            other => Err(unexpected(other)),
        }
    }

    /// Opens the existing queue called `name`; [`Error::NoSuchQueue`] when there is none.
    pub fn open_queue(&self, name: &str) -> Result<Queue> {
        validate_name(name)?;
        match self.shared.store.find_queue(name)? {
            Some(id) => Ok(self.queue_handle(id, name)),
            None => Err(Error::NoSuchQueue(name.to_owned())),
        }
    }

    /// Every queue in the database, in name order, with its size.
    pub fn list_queues(&self) -> Result<Vec<Summary>> {
        Ok(self.shared.store.list_queues()?.into_iter().map(Summary::from).collect())
    }

    /// Deletes the queue called `name` and its items; `true` when it existed.
    pub fn delete_queue(&self, name: &str) -> Result<bool> {
        validate_name(name)?;
        match self.shared.write(Write::DropQueue { name: name.to_owned() })? {
            Outcome::Dropped(id) => Ok(id.is_some()),
            other => Err(unexpected(other)),
        }
    }

    /// Writes a copy of the whole database, every cache and queue as of one moment, to a new
    /// file at `dest`, while this and other processes go on reading and writing, and answers
    /// what the copy holds.
    ///
    /// The copy is a database of its own: open it as any other, or put it in place of the
    /// database once every process using that has stopped (see the README's "Backups"). It is
    /// checked and fsynced before it gets its name, so a file at `dest` is always a whole
    /// backup, never a torn one; `dest` must not exist, and nothing is ever replaced. Copying
    /// the database file with `cp` is no backup: its newest commits are in the `-wal` file.
    ///
    /// ```
    /// use easycaching::CacheManager;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let manager = CacheManager::open(dir.path().join("app.db"))?;
    /// manager.create_cache("test")?.set_value("foo", "bar")?;
    ///
    /// let backup = manager.backup(dir.path().join("app-backup.db"))?;
    /// assert_eq!((backup.caches[0].name.as_str(), backup.caches[0].entries), ("test", 1));
    ///
    /// let copy = CacheManager::open(dir.path().join("app-backup.db"))?;
    /// assert_eq!(copy.open_cache("test")?.get_value::<String>("foo")?.as_deref(), Some("bar"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backup(&self, dest: impl AsRef<Path>) -> Result<Backup> {
        Ok(Backup::from(self.shared.store.backup(dest.as_ref())?))
    }

    /// Puts a copy of the backup at `backup` (made by [`CacheManager::backup`]) in place of the
    /// database at `database`, and answers what it holds now and where the database it
    /// replaced went.
    ///
    /// No process may have `database` open: this refuses, naming one, when another has. It
    /// cannot see managers of its own process, so drop those first (every clone, and every
    /// handle from them). The database replaced is moved aside whole, with its `-wal`, to
    /// `<database>.replaced-<seconds since 1970>`, which opens as a database of its own, so a
    /// restore from the wrong backup loses nothing. The backup is left as it was, and the
    /// database is replaced only once the copy is written, checked and fsynced. Should another
    /// program hold the backup locked, this waits for it up to [`DEFAULT_BUSY_TIMEOUT`](crate::DEFAULT_BUSY_TIMEOUT).
    ///
    /// ```
    /// use easycaching::CacheManager;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let (db, backup) = (dir.path().join("app.db"), dir.path().join("app-backup.db"));
    /// let manager = CacheManager::open(&db)?;
    /// manager.create_cache("test")?.set_value("foo", "kept")?;
    /// manager.backup(&backup)?;
    /// manager.open_cache("test")?.set_value("foo", "lost")?;
    /// drop(manager);
    ///
    /// let restored = CacheManager::restore(&backup, &db)?;
    /// assert!(restored.replaced.is_some());
    /// let manager = CacheManager::open(&db)?;
    /// assert_eq!(manager.open_cache("test")?.get_value::<String>("foo")?.as_deref(), Some("kept"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn restore(backup: impl AsRef<Path>, database: impl AsRef<Path>) -> Result<Restored> {
        let (copied, replaced) = SqliteStore::restore(backup.as_ref(), database.as_ref())?;
        Ok(Restored { holds: Backup::from(copied), replaced })
    }

    /// A handle from this process's registry, after taking in other processes' changes (one
    /// of which may have deleted the cache).
    fn registered_cache(&self, name: &str) -> Result<Option<Cache>> {
        self.shared.refresh()?;
        Ok(self.shared.registered_by_name(name).map(|state| self.handle(state)))
    }

    fn handle(&self, state: Arc<CacheState>) -> Cache {
        Cache { shared: self.shared.clone(), state, quota: self.shared.default_quota.clone() }
    }

    fn queue_handle(&self, id: QueueId, name: &str) -> Queue {
        Queue {
            shared: self.shared.clone(),
            target: Target { id, name: name.into() },
            quota: self.shared.default_quota.clone(),
        }
    }
}

pub(crate) fn unexpected(outcome: Outcome) -> Error {
    Error::Storage(format!("internal error: unexpected outcome {outcome:?}"))
}

/// What every handle of one manager shares.
pub(crate) struct Shared {
    pub(crate) store: Box<dyn Store>,
    pub(crate) limits: Limits,
    pub(crate) max_cached_value_bytes: usize,
    path: PathBuf,
    lru_capacity: usize,
    /// The memory all the caches' LRUs may spend on keys remembered absent.
    absent_keys: Arc<AbsentKeys>,
    default_quota: Quota,
    registry: Mutex<Registry>,
    writes: GroupCommit<Write, Result<Outcome>>,
    coherence: Coherence,
    /// What expiry and leases are told by (see [`CacheManagerBuilder::clock`]).
    pub(crate) clock: Clock,
    /// Rung when this process makes queue items available; `get_wait` and `lease_wait` sleep on it.
    pub(crate) queue_bell: Bell,
}

/// The in-memory state of every cache this process has opened, by id and by name.
#[derive(Default)]
struct Registry {
    by_id: HashMap<CacheId, Arc<CacheState>>,
    by_name: HashMap<Arc<str>, CacheId>,
}

/// How far this process has taken in the other processes' changes.
///
/// `synced` is the change token as of the last time the change log was read (or this
/// process's own commit was known to be the only one since). While the store's token still
/// equals it, nobody has committed and every LRU is current: that check is the whole cost of
/// coherence on a cache hit. `cursor` is the change-log position read up to; its lock also
/// orders the application of changes to the LRUs, ours and theirs.
struct Coherence {
    synced: AtomicChangeToken,
    cursor: Mutex<i64>,
}

impl Coherence {
    fn is_synced(&self, token: ChangeToken) -> bool {
        self.synced.matches(token)
    }

    fn set_synced(&self, token: ChangeToken) {
        self.synced.store(token);
    }

    fn lock_cursor(&self) -> MutexGuard<'_, i64> {
        self.cursor.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Shared {
    fn new(store: Box<dyn Store>, path: PathBuf, options: &CacheManagerBuilder) -> Result<Shared> {
        // The token first: a commit between the two reads is re-read later, harmlessly, since
        // nothing is cached yet.
        let token = store.change_token();
        let cursor = store.change_cursor()?;
        let coherence = Coherence { synced: AtomicChangeToken::new(token), cursor: Mutex::new(cursor) };
        Ok(Shared {
            store,
            limits: options.limits,
            max_cached_value_bytes: options.max_cached_value_bytes,
            path,
            lru_capacity: options.lru_capacity,
            absent_keys: Arc::new(AbsentKeys::new(ABSENT_KEYS_BUDGET)),
            default_quota: options.default_quota.clone(),
            registry: Mutex::default(),
            writes: GroupCommit::new(options.max_batch_writes),
            coherence,
            clock: options.clock.clone(),
            queue_bell: Bell::default(),
        })
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn registered_by_name(&self, name: &str) -> Option<Arc<CacheState>> {
        let registry = self.registry();
        registry.by_name.get(name).and_then(|id| registry.by_id.get(id)).cloned()
    }

    /// The state of cache `id`, made and registered when this process has none yet.
    fn install(&self, id: CacheId, name: &str) -> Result<Arc<CacheState>> {
        let state = {
            let mut registry = self.registry();
            if let Some(state) = registry.by_id.get(&id) {
                return Ok(state.clone());
            }
            let name: Arc<str> = name.into();
            let state = Arc::new(CacheState::new(
                Target { id, name: name.clone() },
                self.lru_capacity,
                self.absent_keys.clone(),
                self.clock.clone(),
            ));
            registry.by_id.insert(id, state.clone());
            registry.by_name.insert(name, id);
            state
        };
        // Had the cache been deleted before it was registered, that change may already have
        // been taken in and missed this state: look once.
        if self.store.cache_stats(id)?.is_none() {
            self.unregister(id);
            return Err(Error::NoSuchCache(name.to_owned()));
        }
        Ok(state)
    }

    fn unregister(&self, id: CacheId) {
        let mut registry = self.registry();
        if let Some(state) = registry.by_id.remove(&id) {
            registry.by_name.remove(&state.target.name);
            state.mark_dropped();
        }
    }

    fn registered(&self, id: CacheId) -> Option<Arc<CacheState>> {
        self.registry().by_id.get(&id).cloned()
    }

    /// Submits one write to the group commit and waits until it is durable.
    pub(crate) fn write(&self, write: Write) -> Result<Outcome> {
        self.writes.submit(
            write,
            |batch| {
                let Applied { mut results, sync, mut own_commit } = self.store.apply(batch);
                // Durable before anyone is answered: nothing to do when the commit fsynced
                // inside itself; otherwise the fsync runs outside the database's write lock,
                // so other processes commit meanwhile. Even a batch that failed as a whole
                // waits (for what it saw): its errors may tell of other processes' commits (a
                // cache deleted), not to be seen before they are durable.
                if let Err(error) = self.store.sync(sync) {
                    // Which writes reached the disk cannot be told: each gets the error.
                    results = batch.writes().map(|_| Err(error.clone())).collect();
                    own_commit = None;
                }
                self.after_commit(batch.writes(), &results, own_commit);
                results
            },
            || {
                Err(Error::Storage(
                    "internal error: a write batch panicked; its writes may or may not have been stored"
                        .into(),
                ))
            },
        )
    }

    /// Brings the LRUs up to date with a batch just committed. Runs in commit order (one
    /// batch at a time) under the cursor lock, so it cannot interleave with taking in other
    /// processes' changes.
    fn after_commit<'w>(
        &self,
        writes: impl Iterator<Item = &'w Write>,
        results: &[Result<Outcome>],
        own: Option<OwnCommit>,
    ) {
        let mut cursor = self.coherence.lock_cursor();
        // Written values go into the LRU only when nobody else committed between our last look
        // at the change log and our commit; otherwise the keys are dropped and read afresh.
        let own = own.filter(|own| self.coherence.is_synced(own.before));
        for (write, result) in writes.zip(results) {
            // A failed write may still have committed (its fsync failed after the commit):
            // its keys are forgotten, never trusted.
            let outcome = result.as_ref().ok();
            let trusted = own.is_some() && outcome.is_some();
            // What the write left under `key` (its value and expiry, or none), kept when
            // trusted.
            let learn = |state: &CacheState, key: &str, value: Option<(&Json, Option<i64>)>| {
                if trusted {
                    state.store(key, value, self.max_cached_value_bytes);
                } else {
                    state.forget(key);
                }
            };
            // The value a write that keeps the entry's expiry left under `key`.
            let learn_keeping_expiry = |state: &CacheState, key: &str, value: &Json| {
                if trusted {
                    state.store_keeping_expiry(key, value, self.max_cached_value_bytes);
                } else {
                    state.forget(key);
                }
            };
            match write {
                Write::Set { cache, entries, expires_at, .. } => {
                    if let Some(state) = self.registered(cache.id) {
                        entries
                            .iter()
                            .for_each(|(key, value)| learn(&state, key, Some((value, *expires_at))));
                    }
                }
                Write::Expire { cache, key, .. } => {
                    if let Some(state) = self.registered(cache.id) {
                        state.forget(key);
                    }
                }
                Write::Increment { cache, key, .. } => {
                    if let Some(state) = self.registered(cache.id) {
                        match outcome {
                            Some(Outcome::Integer(sum)) => {
                                learn_keeping_expiry(&state, key, &Json::trusted(sum.to_string()))
                            }
                            _ => state.forget(key),
                        }
                    }
                }
                Write::CompareAndSwap { cache, key, value, .. } => {
                    if let Some(state) = self.registered(cache.id) {
                        match outcome {
                            Some(Outcome::Swapped(true)) => match value {
                                Some(value) => learn_keeping_expiry(&state, key, value),
                                None => learn(&state, key, None),
                            },
                            // A mismatch changed nothing; it may mean that what this process
                            // last read of the key is out of date, so the next read goes to
                            // the database.
                            _ => state.forget(key),
                        }
                    }
                }
                Write::Delete { cache, keys } => {
                    if let Some(state) = self.registered(cache.id) {
                        keys.iter().for_each(|key| learn(&state, key, None));
                    }
                }
                Write::Clear { cache, prefix } => {
                    if let Some(state) = self.registered(cache.id) {
                        state.forget_prefix(prefix);
                    }
                }
                Write::DropCache { .. } => {
                    if let Some(Outcome::Dropped(Some(id))) = outcome {
                        self.unregister(CacheId(*id));
                    }
                }
                _ => {}
            }
        }
        if let Some(own) = own {
            for (cache, key) in &own.others_keys {
                if let Some(state) = self.registered(*cache) {
                    state.forget(key);
                }
            }
            self.coherence.set_synced(own.after);
            if let Some(own_cursor) = own.cursor {
                *cursor = own_cursor;
            }
        }
    }

    /// Takes in other processes' changes, if there were any since the last look. On the hit
    /// path this is two memory loads and two comparisons.
    pub(crate) fn refresh(&self) -> Result<()> {
        if self.coherence.is_synced(self.store.change_token()) {
            return Ok(());
        }
        let mut cursor = self.coherence.lock_cursor();
        let token = self.store.change_token();
        if self.coherence.is_synced(token) {
            return Ok(());
        }
        match self.store.changes_since(*cursor)? {
            Changes::Since { changes, cursor: next } => {
                for change in changes {
                    match change {
                        Change::Key(id, key) => {
                            if let Some(state) = self.registered(id) {
                                state.forget(&key);
                            }
                        }
                        Change::Cleared(id) => {
                            if let Some(state) = self.registered(id) {
                                state.forget_all();
                            }
                        }
                        Change::Dropped(id) => self.unregister(id),
                    }
                }
                *cursor = next;
            }
            Changes::Overflow { cursor: next } => {
                tracing::debug!("fell behind the change log; forgetting every cached entry");
                let existing: HashSet<i64> = self.store.list_caches()?.into_iter().map(|c| c.id).collect();
                let registered: Vec<Arc<CacheState>> = self.registry().by_id.values().cloned().collect();
                for state in registered {
                    state.forget_all();
                    if !existing.contains(&state.target.id.0) {
                        self.unregister(state.target.id);
                    }
                }
                *cursor = next;
            }
        }
        self.coherence.set_synced(token);
        Ok(())
    }
}

/// Group commit hands a batch's writes to the store as they arrive.
impl<R: Send> Writes for Gathering<'_, Write, R> {
    fn next_write(&mut self) -> Option<&Write> {
        self.next()
    }

    fn is_lone(&self) -> bool {
        Gathering::is_lone(self)
    }
}
