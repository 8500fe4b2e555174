//! The storage trait: what a backend must do, whatever it stores in.
//!
//! The rest of the crate (the LRU, group commit, coherence between processes) is written once
//! against [`Store`]; [`SqliteStore`] is the backend that ships, and `PostgresStore` (cargo
//! feature `postgres`, module `postgres`) a second. Every backend implements the same trait and
//! keeps the same guarantees:
//!
//! - [`Store::apply`] runs a batch of writes in one transaction, each write all or nothing on
//!   its own, and records every key it changes in a change log that other processes read with
//!   [`Store::changes_since`]; [`Store::sync`] makes it durable, and no read answers with a
//!   commit before it is;
//! - the writes that read before they write ([`Write::Increment`], [`Write::CompareAndSwap`])
//!   read inside their own transaction, so that no other write, from any process, comes
//!   between the read and the write, and compare values as [`Json::same_value`] does;
//! - [`Store::change_token`] is cheap enough for every cache hit (no I/O, no system call) and
//!   changes whenever any process may have committed;
//! - an entry stored with an expiry ([`Write::Set::expires_at`], unix milliseconds) is absent
//!   for every read and every write that reads (increment, compare-and-swap, delete's count)
//!   from that time on, as the wall clock tells it (`SystemTime`), whether or not its row is
//!   gone yet; [`Store::cache_stats`] does not count it. Its space is reclaimed on the write
//!   path, a bounded number of rows per transaction, with counts and change log kept as a
//!   delete keeps them.
//!
//! A manager is opened over a backend of one's own with
//! [`CacheManagerBuilder::open_with_store`](crate::CacheManagerBuilder::open_with_store).

mod key_range;
#[cfg(feature = "postgres")]
pub mod postgres;
mod rules;
mod sqlite;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "postgres")]
pub use self::postgres::PostgresStore;
pub use key_range::KeyRange;
use key_range::PageStatements;
pub use sqlite::SqliteStore;

use crate::{Json, Leased, Quota, Receipt, Result};

/// The identity of a cache in the database. Never reused, so a handle to a deleted cache can
/// never reach a new cache that got the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheId(pub i64);

/// The identity of a queue in the database. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub i64);

/// A cache or queue as a write names it: its id, and its name for error messages.
#[derive(Debug, Clone)]
pub struct Target<Id> {
    /// The identity the write acts on.
    pub id: Id,
    /// The name, for error messages.
    pub name: Arc<str>,
}

