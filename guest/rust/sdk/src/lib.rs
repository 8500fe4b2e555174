//! Write easycaching plugins in Rust.
//!
//! A thin layer over the `easycaching:cache` WIT imports that feels like Rust: values go in
//! and out through serde, iteration pages under the hood, and every call returns a
//! [`Result`] whose [`Error`] has a case for each case of the WIT `error`.
//!
//! ```no_run
//! use easycaching_guest::{Cache, Queue};
//!
//! fn main() -> Result<(), easycaching_guest::Error> {
//!     let test = Cache::create("test")?;
//!     test.set("foo", "bar")?;
//!     let foo: Option<String> = test.get("foo")?;
//!     assert_eq!(foo.as_deref(), Some("bar"));
//!
//!     for entry in test.iter::<serde_json::Value>() {
//!         let (key, value) = entry?;
//!         println!("{{{key:?}: {value}}}");
//!     }
//!
//!     let jobs = Queue::create("jobs")?;
//!     jobs.put(&serde_json::json!({"resize": "cat.png"}))?;
//!     Ok(())
//! }
//! ```
//!
//! Build a plugin as an ordinary binary for `wasm32-wasip2`: its `fn main` becomes the
//! `wasi:cli/run` export that `easycaching run` calls.
#![deny(missing_docs)]

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The raw bindings `wit-bindgen` generates for the `easycaching:cache/imports` world, for
/// anything the typed layer does not cover.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "easycaching:cache/imports",
        path: "../../../wit",
    });
}

mod error;

use bindings::easycaching::cache::{caches, manager, queues, types};
pub use error::{Error, Result};

/// Entries or keys fetched per call while iterating.
const PAGE: u32 = 256;

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::InvalidJson(e.to_string()))
}

/// `json` deserialized into `T`; [`Error::WrongType`], holding `json`, when it does not fit.
fn from_json<T: DeserializeOwned>(json: String) -> Result<T> {
    from_json_at(json, String::new)
}

/// [`from_json`] of one of several values, `which` saying which in the error's reason.
fn from_json_at<T: DeserializeOwned>(json: String, which: impl FnOnce() -> String) -> Result<T> {
    serde_json::from_str(&json)
        .map_err(|e| Error::WrongType { reason: format!("{}{e}", which()), value: json })
}

/// A named cache: a persistent map from string keys to JSON values, shared with every plugin
/// and process using the same database.
pub struct Cache(caches::Cache);

impl Cache {
    /// Opens the cache called `name`, creating it when it does not exist (needs the create
    /// grant to create).
    pub fn create(name: &str) -> Result<Cache> {
        Ok(Cache(manager::create_cache(name)?))
    }

    /// Opens the existing cache called `name`.
    pub fn open(name: &str) -> Result<Cache> {
        Ok(Cache(manager::open_cache(name)?))
    }

    /// The cache's name.
    pub fn name(&self) -> String {
        self.0.name()
    }

