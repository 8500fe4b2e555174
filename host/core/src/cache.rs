//! [`Cache`]: a handle to one named cache, with the in-memory LRU in front of the store.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lru::LruCache;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::{self, Clock, remaining};
use crate::limits::{MAX_PAGE_BYTES, MAX_PAGE_ITEMS, MAX_RESPONSE_BYTES};
use crate::manager::{Shared, unexpected};
use crate::paging::{Paged, Scan};
use crate::store::{CacheId, KeyRange, Outcome, Page, Stats, Stored, Target, Write, too_many_bytes};
use crate::{Error, Json, Quota, Result};

/// A handle to one named cache: a persistent map from string keys to [`Json`] values.
///
/// Handles are cheap to clone and can be sent between threads; every handle to the same cache
/// in a process shares one in-memory LRU. Reads that hit the LRU touch neither the database
/// nor the operating system; neither does asking again for a key a read found absent, which
/// the LRU remembers (apart from its values) until any process writes that key. Writes are
/// durable when they return, and other processes sharing the database see them from then on.
///
/// ```
/// use easycaching::{CacheManager, Json};
/// use serde_json::json;
///
/// # let dir = tempfile::tempdir()?;
/// let manager = CacheManager::open(dir.path().join("app.db"))?;
/// let cache = manager.create_cache("test")?;
///
/// cache.set("foo", Json::parse(r#""bar""#)?)?;
/// assert_eq!(cache.get("foo")?.as_deref(), Some(r#""bar""#));
/// assert!(cache.contains("foo")?);
///
/// cache.set_value("user:1", &json!({"name": "Ada"}))?;
/// let user: serde_json::Value = cache.get_value("user:1")?.unwrap();
/// assert_eq!(user["name"], "Ada");
///
/// for entry in cache.iter() {
///     let (key, value) = entry?;
///     println!("{{{key:?}: {value}}}");
/// }
/// assert!(cache.delete("foo")?);
/// assert_eq!(cache.clear()?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) shared: Arc<Shared>,
    pub(crate) state: Arc<CacheState>,
    pub(crate) quota: Quota,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("name", &self.name()).field("quota", &self.quota).finish()
    }
}