/// One write, applied all or nothing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Write {
    /// Creates a cache unless one of that name exists. Outcome: [`Outcome::Created`].
    CreateCache {
        /// The (already validated) name.
        name: String,
        /// A shared quota that a new cache's name counts toward.
        quota: Quota,
    },
    /// Deletes a cache and its entries. Outcome: [`Outcome::Dropped`].
    DropCache {
        /// The name.
        name: String,
    },
    /// Stores entries, replacing what was there. Outcome: [`Outcome::Done`].
    Set {
        /// The cache.
        cache: Target<CacheId>,
        /// The entries, in order; a later entry for the same key wins.
        entries: Vec<(String, Json)>,
        /// When every entry of the write expires, in milliseconds since the unix epoch; `None`:
        /// never. Replacing an entry replaces its expiry too, so a set without one leaves the
        /// entry with none, as Redis's `SET` does.
        expires_at: Option<i64>,
        /// The quota to hold the cache to.
        quota: Quota,
    },
    /// Sets when the entry under `key` expires (`None`: never), leaving its value as it is.
    /// Outcome: [`Outcome::Found`], whether the key held a value (one not expired) to change.
    Expire {
        /// The cache.
        cache: Target<CacheId>,
        /// The key.
        key: String,
        /// The new expiry, in milliseconds since the unix epoch; `None`: never.
        expires_at: Option<i64>,
    },
    /// Adds `by` to the integer stored under `key`, an absent key counting as 0, and stores
    /// the sum in its place, keeping the entry's expiry (an entry that has expired counts as
    /// absent, and the sum is stored with none). Outcome: [`Outcome::Integer`], the sum. Refused with
    /// [`Error::WrongType`](crate::Error::WrongType) when the value stored is not a JSON
    /// integer that fits an `i64`, or when the sum does not; with
    /// [`Error::TooLarge`](crate::Error::TooLarge) when the sum's JSON text is longer than
    /// `max_value_bytes` (only a limit under 20 bytes, the longest `i64`, can refuse one).
    Increment {
        /// The cache.
        cache: Target<CacheId>,
        /// The key.
        key: String,
        /// What to add (negative to subtract).
        by: i64,
        /// The longest sum to store, in bytes of JSON text: the writer's
        /// [`Limits::max_value_bytes`](crate::Limits::max_value_bytes).
        max_value_bytes: usize,
        /// The quota to hold the cache to.
        quota: Quota,
    },
    /// Compares what is stored under `key` with `expected` and, when they match, stores
    /// `value` in its place: all in one write that no other write, from any process, comes
    /// between. `None` on either side stands for the key being absent: an `expected` of `None`
    /// matches only an absent key, and a `value` of `None` removes the key. Values match when
    /// they are the same JSON value, however written ([`Json::same_value`]), never by their
    /// text alone. Outcome: [`Outcome::Swapped`], whether they matched and `value` was put in
    /// place.
    ///
    /// A match stores or removes exactly as [`Write::Set`] or [`Write::Delete`] of the one key
    /// would (counts, quota, change log), except that a value stored over one that has not
    /// expired keeps its expiry, as [`Write::Increment`] does; an entry that has expired
    /// counts as absent. A mismatch changes nothing, is not an error, and
    /// logs no change, but is still refused with
    /// [`Error::CacheDeleted`](crate::Error::CacheDeleted) when the cache is gone. A backend
    /// must read the value it compares inside the write's transaction, never from a copy.
    CompareAndSwap {
        /// The cache.
        cache: Target<CacheId>,
        /// The key.
        key: String,
        /// The value the key must hold for the swap; `None`: the key must be absent.
        expected: Option<Json>,
        /// The value to store; `None`: remove the key.
        value: Option<Json>,
        /// The quota to hold the cache to.
        quota: Quota,
    },
    /// Removes keys. Outcome: [`Outcome::Count`], how many were there.
    Delete {
        /// The cache.
        cache: Target<CacheId>,
        /// The keys.
        keys: Vec<String>,
    },
    /// Removes every entry whose key begins with `prefix` (every entry when it is empty), in
    /// one statement however many there are. Outcome: [`Outcome::Count`], how many were there
    /// (those that had expired not counted). Other processes' LRUs forget the keys removed, or
    /// the whole cache when there were more than [`PREFIX_DELETE_LOGGED_KEYS`].
    Clear {
        /// The cache.
        cache: Target<CacheId>,
        /// Only the keys that begin with this; every key when empty.
        prefix: String,
    },
    /// Creates a queue unless one of that name exists. Outcome: [`Outcome::Created`].
    CreateQueue {
        /// The (already validated) name.
        name: String,
        /// A shared quota that a new queue's name counts toward.
        quota: Quota,
    },
    /// Deletes a queue and its items. Outcome: [`Outcome::Dropped`].
    DropQueue {
        /// The name.
        name: String,
    },
    /// Appends items at the back. Outcome: [`Outcome::Done`].
    Put {
        /// The queue.
        queue: Target<QueueId>,
        /// The items, oldest first.
        values: Vec<Json>,
        /// The quota to hold the queue to.
        quota: Quota,
    },
    /// Removes up to `max` of the oldest items not under a lease (see [`Write::Lease`]),
    /// stopping after the item that takes them to [`MAX_PAGE_BYTES`](crate::MAX_PAGE_BYTES).
    /// Outcome: [`Outcome::Values`], oldest first.
    Take {
        /// The queue.
        queue: Target<QueueId>,
        /// The most items to take.
        max: usize,
    },
    /// Puts items taken from a queue back at its front, ahead of every item waiting, in the
    /// order given (oldest first), for items that could not be delivered. They count toward no
    /// quota: they were in the queue before. Outcome: [`Outcome::Done`].
    GiveBack {
        /// The queue.
        queue: Target<QueueId>,
        /// The items, oldest first.
        values: Vec<Json>,
    },
    /// Removes every item. Outcome: [`Outcome::Count`].
    ClearQueue {
        /// The queue.
        queue: Target<QueueId>,
    },
    /// Hands out up to `max` of the oldest items not under a lease (one whose lease has ended
    /// counts as waiting), as [`Write::Take`] would take them, leaving them in place under a
    /// lease that ends `lease_ms` from the write's now, with a fresh random token (see
    /// [`Receipt`]; one for the write's items), and counting one more delivery of each.
    /// Outcome: [`Outcome::Leased`], oldest first, empty when no item waits. Leased items stay
    /// in the queue: they count toward its length and quota, and [`Write::ClearQueue`] removes
    /// them; [`Write::Take`] and [`Store::peek`] pass over them while their lease lasts. A
    /// backend that applies a write again (after a later one failed) draws a new token.
    Lease {
        /// The queue.
        queue: Target<QueueId>,
        /// How long the lease lasts, in milliseconds (checked: 1 ms to 100 years).
        lease_ms: u64,
        /// The most items to lease (at least 1).
        max: usize,
    },
    /// Removes the item under the lease `receipt` names: done with. Outcome:
    /// [`Outcome::Found`], false (and nothing changed) when the item is no longer under that
    /// lease: released, taken or leased again after the lease ended, or cleared. A lease that
    /// ended with the item still untaken is acknowledged all the same.
    Ack {
        /// The queue.
        queue: Target<QueueId>,
        /// The lease.
        receipt: Receipt,
    },
    /// Ends the lease `receipt` names at once, so that the item is handed out again, in its
    /// place. Outcome: [`Outcome::Found`], as for [`Write::Ack`].
    Release {
        /// The queue.
        queue: Target<QueueId>,
        /// The lease.
        receipt: Receipt,
    },
    /// Makes the lease `receipt` names end `lease_ms` from the write's now instead, keeping
    /// its token. Outcome: [`Outcome::Found`], as for [`Write::Ack`] (a lease that ended with
    /// the item still untaken is renewed).
    Extend {
        /// The queue.
        queue: Target<QueueId>,
        /// The lease.
        receipt: Receipt,
        /// How long from now the lease lasts, in milliseconds (checked: 1 ms to 100 years).
        lease_ms: u64,
    },
}