    /// The value under `key`, deserialized into `T`; `None` when there is none.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.0.get(key)?.map(from_json).transpose()
    }

    /// The value under `key` as JSON text.
    pub fn get_json(&self, key: &str) -> Result<Option<String>> {
        Ok(self.0.get(key)?)
    }

    /// Stores `value` (serialized to JSON) under `key`. It never expires, whatever TTL the
    /// value it replaces had (as Redis's `SET`).
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        Ok(self.0.set(key, &to_json(value)?)?)
    }

    /// Stores `value` (serialized to JSON) under `key`, to expire `ttl` from now (counted in
    /// whole milliseconds, rounded up): from then on it is gone for every reader, in every
    /// plugin and process. [`increment`](Cache::increment) and
    /// [`compare_and_swap`](Cache::compare_and_swap) keep the TTL, [`set`](Cache::set) clears
    /// it, [`expire`](Cache::expire) changes it. [`Error::InvalidArgument`] for a zero `ttl` or
    /// one over 100 years.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use easycaching_guest::Cache;
    /// # fn main() -> Result<(), easycaching_guest::Error> {
    /// let sessions = Cache::create("sessions")?;
    /// sessions.set_with_ttl("ada", &serde_json::json!({"user": 1}), Duration::from_secs(30 * 60))?;
    /// assert!(sessions.ttl("ada")?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_with_ttl<T: Serialize + ?Sized>(&self, key: &str, value: &T, ttl: Duration) -> Result<()> {
        Ok(self.0.set_with_ttl(key, &to_json(value)?, millis(ttl))?)
    }

    /// How long the entry under `key` has left to live; `None` when it has no TTL, or when
    /// there is no entry ([`contains`](Cache::contains) tells the two apart).
    pub fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        Ok(self.0.ttl(key)?.map(Duration::from_millis))
    }

    /// Sets the entry under `key` to expire `ttl` from now, or never with `None`, leaving its
    /// value as it is; `true` when there was an entry to change. Errors as for
    /// [`set_with_ttl`](Cache::set_with_ttl).
    pub fn expire(&self, key: &str, ttl: Option<Duration>) -> Result<bool> {
        Ok(self.0.expire(key, ttl.map(millis))?)
    }

    /// Stores JSON text under `key`; the host refuses text that is not JSON.
    pub fn set_json(&self, key: &str, json: &str) -> Result<()> {
        Ok(self.0.set(key, json)?)
    }

    /// Adds `delta` to the integer stored under `key` and returns the sum, in one write no
    /// other comes between: plugins and processes counting on one key lose no count, where a
    /// `get` then a `set` would. An absent key counts as 0; a negative `delta` subtracts.
    /// [`Error::InvalidJson`] when the value stored is not an integer (it is left as it was).
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        Ok(self.0.increment(key, delta)?)
    }

    /// Stores `value` under `key` (removes the key when `value` is `None`) only if `key` holds
    /// `expected` now (is absent, when `expected` is `None`), and returns whether it did: one
    /// write that no other, from any plugin or process, comes between. A mismatch is
    /// `Ok(false)` and changes nothing. Values are compared by the host as JSON values, so
    /// member order, whitespace and the spelling of numbers do not count.
    ///
    /// Both sides are of one type `T`; when both are `None`, name it: `None::<&()>`.
    /// [`update`](Cache::update) does the usual read, change and retry for you.
    ///
    /// ```no_run
    /// # use easycaching_guest::Cache;
    /// # fn main() -> Result<(), easycaching_guest::Error> {
    /// let locks = Cache::create("locks")?;
    /// if locks.compare_and_swap("report", None, Some("worker-1"))? {
    ///     // ... the lock is ours; release it only if it still is:
    ///     locks.compare_and_swap("report", Some("worker-1"), None)?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn compare_and_swap<T: Serialize + ?Sized>(
        &self,
        key: &str,
        expected: Option<&T>,
        value: Option<&T>,
    ) -> Result<bool> {
        let expected = expected.map(to_json).transpose()?;
        let value = value.map(to_json).transpose()?;
        self.compare_and_swap_json(key, expected.as_deref(), value.as_deref())
    }

    /// [`compare_and_swap`](Cache::compare_and_swap) with JSON text; the host refuses text
    /// that is not JSON ([`Error::InvalidJson`], naming `expected` or `value`).
    pub fn compare_and_swap_json(
        &self,
        key: &str,
        expected: Option<&str>,
        value: Option<&str>,
    ) -> Result<bool> {
        Ok(self.0.compare_and_swap(key, expected, value)?)
    }

    /// Changes the value under `key` with `change` and returns what was stored, losing no
    /// update made meanwhile by another plugin or process: reads the value (`None` when the key
    /// is absent), calls `change` with it, and stores what it returns (`None` removes the key)
    /// with [`compare_and_swap`](Cache::compare_and_swap), expecting the value read. When
    /// another write came in between, it reads again and calls `change` again, until the swap
    /// goes through.
    ///
    /// The retries are not bounded: each one means that another writer's change to the key
    /// went in, so the writers together always make progress, but under heavy contention one
    /// caller may go round many times (a plugin's time limit still applies). `change` may thus
    /// run more than once, and should do nothing but compute the new value.
    /// [`Error::WrongType`] when the value stored does not deserialize into `T`.
    ///
    /// ```no_run
    /// # use easycaching_guest::Cache;
    /// # fn main() -> Result<(), easycaching_guest::Error> {
    /// let carts = Cache::create("carts")?;
    /// let cart = carts.update("ada", |cart: Option<Vec<String>>| {
    ///     let mut cart = cart.unwrap_or_default();
    ///     cart.push("tea".to_owned());
    ///     Some(cart)
    /// })?;
    /// assert!(cart.is_some_and(|cart| cart.ends_with(&["tea".to_owned()])));
    /// # Ok(())
    /// # }
    /// ```
    pub fn update<T: Serialize + DeserializeOwned>(
        &self,
        key: &str,
        mut change: impl FnMut(Option<T>) -> Option<T>,
    ) -> Result<Option<T>> {
        loop {
            // The text read is what the swap expects: nothing is lost by serializing it again.
            let read = self.0.get(key)?;
            let current = read.clone().map(from_json).transpose()?;
            let new = change(current);
            let text = new.as_ref().map(to_json).transpose()?;
            if self.compare_and_swap_json(key, read.as_deref(), text.as_deref())? {
                return Ok(new);
            }
        }
    }

    /// Whether a value is stored under `key`.
    pub fn contains(&self, key: &str) -> Result<bool> {
        Ok(self.0.contains(key)?)
    }

    /// Removes `key`; `true` when a value was there.
    pub fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.0.delete(key)?)
    }

    /// Removes every entry; returns how many there were.
    pub fn clear(&self) -> Result<u64> {
        Ok(self.0.clear()?)
    }

    /// How many entries the cache holds.
    pub fn len(&self) -> Result<u64> {
        Ok(self.0.len()?)
    }

    /// Whether the cache holds no entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The values under each of `keys` (`&str`s or `String`s, a slice or any iterator), in
    /// order, in one call; `None` where nothing is stored.
    pub fn get_many<T: DeserializeOwned>(
        &self,
        keys: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Vec<Option<T>>> {
        let keys = owned_keys(keys);
        let values = self.0.get_many(&keys)?.into_iter().enumerate();
        values
            .map(|(at, value)| value.map(|json| from_json_at(json, || format!("keys[{at}]: "))).transpose())
            .collect()
    }

    /// Stores every entry in one durable write, all or none: `(key, value)` pairs, keys `&str`
    /// or `String`, values anything serde writes or references to them (so a `&HashMap<String,
    /// V>` or a `BTreeMap` itself will do).
    pub fn set_many<K: AsRef<str>, V: Serialize>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()> {
        Ok(self.0.set_many(&wit_entries(entries)?)?)
    }

    /// [`set_many`](Cache::set_many), each entry to expire `ttl` from now, as
    /// [`set_with_ttl`](Cache::set_with_ttl) stores one; all or none.
    pub fn set_many_with_ttl<K: AsRef<str>, V: Serialize>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
        ttl: Duration,
    ) -> Result<()> {
        Ok(self.0.set_many_with_ttl(&wit_entries(entries)?, millis(ttl))?)
    }

    /// Removes every entry whose key begins with `prefix` (compared byte by byte, as keys
    /// are ordered) in one durable write, however many there are; returns how many there
    /// were. With keys such as `user:1:name`, `delete_with_prefix("user:1:")` forgets user 1.
    pub fn delete_with_prefix(&self, prefix: &str) -> Result<u64> {
        Ok(self.0.delete_with_prefix(prefix)?)
    }

    /// Removes each of `keys` (`&str`s or `String`s) in one durable write; returns how many
    /// were there.
    pub fn delete_many(&self, keys: impl IntoIterator<Item = impl AsRef<str>>) -> Result<u64> {
        let keys = owned_keys(keys);
        Ok(self.0.delete_many(&keys)?)
    }

    /// One page of entries after `cursor`, as the WIT returns it.
    pub fn entries_page(&self, cursor: Option<&str>, limit: u32) -> Result<types::EntryPage> {
        Ok(self.0.entries(cursor, limit)?)
    }

    /// One page of the entries whose keys begin with `prefix`, after `cursor`, as the WIT
    /// returns it.
    pub fn entries_page_with_prefix(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<types::EntryPage> {
        Ok(self.0.entries_with_prefix(prefix, cursor, limit)?)
    }

    /// Every entry in key order, deserialized into `T`, fetched a page at a time: the whole
    /// cache is never held in memory at once.
    pub fn iter<T: DeserializeOwned>(&self) -> Entries<'_, T> {
        self.iter_with_prefix("")
    }

    /// Every entry whose key begins with `prefix` (compared byte by byte, as keys are
    /// ordered), in key order, deserialized into `T`, fetched a page at a time. Reads only
    /// those entries, however many others the cache holds: with keys such as `user:1:name`,
    /// `iter_with_prefix("user:1:")` lists user 1's.
    pub fn iter_with_prefix<T: DeserializeOwned>(&self, prefix: &str) -> Entries<'_, T> {
        Entries {
            cache: self,
            prefix: prefix.to_owned(),
            page: Vec::new().into_iter(),
            next: None,
            done: false,
            _values: std::marker::PhantomData,
        }
    }

    /// Every key in key order, fetched a page at a time.
    pub fn keys(&self) -> Keys<'_> {
        self.keys_with_prefix("")
    }

    /// Every key that begins with `prefix`, in key order, fetched a page at a time.
    pub fn keys_with_prefix(&self, prefix: &str) -> Keys<'_> {
        Keys { cache: self, prefix: prefix.to_owned(), page: Vec::new().into_iter(), next: None, done: false }
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("name", &self.name()).finish()
    }
}