impl Cache {
    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.state.target.name
    }

    /// The quota this handle holds the cache to.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// A handle to the same cache that holds it to `quota` on writes.
    pub fn with_quota(&self, quota: Quota) -> Cache {
        Cache { quota, ..self.clone() }
    }

    /// The value stored under `key`, or `None`.
    pub fn get(&self, key: &str) -> Result<Option<Json>> {
        self.shared.limits.check_key(key)?;
        self.ready()?;
        // As `read` does, written out: the hit path is measured in instructions.
        let generation = match self.state.lookup(key) {
            Lookup::Hit(value, _) => return Ok(Some(value)),
            Lookup::Absent => return Ok(None),
            Lookup::Miss(generation) => generation,
        };
        let stored = self.shared.store.get(self.state.target.id, key)?;
        self.state.fill(key, stored.as_ref(), generation, self.shared.max_cached_value_bytes);
        Ok(stored.map(|stored| stored.value))
    }

    /// The value under `key` with its expiry, from the LRU or else the store (filling the LRU).
    fn read(&self, key: &str) -> Result<Option<Stored>> {
        let generation = match self.state.lookup(key) {
            Lookup::Hit(value, expires_at) => return Ok(Some(Stored { value, expires_at })),
            Lookup::Absent => return Ok(None),
            Lookup::Miss(generation) => generation,
        };
        let stored = self.shared.store.get(self.state.target.id, key)?;
        self.state.fill(key, stored.as_ref(), generation, self.shared.max_cached_value_bytes);
        Ok(stored)
    }

    /// The value stored under `key`, deserialized into `T`;
    /// [`Error::WrongType`](crate::Error::WrongType), holding the value, when it does not fit.
    pub fn get_value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.get(key)?.map(|value| value.deserialize()).transpose()
    }

    /// The values stored under each of `keys`, in order, read in one go. Values that add up
    /// to more than [`MAX_RESPONSE_BYTES`](crate::MAX_RESPONSE_BYTES) are
    /// [`Error::TooLarge`]: ask for fewer keys at a time.
    pub fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Json>>> {
        self.shared.limits.check_batch(keys.len())?;
        for key in keys {
            self.shared.limits.check_key(key)?;
        }
        self.ready()?;
        let mut values = Vec::with_capacity(keys.len());
        let mut misses = Vec::new();
        let mut generation = 0;
        for (index, key) in keys.iter().enumerate() {
            match self.state.lookup(key) {
                Lookup::Hit(value, _) => values.push(Some(value)),
                Lookup::Absent => values.push(None),
                Lookup::Miss(current) => {
                    // The earliest generation: the store is read after every lookup.
                    if misses.is_empty() {
                        generation = current;
                    }
                    misses.push((index, *key));
                    values.push(None);
                }
            }
        }
        // What one call returns is bounded, the values read from the store included: the
        // store stops reading past what is left of the bound after the LRU's values.
        let bytes = |values: &[Option<Json>]| values.iter().flatten().map(|value| value.len()).sum::<usize>();
        let from_lru = bytes(&values);
        if from_lru > MAX_RESPONSE_BYTES {
            return Err(too_many_bytes(from_lru, MAX_RESPONSE_BYTES));
        }
        if !misses.is_empty() {
            // Each key is read once, however often it was asked for: a value read once is
            // shared by every place it answers, not copied.
            let mut missed: Vec<&str> = misses.iter().map(|(_, key)| *key).collect();
            missed.sort_unstable();
            missed.dedup();
            let found = self
                .shared
                .store
                .get_many(self.state.target.id, &missed, MAX_RESPONSE_BYTES - from_lru)
                .map_err(|error| match error {
                    Error::TooLarge { size, .. } => too_many_bytes(from_lru + size, MAX_RESPONSE_BYTES),
                    other => other,
                })?;
            for (key, stored) in missed.iter().zip(&found) {
                self.state.fill(key, stored.as_ref(), generation, self.shared.max_cached_value_bytes);
            }
            for (index, key) in misses {
                if let Ok(at) = missed.binary_search(&key) {
                    values[index] = found[at].as_ref().map(|stored| stored.value.clone());
                }
            }
        }
        // Repeated keys count each time they answer.
        let total = bytes(&values);
        if total > MAX_RESPONSE_BYTES {
            return Err(too_many_bytes(total, MAX_RESPONSE_BYTES));
        }
        Ok(values)
    }

    /// Stores `value` under `key`, replacing what was there, its expiry included: a value set
    /// without a TTL never expires, whatever TTL the one it replaces had (as Redis's `SET`).
    pub fn set(&self, key: &str, value: Json) -> Result<()> {
        self.set_many([(key.to_owned(), value)])
    }

    /// Stores `value` under `key`, replacing what was there, to expire `ttl` from now: from
    /// then on it is absent for every reader in every process sharing the database (`get`,
    /// `contains`, `len`, iteration, and the writes that read, `increment` and
    /// `compare_and_swap`), and its space is reclaimed by later writes.
    ///
    /// The TTL is counted in whole milliseconds, rounded up, from this call, by the wall
    /// clock; the entry's expiry is stored as a time, so it survives restarts and holds across
    /// processes. A later [`set`](Cache::set) without a TTL makes the entry permanent again;
    /// [`increment`](Cache::increment) and [`compare_and_swap`](Cache::compare_and_swap) keep
    /// it; [`expire`](Cache::expire) changes it.
    ///
    /// [`Error::InvalidArgument`] for a TTL of zero or longer than [`MAX_TTL`](crate::MAX_TTL);
    /// otherwise the errors of [`set`](Cache::set). On any error nothing is stored.
    ///
    /// ```
    /// use std::time::Duration;
    /// use easycaching::Json;
    /// # let dir = tempfile::tempdir()?;
    /// let manager = easycaching::CacheManager::open(dir.path().join("app.db"))?;
    /// let sessions = manager.create_cache("sessions")?;
    /// sessions.set_with_ttl("ada", Json::parse(r#"{"user": 1}"#)?, Duration::from_millis(20))?;
    /// sessions.set_with_ttl("bob", Json::parse(r#"{"user": 2}"#)?, Duration::from_secs(3600))?;
    /// assert!(sessions.ttl("bob")?.is_some_and(|left| left <= Duration::from_secs(3600)));
    ///
    /// std::thread::sleep(Duration::from_millis(50));
    /// assert_eq!(sessions.get("ada")?, None);
    /// assert_eq!(sessions.len()?, 1);
    ///
    /// // Set again without a TTL: kept until deleted.
    /// sessions.set("bob", Json::parse(r#"{"user": 2}"#)?)?;
    /// assert_eq!(sessions.ttl("bob")?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_with_ttl(&self, key: &str, value: Json, ttl: Duration) -> Result<()> {
        let ttl_ms = clock::ttl_ms(ttl)?;
        self.write_entries(
            vec![(key.to_owned(), value)],
            Some(clock::expiry(self.shared.clock.now_ms(), ttl_ms)),
        )
    }

    /// How long the entry under `key` has left to live; `None` when it has no TTL, or when
    /// there is no entry (tell the two apart with [`contains`](Cache::contains)).
    pub fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        self.shared.limits.check_key(key)?;
        self.ready()?;
        let expires_at = self.read(key)?.and_then(|stored| stored.expires_at);
        Ok(expires_at.and_then(|at| remaining(at, self.shared.clock.now_ms())))
    }

    /// Sets the entry under `key` to expire `ttl` from now, or, with `None`, never, leaving its
    /// value as it is; `true` when there was an entry (one not expired) to change, `false`
    /// (changing nothing) when there was none. Errors as for
    /// [`set_with_ttl`](Cache::set_with_ttl).
    pub fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        self.shared.limits.check_key(key)?;
        let expires_at = ttl
            .map(clock::ttl_ms)
            .transpose()?
            .map(|ttl_ms| clock::expiry(self.shared.clock.now_ms(), ttl_ms));
        self.alive()?;
        let write = Write::Expire { cache: self.target(), key: key.to_owned(), expires_at };
        match self.shared.write(write)? {
            Outcome::Found(found) => Ok(found),
            other => Err(unexpected(other)),
        }
    }

    /// Serializes `value` and stores it under `key`.
    pub fn set_value<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.set(key, Json::from_value(value)?)
    }

    /// Stores every entry in one durable write, all or none; a later entry for the same key
    /// wins.
    pub fn set_many(&self, entries: impl IntoIterator<Item = (String, Json)>) -> Result<()> {
        self.write_entries(entries.into_iter().collect(), None)
    }

    /// Stores every entry in one durable write, all or none, each to expire `ttl` from now, as
    /// [`set_with_ttl`](Cache::set_with_ttl) would store it: a session store's or a page
    /// cache's batch. Errors as for [`set_many`](Cache::set_many) and for a TTL as for
    /// `set_with_ttl`; on any error nothing is stored.
    pub fn set_many_with_ttl(
        &self,
        entries: impl IntoIterator<Item = (String, Json)>,
        ttl: Duration,
    ) -> Result<()> {
        let ttl_ms = clock::ttl_ms(ttl)?;
        self.write_entries(
            entries.into_iter().collect(),
            Some(clock::expiry(self.shared.clock.now_ms(), ttl_ms)),
        )
    }

    /// Checks and stores entries that expire at `expires_at` (`None`: never).
    fn write_entries(&self, entries: Vec<(String, Json)>, expires_at: Option<i64>) -> Result<()> {
        let limits = &self.shared.limits;
        limits.check_batch(entries.len())?;
        for (key, value) in &entries {
            limits.check_key(key)?;
            limits.check_value(value)?;
        }
        self.alive()?;
        self.shared.write(Write::Set {
            cache: self.target(),
            entries,
            expires_at,
            quota: self.quota.clone(),
        })?;
        Ok(())
    }

    /// Adds `by` to the integer stored under `key` and returns the sum, in one durable write
    /// that no other write, from this process or another, comes between: many workers counting
    /// the same key lose no count, where a `get` then a `set` would. An absent key counts as
    /// 0, so the first increment stores `by`. A negative `by` subtracts. The entry keeps its
    /// expiry, as Redis's `INCR` keeps a TTL; one that has expired counts as absent, and the sum
    /// stored in its place has none.
    ///
    /// [`Error::WrongType`] (holding the value, which is left as it was) when the value stored
    /// is not a JSON integer that fits an `i64`, or when the sum would not fit one.
    /// [`Error::TooLarge`] naming the limit, as [`set`](Cache::set) would, when the sum's JSON
    /// text is longer than [`max_value_bytes`](crate::Limits::max_value_bytes) (only a limit
    /// under 20 bytes, the longest `i64`, can refuse one); nothing is stored.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let manager = easycaching::CacheManager::open(dir.path().join("app.db"))?;
    /// let visits = manager.create_cache("visits")?;
    /// assert_eq!(visits.increment("ada", 1)?, 1);
    /// assert_eq!(visits.increment("ada", 2)?, 3);
    /// assert_eq!(visits.get_value::<i64>("ada")?, Some(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn increment(&self, key: &str, by: i64) -> Result<i64> {
        self.shared.limits.check_key(key)?;
        self.alive()?;
        let write = Write::Increment {
            cache: self.target(),
            key: key.to_owned(),
            by,
            max_value_bytes: self.shared.limits.max_value_bytes,
            quota: self.quota.clone(),
        };
        match self.shared.write(write)? {
            Outcome::Integer(sum) => Ok(sum),
            other => Err(unexpected(other)),
        }
    }

    /// Stores `value` under `key` (removes the key when `value` is `None`) only if what is
    /// stored there now is `expected` (the key is absent, when `expected` is `None`), and
    /// answers whether it did: one durable write that no other write, from this process or
    /// another, comes between. Many workers updating one entry with a `get`, then a change,
    /// then a `compare_and_swap` that they retry while it answers `false`, lose no update.
    ///
    /// `expected` matches the value stored when they are the same JSON value, however each is
    /// written ([`Json::same_value`]): member order, whitespace and the spelling of numbers do
    /// not count, so a value read, deserialized and serialized again still matches. The
    /// comparison is made with what the database holds inside the write, never with this
    /// process's LRU, which may not have seen another process's write yet. An entry that has
    /// expired is absent; a value swapped in for one that has not keeps its expiry (so an
    /// [`update`](Cache::update) of an entry with a TTL keeps the TTL).
    ///
    /// A mismatch is `Ok(false)`, and stores nothing. Errors are those of [`set`](Cache::set)
    /// (or [`delete`](Cache::delete)), and on any of them nothing is stored:
    /// [`Error::TooLarge`] for a key or `value` over the [`Limits`](crate::Limits),
    /// [`Error::QuotaExceeded`] when storing `value` would go over the quota,
    /// [`Error::CacheDeleted`] when the cache is gone. `expected` is held to no size limit: it
    /// is only compared, and a value stored compactly may be expected written out at length.
    ///
    /// ```
    /// use easycaching::Json;
    /// # let dir = tempfile::tempdir()?;
    /// let manager = easycaching::CacheManager::open(dir.path().join("app.db"))?;
    /// let locks = manager.create_cache("locks")?;
    /// let mine = Json::parse(r#"{"owner": "ada"}"#)?;
    /// // Take the lock only if nobody holds it.
    /// assert!(locks.compare_and_swap("report", None, Some(mine.clone()))?);
    /// assert!(!locks.compare_and_swap("report", None, Some(Json::parse(r#"{"owner":"bob"}"#)?))?);
    /// // Release it only if still ours (however the value is written).
    /// assert!(locks.compare_and_swap("report", Some(&Json::parse(r#"{"owner":"ada"}"#)?), None)?);
    /// assert_eq!(locks.get("report")?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compare_and_swap(&self, key: &str, expected: Option<&Json>, value: Option<Json>) -> Result<bool> {
        let limits = &self.shared.limits;
        limits.check_key(key)?;
        if let Some(value) = &value {
            limits.check_value(value)?;
        }
        self.alive()?;
        let write = Write::CompareAndSwap {
            cache: self.target(),
            key: key.to_owned(),
            expected: expected.cloned(),
            value,
            quota: self.quota.clone(),
        };
        match self.shared.write(write)? {
            Outcome::Swapped(swapped) => Ok(swapped),
            other => Err(unexpected(other)),
        }
    }

    /// Changes the value under `key` to what `change` makes of it, and answers what was
    /// stored, losing no update another thread or process makes meanwhile: reads the value
    /// (`None` when the key is absent), calls `change` with it, and stores its result (`None`
    /// removes the key) with [`compare_and_swap`](Cache::compare_and_swap), expecting the value
    /// read. When another write came in between, it reads and calls `change` again, until a
    /// swap goes through.
    ///
    /// The retries are not bounded: each one means another writer's change to the key went in,
    /// so the writers together always make progress, but under heavy contention one caller may
    /// go round many times. `change` may run more than once, and should do nothing but compute
    /// the new value. Errors are those of [`get_value`](Cache::get_value) (a value stored that
    /// does not deserialize into `T`) and of `compare_and_swap`; on any of them nothing is
    /// stored.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let manager = easycaching::CacheManager::open(dir.path().join("app.db"))?;
    /// let carts = manager.create_cache("carts")?;
    /// let add_tea = |cart: Option<Vec<String>>| {
    ///     let mut cart = cart.unwrap_or_default();
    ///     cart.push("tea".to_owned());
    ///     Some(cart)
    /// };
    /// carts.update("ada", add_tea)?;
    /// assert_eq!(carts.update("ada", add_tea)?, Some(vec!["tea".to_owned(), "tea".to_owned()]));
    /// assert_eq!(carts.update("ada", |_: Option<Vec<String>>| None)?, None);
    /// assert!(!carts.contains("ada")?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update<T: Serialize + DeserializeOwned>(
        &self,
        key: &str,
        mut change: impl FnMut(Option<T>) -> Option<T>,
    ) -> Result<Option<T>> {
        loop {
            // What was read is what the swap expects: it matches however `T` writes it out.
            let read = self.get(key)?;
            let new = change(read.as_ref().map(Json::deserialize).transpose()?);
            let value = new.as_ref().map(Json::from_value).transpose()?;
            if self.compare_and_swap(key, read.as_ref(), value)? {
                return Ok(new);
            }
        }
    }

    /// Whether a value is stored under `key`.
    pub fn contains(&self, key: &str) -> Result<bool> {
        self.shared.limits.check_key(key)?;
        self.ready()?;
        let generation = match self.state.lookup(key) {
            Lookup::Hit(..) => return Ok(true),
            Lookup::Absent => return Ok(false),
            Lookup::Miss(generation) => generation,
        };
        let found = self.shared.store.contains(self.state.target.id, key)?;
        if !found {
            self.state.fill(key, None, generation, self.shared.max_cached_value_bytes);
        }
        Ok(found)
    }

    /// Removes `key`; `true` when a value was there.
    pub fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.delete_many(&[key])? > 0)
    }

    /// Removes each of `keys` in one durable write; returns how many were there.
    pub fn delete_many(&self, keys: &[&str]) -> Result<u64> {
        self.shared.limits.check_batch(keys.len())?;
        for key in keys {
            self.shared.limits.check_key(key)?;
        }
        self.alive()?;
        let keys = keys.iter().map(|key| key.to_string()).collect();
        count(self.shared.write(Write::Delete { cache: self.target(), keys })?)
    }

    /// Removes every entry; returns how many there were.
    pub fn clear(&self) -> Result<u64> {
        self.delete_with_prefix("")
    }

    /// Removes every entry whose key begins with `prefix` (compared byte by byte, as keys are
    /// ordered) in one durable write, however many there are; returns how many there were.
    /// With keys such as `user:1:name`, `delete_with_prefix("user:1:")` forgets user 1.
    ///
    /// ```
    /// # fn main() -> easycaching::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let manager = easycaching::CacheManager::open(dir.path().join("app.db"))?;
    /// let cache = manager.create_cache("profiles")?;
    /// cache.set_value("user:1:name", &"Ada")?;
    /// cache.set_value("user:1:lang", &"en")?;
    /// cache.set_value("user:10:name", &"Alan")?;
    /// assert_eq!(cache.delete_with_prefix("user:1:")?, 2);
    /// assert_eq!(cache.len()?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete_with_prefix(&self, prefix: &str) -> Result<u64> {
        self.alive()?;
        count(self.shared.write(Write::Clear { cache: self.target(), prefix: prefix.to_owned() })?)
    }

    /// How many entries the cache holds, those that have expired left out.
    pub fn len(&self) -> Result<u64> {
        Ok(self.stats()?.entries)
    }

    /// Whether the cache holds no entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// How many bytes of keys and values the cache holds.
    pub fn size_bytes(&self) -> Result<u64> {
        Ok(self.stats()?.bytes)
    }

    /// The cache's counts, as the database has them now.
    fn stats(&self) -> Result<Stats> {
        self.ready()?;
        self.shared.store.cache_stats(self.state.target.id)?.ok_or_else(|| self.gone())
    }

    /// How many of the cache's entries this process holds in memory (at most the LRU
    /// capacity).
    pub fn cached_len(&self) -> usize {
        self.state.cached()
    }

    /// One page of entries in key order after `cursor` (from the start when `None`): at most
    /// `limit` entries (clamped to 1..=1000), stopping early after about 4 MiB of values.
    /// Pass [`Page::next`] back for the following page; it is `None` at the end.
    pub fn entries(&self, cursor: Option<&str>, limit: usize) -> Result<Page<(String, Json)>> {
        self.entries_with_prefix("", cursor, limit)
    }

    /// One page of keys in key order; paged like [`Cache::entries`].
    pub fn keys(&self, cursor: Option<&str>, limit: usize) -> Result<Page<String>> {
        self.keys_with_prefix("", cursor, limit)
    }

    /// One page of the entries whose keys begin with `prefix` (compared byte by byte, as keys
    /// are ordered), in key order; paged like [`Cache::entries`]. Reads only those entries,
    /// however many others the cache holds.
    ///
    /// ```
    /// # fn main() -> easycaching::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let manager = easycaching::CacheManager::open(dir.path().join("app.db"))?;
    /// let cache = manager.create_cache("profiles")?;
    /// cache.set_value("user:1:name", &"Ada")?;
    /// cache.set_value("user:1:lang", &"en")?;
    /// cache.set_value("user:2:name", &"Grace")?;
    /// let page = cache.entries_with_prefix("user:1:", None, 100)?;
    /// let keys: Vec<&str> = page.items.iter().map(|(key, _)| key.as_str()).collect();
    /// assert_eq!(keys, ["user:1:lang", "user:1:name"]);
    /// assert_eq!(page.next, None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn entries_with_prefix(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<(String, Json)>> {
        self.ready()?;
        let limit = limit.clamp(1, MAX_PAGE_ITEMS);
        self.shared.store.entries(self.state.target.id, KeyRange::new(prefix, cursor), limit, MAX_PAGE_BYTES)
    }

    /// One page of the keys that begin with `prefix`, in key order; paged like
    /// [`Cache::entries_with_prefix`].
    pub fn keys_with_prefix(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<Page<String>> {
        self.ready()?;
        let limit = limit.clamp(1, MAX_PAGE_ITEMS);
        self.shared.store.keys(self.state.target.id, KeyRange::new(prefix, cursor), limit)
    }

    /// Every entry in key order, fetched a page at a time. An entry that exists for the whole
    /// iteration is seen exactly once, even while others write.
    pub fn iter(&self) -> Entries {
        self.iter_with_prefix("")
    }

    /// Every entry whose key begins with `prefix`, in key order, fetched a page at a time; as
    /// [`Cache::iter`], which is this with an empty prefix.
    pub fn iter_with_prefix(&self, prefix: &str) -> Entries {
        Entries(Paged::new(WithPrefix { cache: self.clone(), prefix: prefix.to_owned() }))
    }

    fn target(&self) -> Target<CacheId> {
        self.state.target.clone()
    }

    /// Before a read: takes in other processes' writes, then checks the cache still exists.
    fn ready(&self) -> Result<()> {
        self.shared.refresh()?;
        self.alive()
    }

    fn alive(&self) -> Result<()> {
        if self.state.is_dropped() {
            return Err(self.gone());
        }
        Ok(())
    }

    fn gone(&self) -> Error {
        Error::CacheDeleted(self.name().to_owned())
    }
}