/// What a successful [`Write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; nothing to report.
    Done,
    /// A cache or queue was created (`created`), or already existed; `id` is its identity.
    Created {
        /// The identity of the cache or queue.
        id: i64,
        /// Whether this write created it.
        created: bool,
    },
    /// The identity of the cache or queue deleted, or `None` when there was none.
    Dropped(Option<i64>),
    /// How many entries or items were removed.
    Count(u64),
    /// The items taken from a queue.
    Values(Vec<Json>),
    /// The integer an [`Write::Increment`] stored.
    Integer(i64),
    /// Whether a [`Write::CompareAndSwap`] found what it expected and made its change.
    Swapped(bool),
    /// Whether a [`Write::Expire`] found a value to change, or a [`Write::Ack`],
    /// [`Write::Release`] or [`Write::Extend`] the item under its lease.
    Found(bool),
    /// The items a [`Write::Lease`] handed out, oldest first.
    Leased(Vec<Leased>),
}

/// A value read from a store, with when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The value.
    pub value: Json,
    /// When it expires, in milliseconds since the unix epoch; `None`: never.
    pub expires_at: Option<i64>,
}

/// The outcome of one batch: a result per write, in order, and what the commit means for this
/// process's view of the change log.
#[derive(Debug)]
pub struct Applied {
    /// One result per write.
    pub results: Vec<Result<Outcome>>,
    /// What [`Store::sync`] must make durable before these results are acknowledged.
    pub sync: SyncTarget,
    /// Present when the store can vouch that the commit was the only one between the two
    /// tokens, so a process that had seen every change up to `before` has now seen every
    /// change up to `after`, its own included, and need not read its own changes back.
    pub own_commit: Option<OwnCommit>,
}

/// What [`Store::sync`] is to make durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncTarget {
    /// One commit of this store's, as [`Store::apply`] described it: the change token just
    /// after it, and a number of the backend's own (for SQLite, of the first fsync to begin
    /// after it). Commits that one fsync began after share it.
    Commit {
        /// The change token just after the commit.
        token: ChangeToken,
        /// The backend's own mark.
        mark: u64,
    },
    /// Every commit visible now, this process's and others' alike.
    Visible,
}

