//! How a [`CacheManager`](crate::CacheManager) is configured, with the documented defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::Store;
use crate::{CacheManager, Clock, Limits, Quota, Result};

/// Default for [`CacheManagerBuilder::lru_capacity`]: 500 entries per cache, as in the
/// original Python easycaching.
pub const DEFAULT_LRU_CAPACITY: usize = 500;
/// Default for [`CacheManagerBuilder::max_cached_value_bytes`]: 64 KiB. With 500 entries a
/// cache's LRU holds at most about 32 MiB, whatever the size of the database.
pub const DEFAULT_MAX_CACHED_VALUE_BYTES: usize = 64 * 1024;
/// Default for [`CacheManagerBuilder::busy_timeout`]: 10 seconds.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`CacheManagerBuilder::checkpoint_pages`]: 4,000 pages of WAL, 8 MiB (SQLite's
/// own default is 1,000).
pub const DEFAULT_CHECKPOINT_PAGES: u32 = 4000;
/// Default for [`CacheManagerBuilder::max_batch_writes`]: 512 writes per group commit.
pub const DEFAULT_MAX_BATCH_WRITES: usize = 512;

/// What an acknowledged write survives. Either way a crash never corrupts the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is fsynced before it is acknowledged, so an acknowledged write survives a
    /// crash of the process (`kill -9`), of the operating system, and a power cut. While other
    /// processes write too, the fsync comes after the commit releases SQLite's write lock; no
    /// read answers with a commit before it is durable. The default: it loses nothing that was
    /// acknowledged.
    #[default]
    Full,
    /// `PRAGMA synchronous = NORMAL` and no fsync of our own: commits reach the operating
    /// system before they are acknowledged and are fsynced at checkpoints. An acknowledged write survives a crash of
    /// the process (`kill -9`), but an operating-system crash or a power cut can lose the last
    /// writes. Several times faster per write when writers are few.
    Normal,
}

/// Configures and opens a [`CacheManager`]. Made by [`CacheManager::builder`].
///
/// ```
/// use easycaching::{CacheManager, Durability, Limits};
///
/// # let dir = tempfile::tempdir()?;
/// let manager = CacheManager::builder(dir.path().join("app.db"))
///     .lru_capacity(1000)
///     .durability(Durability::Normal)
///     .checkpoint_pages(1000)
///     .limits(Limits { max_value_bytes: 64 * 1024, ..Limits::default() })
///     .open()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CacheManagerBuilder {
    pub(crate) path: PathBuf,
    pub(crate) lru_capacity: usize,
    pub(crate) max_cached_value_bytes: usize,
    pub(crate) durability: Durability,
    pub(crate) limits: Limits,
    pub(crate) busy_timeout: Duration,
    pub(crate) max_batch_writes: usize,
    pub(crate) default_quota: Quota,
    pub(crate) checkpoint_pages: u32,
    pub(crate) clock: Clock,
    /// Set by [`CacheManager::builder_postgres`]: the server to open instead of a file.
    #[cfg(feature = "postgres")]
    pub(crate) postgres: Option<PostgresTarget>,
}

/// A PostgreSQL database to open: its URL (kept out of `Debug`, as it may hold a password)
/// and the schema.
#[cfg(feature = "postgres")]
#[derive(Clone)]
pub(crate) struct PostgresTarget {
    pub(crate) url: String,
    pub(crate) schema: String,
}