fn count(outcome: Outcome) -> Result<u64> {
    match outcome {
        Outcome::Count(count) => Ok(count),
        other => Err(unexpected(other)),
    }
}

/// Every entry of a cache, or those whose keys begin with a prefix, a page at a time. Made by
/// [`Cache::iter`] and [`Cache::iter_with_prefix`].
pub struct Entries(Paged<WithPrefix>);

impl Iterator for Entries {
    type Item = Result<(String, Json)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

/// The entries of a cache whose keys begin with a prefix.
struct WithPrefix {
    cache: Cache,
    prefix: String,
}

impl Scan for WithPrefix {
    type Item = (String, Json);
    type Cursor = String;

    fn page(&self, after: Option<&String>, limit: usize) -> Result<Page<(String, Json)>> {
        self.cache.entries_with_prefix(&self.prefix, after.map(String::as_str), limit)
    }
}

/// The in-memory side of one cache, shared by every handle to it in this process.
pub(crate) struct CacheState {
    pub(crate) target: Target<CacheId>,
    lru: Option<Mutex<Lru>>,
    dropped: AtomicBool,
    /// The manager's clock, by which the LRU's entries expire.
    clock: Clock,
}

/// The LRU, and a generation that every change to it bumps. A reader that missed notes the
/// generation, reads the store, and fills the LRU only if the generation is unchanged: had a
/// write or an invalidation come in between, what it read may already be stale.
///
/// Keys the store was read for and did not have are remembered too (negative caching), so
/// asking again for a key that is not there (a "get, else compute and set" that keeps
/// missing, a probe for a key that was never written) is answered from memory. They are kept
/// apart from the values, in an LRU of the same capacity, so misses never push values out,
/// and they are invalidated exactly as values are: by this process's writes, and by the
/// change log for other processes' writes.
///
/// Nothing stored bounds how many keys can be found absent, so their memory is bounded apart:
/// keys longer than [`MAX_ABSENT_KEY_BYTES`] are not remembered, and all the caches of a
/// manager share one [`AbsentKeys`] budget. A cache over it forgets its own oldest absent
/// keys to make room, and remembers none when it has none to forget.
///
/// Each value is kept with its expiry (unix ms; `None`: never). A value found expired is
/// dropped and looked up as a miss, so the store, which no longer returns it, is read.
struct Lru {
    entries: LruCache<String, (Json, Option<i64>)>,
    absent: LruCache<String, ()>,
    absent_budget: Arc<AbsentKeys>,
    generation: u64,
}

/// The longest key remembered as absent; a miss on a longer key reads the store again.
const MAX_ABSENT_KEY_BYTES: usize = 256;

/// What remembering one absent key costs, as [`AbsentKeys`] counts it: the key, its `String`
/// and the LRU's node (a hash-table slot and two links).
fn absent_cost(key: &str) -> usize {
    key.len() + 64
}

/// What the caches of one manager may spend on keys remembered absent, all together: 16 MiB,
/// some 50,000 keys of 256 bytes or 200,000 short ones.
pub(crate) const ABSENT_KEYS_BUDGET: usize = 16 << 20;

/// The memory every cache of a manager may spend on keys remembered absent, all together.
pub(crate) struct AbsentKeys {
    used: AtomicUsize,
    limit: usize,
}

impl AbsentKeys {
    /// A budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> AbsentKeys {
        AbsentKeys { used: AtomicUsize::new(0), limit }
    }