/// Every entry of a cache, or those whose keys begin with a prefix. Made by [`Cache::iter`]
/// and [`Cache::iter_with_prefix`].
pub struct Entries<'a, T> {
    cache: &'a Cache,
    prefix: String,
    page: std::vec::IntoIter<types::Entry>,
    next: Option<String>,
    done: bool,
    _values: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Iterator for Entries<'_, T> {
    type Item = Result<(String, T)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(entry) = self.page.next() {
                let types::Entry { key, value } = entry;
                return Some(from_json_at(value, || format!("key {key:?}: ")).map(|value| (key, value)));
            }
            if self.done {
                return None;
            }
            match self.cache.0.entries_with_prefix(&self.prefix, self.next.as_deref(), PAGE) {
                Ok(page) => {
                    self.done = page.next.is_none();
                    self.next = page.next;
                    self.page = page.entries.into_iter();
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(error.into()));
                }
            }
        }
    }
}

/// Every key of a cache, or those that begin with a prefix. Made by [`Cache::keys`] and
/// [`Cache::keys_with_prefix`].
pub struct Keys<'a> {
    cache: &'a Cache,
    prefix: String,
    page: std::vec::IntoIter<String>,
    next: Option<String>,
    done: bool,
}

impl Iterator for Keys<'_> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(key) = self.page.next() {
                return Some(Ok(key));
            }
            if self.done {
                return None;
            }
            match self.cache.0.keys_with_prefix(&self.prefix, self.next.as_deref(), PAGE) {
                Ok(page) => {
                    self.done = page.next.is_none();
                    self.next = page.next;
                    self.page = page.keys.into_iter();
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(error.into()));
                }
            }
        }
    }
}