#[cfg(feature = "postgres")]
impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl CacheManagerBuilder {
    pub(crate) fn new(path: &Path) -> Self {
        CacheManagerBuilder {
            path: path.to_owned(),
            lru_capacity: DEFAULT_LRU_CAPACITY,
            max_cached_value_bytes: DEFAULT_MAX_CACHED_VALUE_BYTES,
            durability: Durability::default(),
            limits: Limits::default(),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            max_batch_writes: DEFAULT_MAX_BATCH_WRITES,
            default_quota: Quota::UNLIMITED,
            checkpoint_pages: DEFAULT_CHECKPOINT_PAGES,
            clock: Clock::system(),
            #[cfg(feature = "postgres")]
            postgres: None,
        }
    }

    /// The schema of the PostgreSQL database the manager keeps its tables in, for a builder
    /// made by [`CacheManager::builder_postgres`] (ignored otherwise). Default
    /// [`store::postgres::DEFAULT_SCHEMA`](crate::store::postgres::DEFAULT_SCHEMA),
    /// `easycaching`. Several managers, or applications, can share one database in schemas of
    /// their own.
    #[cfg(feature = "postgres")]
    pub fn postgres_schema(mut self, schema: impl Into<String>) -> Self {
        if let Some(target) = &mut self.postgres {
            target.schema = schema.into();
        }
        self
    }

    /// Entries each cache keeps in memory, least recently used evicted first; as many keys
    /// found absent are remembered apart from them. 0 turns the in-memory LRU off (every read
    /// goes to the database). Default [`DEFAULT_LRU_CAPACITY`].
    pub fn lru_capacity(mut self, entries: usize) -> Self {
        self.lru_capacity = entries;
        self
    }

    /// Values larger than this are read from the database every time rather than kept in the
    /// LRU, which bounds its memory. Default [`DEFAULT_MAX_CACHED_VALUE_BYTES`].
    pub fn max_cached_value_bytes(mut self, bytes: usize) -> Self {
        self.max_cached_value_bytes = bytes;
        self
    }

    /// What an acknowledged write survives. Default [`Durability::Full`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Size limits on keys, values and batches. Default [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How long to wait for a lock held by another process before failing with
    /// [`Error::Busy`](crate::Error::Busy): for a write, all its waits together (for the
    /// process that took it over to commit it, for the turn to write, for SQLite's lock).
    /// `Duration::MAX` waits as good as for ever. Default [`DEFAULT_BUSY_TIMEOUT`].
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The most writes one group commit holds (0 counts as 1: a commit per write). Default
    /// [`DEFAULT_MAX_BATCH_WRITES`].
    pub fn max_batch_writes(mut self, writes: usize) -> Self {
        self.max_batch_writes = writes;
        self
    }

    /// How many pages the write-ahead log holds before the commit that takes it past them
    /// copies it into the database (a checkpoint, SQLite's `wal_autocheckpoint`; at least 1).
    /// A checkpoint writes each page the log changed once, however often, so rarer ones cost
    /// less in all (8 writers did 9-20% more writes a second at 4,000 than at 1,000); but the
    /// writers of the batch that runs one wait for it, longer the larger it is (8 writers on a
    /// million keys: at most about 30 ms at 1,000 pages, 80-100 ms at 4,000; but at 1,000
    /// more than one write in a hundred waited for one, at 4,000 fewer). Lower it to bound
    /// the longest write; every process writing the file uses its own setting. A log grown
    /// past twice this many pages (one large transaction, such as clearing a big cache) is cut
    /// back to that size when it next starts over, rather than kept on disk at its largest.
    /// Default [`DEFAULT_CHECKPOINT_PAGES`].
    pub fn checkpoint_pages(mut self, pages: u32) -> Self {
        self.checkpoint_pages = pages;
        self
    }

    /// The quota of handles opened through this manager (a handle can be given another with
    /// `with_quota`). Default: unlimited.
    pub fn default_quota(mut self, quota: Quota) -> Self {
        self.default_quota = quota;
        self
    }

    /// The clock expiry and leases are told by: the system's wall clock by default, or, for
    /// tests, a [`ManualClock`](crate::ManualClock) that moves only when the test moves it
    /// (an hour's TTL passes in an instant). It applies to the manager and to the store
    /// [`open`](Self::open) opens; a store given to [`open_with_store`](Self::open_with_store)
    /// keeps its own (`SqliteStore::with_clock` sets a SQLite store's).
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Opens the database, creating it when it does not exist.
    ///
    /// Fails with [`Error::NotOurDatabase`](crate::Error::NotOurDatabase) or
    /// [`Error::SchemaTooNew`](crate::Error::SchemaTooNew), leaving the file untouched, when
    /// the file is not an easycaching database this build can use.
    pub fn open(self) -> Result<CacheManager> {
        CacheManager::from_builder(self)
    }

    /// Opens a manager over `store`, a storage backend of the caller's, instead of the SQLite
    /// database at the builder's path; the path then only names the database in messages and
    /// [`CacheManager::path`]. The LRU, group commit and coherence between processes work
    /// over it as over SQLite; the SQLite settings ([`durability`](Self::durability),
    /// [`busy_timeout`](Self::busy_timeout), [`checkpoint_pages`](Self::checkpoint_pages)) are
    /// the backend's own business and are not applied.
    ///
    /// ```
    /// use easycaching::store::SqliteStore;
    /// use easycaching::{CacheManager, Durability};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("app.db");
    /// let store = SqliteStore::open(&path, Durability::Full, std::time::Duration::from_secs(10))?;
    /// let manager = CacheManager::builder(&path).lru_capacity(100).open_with_store(store)?;
    /// manager.create_cache("sessions")?.set_value("ada", &1)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_with_store(self, store: impl Store) -> Result<CacheManager> {
        CacheManager::from_store(Box::new(store), self.path.clone(), &self)
    }
}