    /// Takes `cost` bytes of the budget, if that many are left.
    fn take(&self, cost: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(cost).filter(|&after| after <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, cost: usize) {
        self.used.fetch_sub(cost, Ordering::AcqRel);
    }
}

impl Lru {
    fn remember(&mut self, key: &str, value: Option<(&Json, Option<i64>)>) {
        match value {
            Some((value, expires_at)) => {
                self.forget_absent(key);
                self.entries.put(key.to_owned(), (value.clone(), expires_at));
            }
            None => {
                self.entries.pop(key);
                self.remember_absent(key);
            }
        }
    }

    fn remember_absent(&mut self, key: &str) {
        // Already remembered: `get` makes it the most recent.
        if key.len() > MAX_ABSENT_KEY_BYTES || self.absent.get(key).is_some() {
            return;
        }
        let cost = absent_cost(key);
        while !self.absent_budget.take(cost) {
            match self.absent.pop_lru() {
                Some((oldest, ())) => self.absent_budget.give_back(absent_cost(&oldest)),
                None => return,
            }
        }
        if let Some((evicted, ())) = self.absent.push(key.to_owned(), ()) {
            self.absent_budget.give_back(absent_cost(&evicted));
        }
    }

    fn forget_absent(&mut self, key: &str) {
        if self.absent.pop(key).is_some() {
            self.absent_budget.give_back(absent_cost(key));
        }
    }