/// The keys as the bindings take them: `String`s of their own.
fn owned_keys(keys: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<String> {
    keys.into_iter().map(|key| key.as_ref().to_owned()).collect()
}

/// A named FIFO queue of JSON values, shared with every plugin and process using the same
/// database. Each item is handed out at most once: `get` removes it durably before it returns,
/// so a plugin stopped before it has handled an item has lost it. For delivery at least once,
/// take items with [`lease`](Queue::lease) and [`ack`](Queue::ack) each once handled.
pub struct Queue(queues::Queue);

/// An item handed out by [`Queue::lease`]: it stays in the queue, hidden from other takers,
/// until [`Queue::ack`] removes it or [`Queue::release`] hands it back, or until the lease
/// ends, when it is handed out again.
#[derive(Debug, Clone, PartialEq)]
pub struct Leased<T> {
    /// The item.
    pub value: T,
    /// Names this lease of the item, for [`Queue::ack`] and [`Queue::release`] (text that may
    /// be kept, and acknowledged by another plugin).
    pub receipt: String,
    /// How many times the item has been handed out under a lease, this time included.
    pub deliveries: u64,
}

impl Queue {
    /// Opens the queue called `name`, creating it when it does not exist.
    pub fn create(name: &str) -> Result<Queue> {
        Ok(Queue(manager::create_queue(name)?))
    }

    /// Opens the existing queue called `name`.
    pub fn open(name: &str) -> Result<Queue> {
        Ok(Queue(manager::open_queue(name)?))
    }

    /// The queue's name.
    pub fn name(&self) -> String {
        self.0.name()
    }

    /// Appends `value` at the back.
    pub fn put<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        Ok(self.0.put(&to_json(value)?)?)
    }

    /// Removes and returns the oldest item; `None` when the queue is empty. An item that does
    /// not deserialize into `T` is taken all the same, and handed back in the
    /// [`Error::WrongType`].
    pub fn get<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.0.get()?.map(from_json).transpose()
    }

    /// Removes and returns the oldest item as [`get`](Queue::get) does, waiting up to
    /// `timeout` for one when the queue is empty: `None` only when none came in time. A put
    /// by another plugin or process ends the wait within milliseconds; the plugin's time
    /// limit ends it too, as it ends a sleep.
    ///
    /// ```no_run
    /// # use easycaching_guest::Queue;
    /// # use std::time::Duration;
    /// # fn send(_: &str) {}
    /// # fn main() -> easycaching_guest::Result<()> {
    /// let outbox = Queue::create("outbox")?;
    /// // Sends as mail comes in, and stops after a quiet minute.
    /// while let Some(mail) = outbox.get_wait::<String>(Duration::from_secs(60))? {
    ///     send(&mail);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_wait<T: DeserializeOwned>(&self, timeout: Duration) -> Result<Option<T>> {
        self.0.get_wait(millis(timeout))?.map(from_json).transpose()
    }

    /// The oldest item waiting (the one `get` would take), left in place.
    pub fn peek<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.0.peek()?.map(from_json).transpose()
    }

    /// How many items the queue holds, those under a lease not yet acknowledged included.
    pub fn len(&self) -> Result<u64> {
        Ok(self.0.len()?)
    }

    /// Whether the queue holds no item.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes every item; returns how many there were.
    pub fn clear(&self) -> Result<u64> {
        Ok(self.0.clear()?)
    }

    /// Appends every value (anything serde writes, or references to them), in order, in one
    /// durable write.
    pub fn put_many<T: Serialize>(&self, values: impl IntoIterator<Item = T>) -> Result<()> {
        let values = values.into_iter().map(|value| to_json(&value)).collect::<Result<Vec<_>>>()?;
        Ok(self.0.put_many(&values)?)
    }

    /// Hands out the oldest item waiting under a lease of `lease` (rounded up to whole
    /// milliseconds): the item stays in the queue until [`ack`](Queue::ack) removes it, and is
    /// handed out again if it is not acknowledged before the lease ends, whatever becomes of
    /// this plugin meanwhile. `None` when no item waits. An item that does not deserialize
    /// into `T` is not lost: the [`Error::WrongType`] holds its JSON, and the item comes back
    /// when the lease ends (to lease such items and acknowledge them, lease a
    /// `serde_json::Value`).
    ///
    /// ```no_run
    /// # use easycaching_guest::Queue;
    /// # use std::time::Duration;
    /// # fn resize(_: &str) {}
    /// # fn main() -> easycaching_guest::Result<()> {
    /// let jobs = Queue::create("jobs")?;
    /// while let Some(job) = jobs.lease::<String>(Duration::from_secs(60))? {
    ///     resize(&job.value); // a trap here loses nothing: the job comes back in a minute
    ///     jobs.ack(&job.receipt)?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn lease<T: DeserializeOwned>(&self, lease: Duration) -> Result<Option<Leased<T>>> {
        self.0.lease(millis(lease))?.map(Leased::from_item).transpose()
    }

    /// Hands out the oldest item waiting under a lease as [`lease`](Queue::lease) does,
    /// waiting up to `timeout` for one when none waits, as [`get_wait`](Queue::get_wait)
    /// waits: `None` only when none came in time.
    pub fn lease_wait<T: DeserializeOwned>(
        &self,
        lease: Duration,
        timeout: Duration,
    ) -> Result<Option<Leased<T>>> {
        self.0.lease_wait(millis(lease), millis(timeout))?.map(Leased::from_item).transpose()
    }

    /// Hands out up to `max` of the oldest items waiting, each under a lease of `lease` as
    /// [`lease`](Queue::lease) hands out one, in one call: oldest first, each with a receipt of
    /// its own; empty when none waits. An item that does not deserialize into `T` fails the
    /// call with its [`Error::WrongType`]; the items leased with it come back when their
    /// leases end.
    ///
    /// ```no_run
    /// # use easycaching_guest::Queue;
    /// # use std::time::Duration;
    /// # fn resize(_: &str) {}
    /// # fn main() -> easycaching_guest::Result<()> {
    /// let jobs = Queue::create("jobs")?;
    /// // Up to 10 jobs at a time, waiting up to a minute for the first.
    /// for job in jobs.lease_many_wait::<String>(Duration::from_secs(60), 10, Duration::from_secs(60))? {
    ///     resize(&job.value);
    ///     jobs.ack(&job.receipt)?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn lease_many<T: DeserializeOwned>(&self, lease: Duration, max: u32) -> Result<Vec<Leased<T>>> {
        self.0.lease_many(millis(lease), max)?.into_iter().map(Leased::from_item).collect()
    }

    /// Hands out up to `max` of the oldest items waiting under a lease as
    /// [`lease_many`](Queue::lease_many) does, waiting up to `timeout` for at least one when
    /// none waits, as [`get_many_wait`](Queue::get_many_wait) waits: empty only when none came
    /// in time.
    pub fn lease_many_wait<T: DeserializeOwned>(
        &self,
        lease: Duration,
        max: u32,
        timeout: Duration,
    ) -> Result<Vec<Leased<T>>> {
        let leased = self.0.lease_many_wait(millis(lease), max, millis(timeout))?;
        leased.into_iter().map(Leased::from_item).collect()
    }

    /// Removes the item leased under `receipt`: handled. `false` when it is no longer under
    /// that lease (released, handed out again after the lease ended, or cleared).
    pub fn ack(&self, receipt: &str) -> Result<bool> {
        Ok(self.0.ack(receipt)?)
    }

    /// Hands the item leased under `receipt` back at once, in its place; `false` as for
    /// [`ack`](Queue::ack).
    pub fn release(&self, receipt: &str) -> Result<bool> {
        Ok(self.0.release(receipt)?)
    }

    /// Makes the lease under `receipt` end `lease` from now instead, for work that takes longer
    /// than first thought; the receipt stays the same. `false` as for [`ack`](Queue::ack).
    pub fn extend(&self, receipt: &str, lease: Duration) -> Result<bool> {
        Ok(self.0.extend(receipt, millis(lease))?)
    }

    /// Removes and returns up to `max` of the oldest items, oldest first. When one of them
    /// does not deserialize into `T`, the [`Error::WrongType`] holds every item taken, as one
    /// JSON array, so none is lost.
    pub fn get_many<T: DeserializeOwned>(&self, max: u32) -> Result<Vec<T>> {
        items_as(self.0.get_many(max)?)
    }

    /// Removes and returns up to `max` of the oldest items as [`get_many`](Queue::get_many)
    /// does, waiting up to `timeout` for at least one when the queue is empty, as
    /// [`get_wait`](Queue::get_wait) waits: empty only when none came in time (or `max` is 0).
    /// It takes what waits when the first item comes, and waits for no more. Items that do
    /// not deserialize into `T` come back as `get_many`'s do.
    ///
    /// ```no_run
    /// # use easycaching_guest::Queue;
    /// # use std::time::Duration;
    /// # fn index(_: &[String]) {}
    /// # fn main() -> easycaching_guest::Result<()> {
    /// let pages = Queue::create("pages")?;
    /// // Indexes pages in batches of up to 100, and stops after a quiet minute.
    /// loop {
    ///     let batch: Vec<String> = pages.get_many_wait(100, Duration::from_secs(60))?;
    ///     if batch.is_empty() {
    ///         break;
    ///     }
    ///     index(&batch);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_many_wait<T: DeserializeOwned>(&self, max: u32, timeout: Duration) -> Result<Vec<T>> {
        items_as(self.0.get_many_wait(max, millis(timeout))?)
    }
}