/// See [`Applied::own_commit`].
#[derive(Debug, Clone)]
pub struct OwnCommit {
    /// The change token just before the commit.
    pub before: ChangeToken,
    /// The change token just after it.
    pub after: ChangeToken,
    /// The change-log cursor just after it, or `None` when the commit logged no change (the
    /// cursor stays where it was).
    pub cursor: Option<i64>,
    /// Keys the commit changed for other processes (writes they handed over): their changes
    /// are logged as theirs, up to `cursor`, and are to be forgotten.
    pub others_keys: Vec<(CacheId, String)>,
}

/// An opaque value that changes whenever a process may have committed to the database.
/// Two equal tokens mean nothing was committed in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeToken(pub [u64; 2]);

/// A [`ChangeToken`] that threads read and write without a lock. Its two words are stored
/// apart, so a read racing a write can see one word of each; such a torn token never equals a
/// real one (the second word is a checksum over the first), so it only ever fails to match.
#[derive(Debug, Default)]
#[repr(transparent)]
pub(crate) struct AtomicChangeToken([AtomicU64; 2]);

impl AtomicChangeToken {
    pub(crate) fn new(token: ChangeToken) -> Self {
        AtomicChangeToken(token.0.map(AtomicU64::new))
    }

    /// Whether the token stored is `token`.
    pub(crate) fn matches(&self, token: ChangeToken) -> bool {
        token.0[0] == self.0[0].load(Ordering::Acquire) && token.0[1] == self.0[1].load(Ordering::Acquire)
    }

    pub(crate) fn store(&self, token: ChangeToken) {
        self.0[0].store(token.0[0], Ordering::Release);
        self.0[1].store(token.0[1], Ordering::Release);
    }

    #[cfg(test)]
    pub(crate) fn load(&self) -> ChangeToken {
        ChangeToken([self.0[0].load(Ordering::Acquire), self.0[1].load(Ordering::Acquire)])
    }
}

/// A change another process made, as read from the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// One key of a cache was written or removed.
    Key(CacheId, String),
    /// A cache was cleared.
    Cleared(CacheId),
    /// A cache was deleted.
    Dropped(CacheId),
}

/// What [`Store::changes_since`] found.
#[derive(Debug)]
pub enum Changes {
    /// Every change after the cursor (other processes' only), and the new cursor.
    Since {
        /// The changes, oldest first.
        changes: Vec<Change>,
        /// The cursor to pass next time.
        cursor: i64,
    },
    /// The log no longer reaches back to the cursor: anything may have changed.
    Overflow {
        /// The cursor to pass next time.
        cursor: i64,
    },
}

/// Size figures of one cache or queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Entries in a cache, items in a queue.
    pub entries: u64,
    /// Bytes of keys and values (of items, for a queue).
    pub bytes: u64,
}

/// A cache or queue as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its identity.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its size.
    pub stats: Stats,
}

/// What a backup holds (see [`Store::backup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// Every cache, in name order.
    pub caches: Vec<Listed>,
    /// Every queue, in name order.
    pub queues: Vec<Listed>,
    /// The size of the file written.
    pub bytes: u64,
}

/// A page of a scan: of a cache in key order, its cursor the last key of the page; of a
/// queue ([`Store::queue_items`]) oldest first, its cursor the store's position of the last
/// item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, Cursor = String> {
    /// The entries, keys or items of this page.
    pub items: Vec<T>,
    /// The cursor for the next page; `None` when the scan is complete.
    pub next: Option<Cursor>,
}

/// The most keys a delete by prefix ([`Write::Clear`] with a prefix) logs one by one, so that
/// other processes forget only those; one that removes more logs a clear of the cache, so that
/// the change log never holds a list as long as the group.
pub const PREFIX_DELETE_LOGGED_KEYS: usize = 256;

/// A page of keys from keys read up to one past `limit`: the one past, when it came, says that
/// more follow, so the page ends on its last key, the cursor of the next.
pub(crate) fn key_page(mut keys: Vec<String>, limit: usize) -> Page<String> {
    let next = if keys.len() > limit {
        keys.truncate(limit);
        keys.last().cloned()
    } else {
        None
    };
    Page { items: keys, next }
}