    fn forget_all(&mut self) {
        self.entries.clear();
        let cost: usize = self.absent.iter().map(|(key, ())| absent_cost(key)).sum();
        self.absent.clear();
        self.absent_budget.give_back(cost);
    }
}

impl Drop for Lru {
    fn drop(&mut self) {
        self.forget_all();
    }
}

/// What the LRU knows of a key.
pub(crate) enum Lookup {
    /// Its value, and when it expires.
    Hit(Json, Option<i64>),
    /// That the store has no value for it.
    Absent,
    /// Nothing: the store must be read; the generation to pass to [`CacheState::fill`].
    Miss(u64),
}

impl CacheState {
    pub(crate) fn new(
        target: Target<CacheId>,
        capacity: usize,
        absent_budget: Arc<AbsentKeys>,
        clock: Clock,
    ) -> CacheState {
        let lru = NonZeroUsize::new(capacity).map(|capacity| {
            Mutex::new(Lru {
                entries: LruCache::new(capacity),
                absent: LruCache::new(capacity),
                absent_budget,
                generation: 0,
            })
        });
        CacheState { target, lru, dropped: AtomicBool::new(false), clock }
    }

    fn lru(&self) -> Option<MutexGuard<'_, Lru>> {
        self.lru.as_ref().map(|lru| lru.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub(crate) fn lookup(&self, key: &str) -> Lookup {
        match self.lru() {
            Some(mut lru) => {
                if let Some((value, expires_at)) = lru.entries.get(key) {
                    if !self.clock.expired(*expires_at) {
                        return Lookup::Hit(value.clone(), *expires_at);
                    }
                    lru.entries.pop(key);
                    return Lookup::Miss(lru.generation);
                }
                if lru.absent.get(key).is_some() {
                    return Lookup::Absent;
                }
                Lookup::Miss(lru.generation)
            }
            None => Lookup::Miss(0),
        }
    }

    /// Keeps what was read from the store for `key` (its value, or that it has none), unless
    /// the LRU changed since the read began.
    pub(crate) fn fill(&self, key: &str, value: Option<&Stored>, generation: u64, max_value_bytes: usize) {
        if value.is_some_and(|stored| stored.value.len() > max_value_bytes) {
            return;
        }
        if let Some(mut lru) = self.lru()
            && lru.generation == generation
        {
            lru.remember(key, value.map(|stored| (&stored.value, stored.expires_at)));
        }
    }

    /// Keeps what this process just wrote for `key`: its value and expiry, or, after a
    /// delete, that it has none.
    pub(crate) fn store(&self, key: &str, value: Option<(&Json, Option<i64>)>, max_value_bytes: usize) {
        if value.is_some_and(|(value, _)| value.len() > max_value_bytes) {
            return self.forget(key);
        }
        if let Some(mut lru) = self.lru() {
            lru.generation += 1;
            lru.remember(key, value);
        }
    }

    /// Keeps `value`, which this process just wrote for `key` by a write that keeps the
    /// entry's expiry (increment, compare-and-swap), with that expiry, when the LRU knows it:
    /// the one it holds with the value replaced, or none when it knew the key absent. Only
    /// called when no other process committed since this one last looked, so what the LRU
    /// knew is what the write found. When it knew nothing, or held a value that has expired
    /// (which the write may or may not have found so), the key is forgotten.
    pub(crate) fn store_keeping_expiry(&self, key: &str, value: &Json, max_value_bytes: usize) {
        if value.len() > max_value_bytes {
            return self.forget(key);
        }
        if let Some(mut lru) = self.lru() {
            lru.generation += 1;
            let kept = match lru.entries.peek(key) {
                Some((_, expires_at)) if !self.clock.expired(*expires_at) => Some(*expires_at),
                Some(_) => None,
                None => lru.absent.contains(key).then_some(None),
            };
            match kept {
                Some(expires_at) => lru.remember(key, Some((value, expires_at))),
                None => {
                    lru.entries.pop(key);
                    lru.forget_absent(key);
                }
            }
        }
    }

    /// Drops what the LRU knows of one key.
    pub(crate) fn forget(&self, key: &str) {
        if let Some(mut lru) = self.lru() {
            lru.generation += 1;
            lru.entries.pop(key);
            lru.forget_absent(key);
        }
    }

    /// Forgets every value held under a key that begins with `prefix` (keys known to be absent
    /// stay so).
    pub(crate) fn forget_prefix(&self, prefix: &str) {
        if prefix.is_empty() {
            return self.forget_all();
        }
        if let Some(mut lru) = self.lru() {
            lru.generation += 1;
            let keys: Vec<String> = lru
                .entries
                .iter()
                .map(|(key, _)| key)
                .filter(|key| key.starts_with(prefix))
                .cloned()
                .collect();
            for key in keys {
                lru.entries.pop(&key);
            }
        }
    }

    /// Empties the LRU.
    pub(crate) fn forget_all(&self) {
        if let Some(mut lru) = self.lru() {
            lru.generation += 1;
            lru.forget_all();
        }
    }

    /// How many values the LRU holds now (keys known to be absent are not counted).
    pub(crate) fn cached(&self) -> usize {
        self.lru().map_or(0, |lru| lru.entries.len())
    }

    pub(crate) fn mark_dropped(&self) {
        self.dropped.store(true, Ordering::Release);
        self.forget_all();
    }

    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: i64, budget: &Arc<AbsentKeys>) -> CacheState {
        CacheState::new(
            Target { id: CacheId(id), name: format!("c{id}").into() },
            500,
            budget.clone(),
            Clock::system(),
        )
    }