/// Items taken from a queue, deserialized into `T`. When one of them does not fit, the
/// [`Error::WrongType`] holds every item taken, as one JSON array, so none is lost.
fn items_as<T: DeserializeOwned>(items: Vec<String>) -> Result<Vec<T>> {
    let mut values = Vec::with_capacity(items.len());
    for (at, item) in items.iter().enumerate() {
        match serde_json::from_str(item) {
            Ok(value) => values.push(value),
            Err(e) => {
                let reason = format!("item {at} of {}: {e}", items.len());
                return Err(Error::WrongType { reason, value: format!("[{}]", items.join(",")) });
            }
        }
    }
    Ok(values)
}

impl<T: DeserializeOwned> Leased<T> {
    fn from_item(item: queues::LeasedItem) -> Result<Self> {
        let value = from_json(item.value)?;
        Ok(Leased { value, receipt: item.receipt, deliveries: item.deliveries })
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("name", &self.name()).finish()
    }
}

/// The names of the caches this plugin may open.
pub fn list_caches() -> Result<Vec<String>> {
    Ok(manager::list_caches()?)
}

/// Deletes the cache called `name`; `true` when it existed.
pub fn delete_cache(name: &str) -> Result<bool> {
    Ok(manager::delete_cache(name)?)
}

/// The names of the queues this plugin may open.
pub fn list_queues() -> Result<Vec<String>> {
    Ok(manager::list_queues()?)
}

/// Deletes the queue called `name`; `true` when it existed.
pub fn delete_queue(name: &str) -> Result<bool> {
    Ok(manager::delete_queue(name)?)
}

/// A batch's entries as the host takes them, each value serialized to JSON.
fn wit_entries<K: AsRef<str>, V: Serialize>(
    entries: impl IntoIterator<Item = (K, V)>,
) -> Result<Vec<types::Entry>> {
    entries
        .into_iter()
        .map(|(key, value)| Ok(types::Entry { key: key.as_ref().to_owned(), value: to_json(&value)? }))
        .collect()
}

/// A duration in whole milliseconds, rounded up (so that no duration above zero is zero); one
/// too long for a `u64` is `u64::MAX`, which the host refuses as too long.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}