/// A page of entries from entries read up to one past `limit`: it ends at `limit` entries, or
/// once their values reach `max_bytes`, on its last key, the cursor of the next; at the end of
/// `rows`, the scan is complete.
pub(crate) fn entry_page<E>(
    rows: impl Iterator<Item = std::result::Result<(String, Json), E>>,
    limit: usize,
    max_bytes: usize,
) -> std::result::Result<Page<(String, Json)>, E> {
    let mut items: Vec<(String, Json)> = Vec::new();
    let mut bytes = 0;
    for row in rows {
        if items.len() == limit || bytes >= max_bytes {
            let next = items.last().map(|(key, _)| key.clone());
            return Ok(Page { items, next });
        }
        let (key, value) = row?;
        bytes += value.as_str().len();
        items.push((key, value));
    }
    Ok(Page { items, next: None })
}

/// The writes of one batch, handed to [`Store::apply`] one at a time: group commit hands each
/// over as its writer submits it, so a store applies the first while the last are on their way.
/// A store may apply them on a thread of its own (the PostgreSQL store does, for callers that
/// drive an async runtime), hence `Send`.
pub trait Writes: Send {
    /// The next write of the batch; `None` once the batch is complete.
    fn next_write(&mut self) -> Option<&Write>;

    /// Asked before the first write is taken: whether the batch will be that one write, with
    /// no other on its way. A backend may hand such a write over to another process's
    /// transaction (the SQLite store does, see its `handoffs`), where a batch of several is
    /// better committed here.
    fn is_lone(&self) -> bool {
        false
    }
}

/// A batch known in full.
impl Writes for std::slice::Iter<'_, Write> {
    fn next_write(&mut self) -> Option<&Write> {
        self.next()
    }
}