    fn absent(state: &CacheState, key: &str) -> bool {
        matches!(state.lookup(key), Lookup::Absent)
    }

    #[test]
    fn keys_remembered_absent_share_one_budget_across_caches_and_give_it_back() {
        // Room for 10 short keys in all.
        let budget = Arc::new(AbsentKeys::new(10 * absent_cost("k00")));
        let (first, second) = (state(1, &budget), state(2, &budget));
        for i in 0..10 {
            first.store(&format!("k{i:02}"), None, usize::MAX);
        }
        assert!((0..10).all(|i| absent(&first, &format!("k{i:02}"))));
        // The budget is spent: the second cache has nothing of its own to forget.
        second.store("k99", None, usize::MAX);
        assert!(!absent(&second, "k99"));
        // The first makes room by forgetting its own oldest.
        first.store("k10", None, usize::MAX);
        assert!(absent(&first, "k10") && !absent(&first, "k00"));
        // Keys past MAX_ABSENT_KEY_BYTES are never remembered.
        first.forget_all();
        first.store(&"x".repeat(MAX_ABSENT_KEY_BYTES + 1), None, usize::MAX);
        assert!(!absent(&first, &"x".repeat(MAX_ABSENT_KEY_BYTES + 1)));
        assert_eq!(budget.used.load(Ordering::Acquire), 0, "clearing gave the budget back");
        second.store("k99", None, usize::MAX);
        assert!(absent(&second, "k99"));
        // A value stored where a key was absent, and a dropped cache, give their part back.
        second.store("k99", Some((&Json::parse("1").unwrap(), None)), usize::MAX);
        assert_eq!(budget.used.load(Ordering::Acquire), 0);
        second.store("k98", None, usize::MAX);
        drop(second);
        assert_eq!(budget.used.load(Ordering::Acquire), 0);
    }
}