/// A storage backend. See the [module documentation](self) for the guarantees it keeps.
pub trait Store: Send + Sync + 'static {
    /// Applies a batch of writes in one transaction, each all or nothing (one failing leaves
    /// the others in place), taking them from `writes` one at a time, as they arrive, until it
    /// answers `None`; [`Applied::results`] holds one result per write taken. An error for the
    /// whole batch (the database is unreachable) is returned as that error for every write
    /// taken. The commit may not be durable yet: call [`Store::sync`] with [`Applied::sync`]
    /// before acknowledging it. Until it is, no read through this store answers with it
    /// (reads wait for durability); in exchange, a backend may release its write lock before
    /// the fsync, so that other processes commit meanwhile.
    ///
    /// A write to a cache or queue whose id no longer exists fails with
    /// [`Error::CacheDeleted`](crate::Error::CacheDeleted) or
    /// [`Error::QueueDeleted`](crate::Error::QueueDeleted), and one that would take its target
    /// (or, for a quota with `shared_by_prefix`, everything named with that prefix) past its
    /// quota with [`Error::QuotaExceeded`](crate::Error::QuotaExceeded); either changes nothing.
    fn apply(&self, writes: &mut dyn Writes) -> Applied;

    /// Makes `target` durable. Concurrent calls share the work (one fsync, for SQLite).
    fn sync(&self, target: SyncTarget) -> Result<()>;

    /// The value of one key, with its expiry; `None` when it is absent or has expired.
    fn get(&self, cache: CacheId, key: &str) -> Result<Option<Stored>>;

    /// The values of several keys, read in one snapshot. Once the values read add up to more
    /// than `max_bytes`, stops reading and answers [`Error::TooLarge`](crate::Error::TooLarge)
    /// (see [`too_many_bytes`]), so one call never holds more than that and one value.
    fn get_many(&self, cache: CacheId, keys: &[&str], max_bytes: usize) -> Result<Vec<Option<Stored>>>;

    /// Whether a key is present (and has not expired).
    fn contains(&self, cache: CacheId, key: &str) -> Result<bool>;

    /// One page of the entries in `range`, in key order, at most `limit` and about
    /// `max_bytes` of values; entries that have expired are skipped, as are they by
    /// [`Store::keys`].
    fn entries(
        &self,
        cache: CacheId,
        range: KeyRange<'_>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page<(String, Json)>>;

    /// One page of the keys in `range`, in key order, at most `limit`.
    fn keys(&self, cache: CacheId, range: KeyRange<'_>, limit: usize) -> Result<Page<String>>;

    /// A cache's size, entries that have expired left out, or `None` when it does not exist.
    fn cache_stats(&self, cache: CacheId) -> Result<Option<Stats>>;

    /// The cache of that name, if any.
    fn find_cache(&self, name: &str) -> Result<Option<CacheId>>;

    /// Every cache, in name order.
    fn list_caches(&self) -> Result<Vec<Listed>>;

    /// The oldest item of a queue, left in place; `Err(QueueDeleted)` when the queue is gone.
    fn peek(&self, queue: &Target<QueueId>) -> Result<Option<Json>>;

    /// One page of a queue's items after position `after` (from the oldest when `None`),
    /// oldest first, left in place: at most `limit` items, stopping after the one that takes
    /// them past `max_bytes`; `Err(QueueDeleted)` when the queue is gone. Positions only grow
    /// from the front to the back of a queue, so that a scan passing [`Page::next`] back sees
    /// every item that stays in the queue for the whole scan exactly once, in order, and no
    /// item twice, while others put and take (an item given back is put at the front anew,
    /// a new item, which a scan may see again).
    fn queue_items(
        &self,
        queue: &Target<QueueId>,
        after: Option<i64>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page<Json, i64>>;

    /// A queue's size, or `None` when it does not exist.
    fn queue_stats(&self, queue: QueueId) -> Result<Option<Stats>>;

    /// The queue of that name, if any.
    fn find_queue(&self, name: &str) -> Result<Option<QueueId>>;

    /// Every queue, in name order.
    fn list_queues(&self) -> Result<Vec<Listed>>;

    /// The current change token: no I/O, no system call.
    fn change_token(&self) -> ChangeToken;

    /// The change-log cursor as of now: changes after it are yet to come.
    fn change_cursor(&self) -> Result<i64>;

    /// Other processes' changes after `cursor`.
    fn changes_since(&self, cursor: i64) -> Result<Changes>;

    /// Writes a copy of the whole database, every cache and queue as of one moment, to a new
    /// file at `dest`, while reads and writes go on, and answers what it holds. The copy is
    /// a database of its own, which [`SqliteStore::open`] opens; it is durable once this
    /// returns, holds only commits that are, and never replaces a file: a `dest` that exists
    /// is refused. A backend that cannot write such a file refuses with
    /// [`Error::Storage`](crate::Error::Storage), as this default does.
    fn backup(&self, dest: &std::path::Path) -> Result<Copied> {
        Err(crate::Error::Storage(format!(
            "cannot write a backup to {}: this store cannot make backups",
            dest.display()
        )))
    }

    /// Writes handed over between this store and other processes so far; none for a backend
    /// that never hands a write over.
    fn handoff_stats(&self) -> HandoffStats {
        HandoffStats::default()
    }

    /// How much room the database file takes, and how much of it is free; `None` for a
    /// backend that keeps no file of its own, as this default does.
    fn disk_usage(&self) -> Result<Option<DiskUsage>> {
        Ok(None)
    }
}

/// The room a database file takes, as [`Store::disk_usage`] answers it.
///
/// SQLite keeps the pages that deletes free in the file, on its free list, and reuses them
/// before the file grows: the file never shrinks by itself. A backup copies only the pages
/// in use, so putting one in place gives the free ones back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    /// Bytes of the database as of its last commit (its pages, those still in the `-wal`
    /// file included).
    pub file_bytes: u64,
    /// Bytes of those pages that hold nothing, for later writes to reuse.
    pub free_bytes: u64,
}

/// See [`Store::handoff_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HandoffStats {
    /// This store's writes that another process committed.
    pub handed_over: u64,
    /// Other processes' writes that this store committed.
    pub committed_for_others: u64,
}

/// The error of a `get_many` whose values add up to `bytes` (so far), over `limit`.
pub fn too_many_bytes(bytes: usize, limit: usize) -> crate::Error {
    crate::Error::TooLarge { what: "the total of the values asked for", size: bytes, unit: "bytes", limit }
}
