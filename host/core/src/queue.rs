//! [`Queue`]: a handle to one named, persistent FIFO queue.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::limits::{MAX_PAGE_BYTES, MAX_PAGE_ITEMS};
use crate::manager::{Shared, unexpected};
use crate::paging::{Paged, Scan};
use crate::store::{Outcome, Page, QueueId, Stats, Target, Write};
use crate::{Error, Json, Leased, Quota, Receipt, Result};

/// A handle to one named queue: first in, first out, kept in the database.
///
/// Every item is handed out by [`Queue::get`] at most once, to one caller, even when many
/// threads and processes take from the same queue; items from one producer come out in the
/// order it put them.
///
/// Delivery is *at most once*: [`get`](Queue::get) and [`get_many`](Queue::get_many) remove
/// their items in a durable write that commits before they return, so a process killed while
/// a `get` runs, or after it and before the item is handled, has lost that item; nothing
/// redelivers it. Items a process took but cannot handle, while it lives, go back to the front
/// with [`give_back`](Queue::give_back).
///
/// Delivery *at least once* takes a lease: [`lease`](Queue::lease) hands out the oldest item
/// waiting and leaves it in the queue, hidden from other takers, until it is acknowledged
/// ([`ack`](Queue::ack)) or released ([`release`](Queue::release)), or its lease ends, when it
/// is handed out again in its place. A holder killed halfway loses nothing; an item may then
/// be handled twice, so handle items in a way that a second time does no harm. See
/// [`Receipt`](crate::Receipt).
///
/// A taker with nothing to take can wait for an item rather than ask again and again:
/// [`get_wait`](Queue::get_wait) and [`lease_wait`](Queue::lease_wait) return as soon as one is
/// put, by this process or another.
///
/// ```
/// use easycaching::{CacheManager, Json};
///
/// # let dir = tempfile::tempdir()?;
/// let manager = CacheManager::open(dir.path().join("app.db"))?;
/// let queue = manager.create_queue("jobs")?;
/// queue.put(Json::parse(r#""first""#)?)?;
/// queue.put_value("second")?;
/// assert_eq!(queue.len()?, 2);
/// assert_eq!(queue.get_value::<String>()?.as_deref(), Some("first"));
/// assert_eq!(queue.peek()?.as_deref(), Some(r#""second""#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Queue {
    pub(crate) shared: Arc<Shared>,
    pub(crate) target: Target<QueueId>,
    pub(crate) quota: Quota,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("name", &self.name()).field("quota", &self.quota).finish()
    }
}

impl Queue {
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.target.name
    }

    /// The quota this handle holds the queue to.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// A handle to the same queue that holds it to `quota` on writes.
    pub fn with_quota(&self, quota: Quota) -> Queue {
        Queue { quota, ..self.clone() }
    }

    /// Appends `value` at the back; durable when it returns.
    pub fn put(&self, value: Json) -> Result<()> {
        self.put_many([value])
    }

    /// Serializes `value` and appends it.
    pub fn put_value<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.put(Json::from_value(value)?)
    }

    /// Appends every value in order, all or none, in one durable write.
    pub fn put_many(&self, values: impl IntoIterator<Item = Json>) -> Result<()> {
        let values: Vec<Json> = values.into_iter().collect();
        self.shared.limits.check_batch(values.len())?;
        for value in &values {
            self.shared.limits.check_value(value)?;
        }
        self.shared.write(Write::Put { queue: self.target.clone(), values, quota: self.quota.clone() })?;
        self.shared.queue_bell.ring();
        Ok(())
    }

    /// Removes and returns the oldest item; `None` when the queue is empty. The removal is
    /// durable before this returns: a process killed from then on has lost the item (see
    /// [`Queue`]).
    pub fn get(&self) -> Result<Option<Json>> {
        Ok(self.get_many(1)?.into_iter().next())
    }

    /// Removes and returns the oldest item as [`get`](Queue::get) does, waiting up to
    /// `timeout` for one when the queue has none: `None` only when none came in time. A
    /// `timeout` of zero waits no more than `get`.
    ///
    /// A put in this process wakes the wait at once; one in another process sharing the
    /// database is seen within about 16 ms (on PostgreSQL, once its commit's notification
    /// has come, typically well under a millisecond on one network), and a
    /// [lease](Queue::lease) that ends within 100 ms. Many may wait on one queue: each item
    /// goes to one of them. The wait holds the calling thread (and takes no write turn while
    /// it waits).
    ///
    /// ```
    /// use easycaching::CacheManager;
    /// use std::time::Duration;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let manager = CacheManager::open(dir.path().join("app.db"))?;
    /// let jobs = manager.create_queue("jobs")?;
    /// let producer = {
    ///     let jobs = jobs.clone();
    ///     std::thread::spawn(move || {
    ///         std::thread::sleep(Duration::from_millis(20));
    ///         jobs.put_value("resize")
    ///     })
    /// };
    /// // Waits for the producer's item rather than finding the queue empty.
    /// let job = jobs.get_wait(Duration::from_secs(30))?.expect("put within 30 s");
    /// assert_eq!(job.deserialize::<String>()?, "resize");
    /// # producer.join().expect("the producer ran")?;
    /// // Nothing more comes: `None` once the timeout has passed.
    /// assert_eq!(jobs.get_wait(Duration::from_millis(10))?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_wait(&self, timeout: Duration) -> Result<Option<Json>> {
        crate::queue_wait::until_taken(self, timeout, || self.get())
    }

    /// Removes the oldest item and deserializes it into `T`. An item that does not fit `T` is
    /// taken all the same and handed back in the [`Error::WrongType`](crate::Error::WrongType).
    pub fn get_value<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.get()?.map(|value| value.deserialize()).transpose()
    }

    /// Removes and returns up to `max` of the oldest items (at most 1,000 a call, stopping
    /// after the item that takes them to [`MAX_PAGE_BYTES`](crate::MAX_PAGE_BYTES)), oldest
    /// first. `max` 0 takes nothing.
    pub fn get_many(&self, max: usize) -> Result<Vec<Json>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let max = max.min(MAX_PAGE_ITEMS);
        match self.shared.write(Write::Take { queue: self.target.clone(), max })? {
            Outcome::Values(values) => Ok(values),
            other => Err(unexpected(other)),
        }
    }

    /// Removes and returns up to `max` of the oldest items as [`get_many`](Queue::get_many)
    /// does, waiting up to `timeout` for at least one when the queue has none (see
    /// [`get_wait`](Queue::get_wait)): empty only when none came in time, or when `max` is 0
    /// (which does not wait). It takes what waits when the first item comes and does not wait
    /// for more: a worker that handles items in batches gets one as soon as there is anything
    /// to do, as large as the queue holds then.
    ///
    /// ```
    /// use easycaching::CacheManager;
    /// use std::time::Duration;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let manager = CacheManager::open(dir.path().join("app.db"))?;
    /// let jobs = manager.create_queue("jobs")?;
    /// jobs.put_value("resize")?;
    /// jobs.put_value("upload")?;
    ///
    /// let batch = jobs.get_many_wait(10, Duration::from_secs(30))?;
    /// assert_eq!(batch.len(), 2);
    /// // Nothing more comes: an empty batch once the timeout has passed.
    /// assert!(jobs.get_many_wait(10, Duration::from_millis(10))?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_many_wait(&self, max: usize, timeout: Duration) -> Result<Vec<Json>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        crate::queue_wait::until_any_taken(self, timeout, || self.get_many(max))
    }

    /// Hands out the oldest item waiting under a lease of `lease` (1 ms to 100 years): the
    /// item stays in the queue, and no [`get`](Queue::get) or `lease` hands it out again,
    /// until it is acknowledged with [`ack`](Queue::ack) (removed, durable when that returns)
    /// or released with [`release`](Queue::release), or until the lease ends: then it waits
    /// again in its place, ahead of items put after it. `None` when no item waits. The lease
    /// is durable when this returns. Delivery is at least once (see [`Queue`]): choose a lease
    /// longer than handling an item takes, or an item still being handled is handed out to
    /// another taker too.
    ///
    /// ```
    /// use easycaching::CacheManager;
    /// use std::time::Duration;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let manager = CacheManager::open(dir.path().join("app.db"))?;
    /// let jobs = manager.create_queue("jobs")?;
    /// jobs.put_value("resize")?;
    /// jobs.put_value("upload")?;
    ///
    /// let first = jobs.lease(Duration::from_secs(30))?.expect("an item waits");
    /// assert_eq!(first.value.deserialize::<String>()?, "resize");
    /// // Hidden from other takers while leased, but still in the queue.
    /// assert_eq!(jobs.peek()?.as_deref(), Some(r#""upload""#));
    /// assert_eq!(jobs.len()?, 2);
    ///
    /// assert!(jobs.ack(&first.receipt)?); // handled: removed
    /// assert_eq!(jobs.len()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lease(&self, lease: Duration) -> Result<Option<Leased>> {
        Ok(self.lease_many(lease, 1)?.pop())
    }

    /// Hands out up to `max` of the oldest items waiting, each under a lease of `lease`, as
    /// [`lease`](Queue::lease) hands out one, in one durable write: at most 1,000 a call,
    /// stopping after the item that takes them to [`MAX_PAGE_BYTES`](crate::MAX_PAGE_BYTES),
    /// oldest first; empty when none waits, or when `max` is 0. Each has a receipt of its own,
    /// to acknowledge or release it alone.
    ///
    /// ```
    /// use easycaching::CacheManager;
    /// use std::time::Duration;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let manager = CacheManager::open(dir.path().join("app.db"))?;
    /// let jobs = manager.create_queue("jobs")?;
    /// for job in ["resize", "upload", "notify"] {
    ///     jobs.put_value(job)?;
    /// }
    /// let batch = jobs.lease_many(Duration::from_secs(30), 2)?;
    /// assert_eq!(batch.len(), 2);
    /// assert!(jobs.ack(&batch[0].receipt)?);     // handled
    /// assert!(jobs.release(&batch[1].receipt)?); // handed back, to be leased again
    /// assert_eq!(jobs.len()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lease_many(&self, lease: Duration, max: usize) -> Result<Vec<Leased>> {
        let lease_ms = crate::lease::lease_ms(lease)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let max = max.min(MAX_PAGE_ITEMS);
        match self.shared.write(Write::Lease { queue: self.target.clone(), lease_ms, max })? {
            Outcome::Leased(leased) => Ok(leased),
            other => Err(unexpected(other)),
        }
    }

    /// Hands out the oldest item waiting under a lease of `lease`, as [`lease`](Queue::lease)
    /// does, waiting up to `timeout` for one when none waits (see [`get_wait`](Queue::get_wait)):
    /// `None` only when none came in time. An item whose lease ends while this waits is handed
    /// out again.
    pub fn lease_wait(&self, lease: Duration, timeout: Duration) -> Result<Option<Leased>> {
        crate::queue_wait::until_taken(self, timeout, || self.lease(lease))
    }

    /// Hands out up to `max` of the oldest items waiting under a lease of `lease`, as
    /// [`lease_many`](Queue::lease_many) does, waiting up to `timeout` for at least one when
    /// none waits, as [`get_many_wait`](Queue::get_many_wait) waits: empty only when none came
    /// in time, or when `max` is 0 (which does not wait).
    pub fn lease_many_wait(&self, lease: Duration, max: usize, timeout: Duration) -> Result<Vec<Leased>> {
        crate::lease::lease_ms(lease)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        crate::queue_wait::until_any_taken(self, timeout, || self.lease_many(lease, max))
    }

    /// Removes the item leased under `receipt`, done with it; durable when it returns. `false`,
    /// and nothing changed, when the item is no longer under that lease: released, or handed
    /// out again after the lease ended (to [`get`](Queue::get) or another `lease`), or
    /// cleared. An item whose lease ended but that nobody took since is removed all the same.
    pub fn ack(&self, receipt: &Receipt) -> Result<bool> {
        self.on_lease(Write::Ack { queue: self.target.clone(), receipt: *receipt })
    }

    /// Ends the lease under `receipt` at once: the item waits again in its place (ahead of
    /// items put after it), for this or another taker, and its next lease counts one more
    /// [delivery](Leased::deliveries). `false`, as for [`ack`](Queue::ack), when the item is
    /// no longer under that lease.
    pub fn release(&self, receipt: &Receipt) -> Result<bool> {
        let released = self.on_lease(Write::Release { queue: self.target.clone(), receipt: *receipt })?;
        if released {
            self.shared.queue_bell.ring();
        }
        Ok(released)
    }

    /// Makes the lease under `receipt` end `lease` from now (1 ms to 100 years) instead, for
    /// a holder that needs longer than it first took: the receipt stays the same. `false`, as
    /// for [`ack`](Queue::ack), when the item is no longer under that lease; a lease that ended
    /// with the item still untaken is renewed.
    ///
    /// ```
    /// use easycaching::CacheManager;
    /// use std::time::Duration;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let manager = CacheManager::open(dir.path().join("app.db"))?;
    /// let jobs = manager.create_queue("jobs")?;
    /// jobs.put_value("transcode")?;
    /// let job = jobs.lease(Duration::from_secs(30))?.expect("an item waits");
    /// // Still at it after 20 s: another 30 s from now.
    /// assert!(jobs.extend(&job.receipt, Duration::from_secs(30))?);
    /// assert!(jobs.ack(&job.receipt)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend(&self, receipt: &Receipt, lease: Duration) -> Result<bool> {
        let lease_ms = crate::lease::lease_ms(lease)?;
        self.on_lease(Write::Extend { queue: self.target.clone(), receipt: *receipt, lease_ms })
    }

    /// Runs a write that answers whether the item was still under its lease.
    fn on_lease(&self, write: Write) -> Result<bool> {
        match self.shared.write(write)? {
            Outcome::Found(found) => Ok(found),
            other => Err(unexpected(other)),
        }
    }

    /// Puts items taken by [`get`](Queue::get) or [`get_many`](Queue::get_many) back at the
    /// front of the queue, ahead of every item waiting, in the order given (oldest first):
    /// for items that were taken but could not be handled, so that they are not lost. Durable
    /// when it returns.
    ///
    /// What comes out of a queue can always go back: the items count toward no quota, as they
    /// were in the queue before, and are held to no value size limit. This process's
    /// [`max_value_bytes`](crate::Limits::max_value_bytes) is not the limit an item was put
    /// under: another process sharing the database may allow more, or the limit may have been
    /// lowered since, and refusing such an item here would lose it. This is the one write not
    /// checked against [`Limits`](crate::Limits), so give back only what a `get` handed out;
    /// new values go in with [`put`](Queue::put). The one bound is on the call: as many items
    /// as one [`get_many`](Queue::get_many) can take ([`MAX_PAGE_ITEMS`](crate::MAX_PAGE_ITEMS),
    /// or [`max_batch_items`](crate::Limits::max_batch_items) when that is larger), as
    /// [`Error::TooLarge`]; give back more in several calls, last taken first.
    ///
    /// ```
    /// use easycaching::CacheManager;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let manager = CacheManager::open(dir.path().join("app.db"))?;
    /// let queue = manager.create_queue("jobs")?;
    /// queue.put_value("first")?;
    /// queue.put_value("second")?;
    /// let taken = queue.get()?.expect("an item");
    /// queue.give_back(vec![taken])?; // could not handle it: it is first again
    /// assert_eq!(queue.get_value::<String>()?.as_deref(), Some("first"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn give_back(&self, values: Vec<Json>) -> Result<()> {
        let most = MAX_PAGE_ITEMS.max(self.shared.limits.max_batch_items);
        if values.len() > most {
            return Err(Error::TooLarge { what: "batch", size: values.len(), unit: "items", limit: most });
        }
        self.shared.write(Write::GiveBack { queue: self.target.clone(), values })?;
        self.shared.queue_bell.ring();
        Ok(())
    }

    /// The oldest item waiting (the one [`get`](Queue::get) would take), left in place;
    /// `None` when none waits. Items under a lease are passed over.
    pub fn peek(&self) -> Result<Option<Json>> {
        self.shared.store.peek(&self.target)
    }

    /// Every item in the queue, oldest first, fetched a page at a time and left in place: for
    /// looking into a queue without taking from it. Items under a [lease](Queue::lease) are
    /// among them, as [`len`](Queue::len) counts them. While others put and take, an item that
    /// stays in the queue for the whole iteration is seen exactly once, and the items seen come
    /// in queue order, none twice; items put meanwhile may be seen, items taken meanwhile may
    /// have been. An item taken and [given back](Queue::give_back) meanwhile goes back to the
    /// front as a new item, and may be seen again. A queue deleted meanwhile ends the
    /// iteration with [`Error::QueueDeleted`].
    ///
    /// ```
    /// use easycaching::CacheManager;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let manager = CacheManager::open(dir.path().join("app.db"))?;
    /// let queue = manager.create_queue("jobs")?;
    /// queue.put_value("first")?;
    /// queue.put_value("second")?;
    /// let waiting = queue.items().collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!(waiting[0].deserialize::<String>()?, "first");
    /// assert_eq!(waiting[1].deserialize::<String>()?, "second");
    /// assert_eq!(queue.len()?, 2, "nothing was taken");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn items(&self) -> Items {
        Items(Paged::new(self.clone()))
    }

    /// One page of items after position `after`, oldest first (see [`Store::queue_items`]).
    ///
    /// [`Store::queue_items`]: crate::store::Store::queue_items
    fn items_after(&self, after: Option<i64>, limit: usize) -> Result<Page<Json, i64>> {
        let limit = limit.clamp(1, MAX_PAGE_ITEMS);
        self.shared.store.queue_items(&self.target, after, limit, MAX_PAGE_BYTES)
    }

    /// How many items the queue holds: those waiting, and those under a
    /// [lease](Queue::lease) not yet acknowledged.
    pub fn len(&self) -> Result<u64> {
        Ok(self.stats()?.entries)
    }

    /// How many bytes of items the queue holds, as its quota counts them.
    pub fn size_bytes(&self) -> Result<u64> {
        Ok(self.stats()?.bytes)
    }

    fn stats(&self) -> Result<Stats> {
        self.shared
            .store
            .queue_stats(self.target.id)?
            .ok_or_else(|| Error::QueueDeleted(self.name().to_owned()))
    }

    /// Whether the queue holds no item (none waiting, none under a lease).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes every item; returns how many there were.
    pub fn clear(&self) -> Result<u64> {
        match self.shared.write(Write::ClearQueue { queue: self.target.clone() })? {
            Outcome::Count(count) => Ok(count),
            other => Err(unexpected(other)),
        }
    }
}

/// Every item of a queue, oldest first, a page at a time, none taken. Made by [`Queue::items`].
pub struct Items(Paged<Queue>);

impl Iterator for Items {
    type Item = Result<Json>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

impl Scan for Queue {
    type Item = Json;
    type Cursor = i64;

    fn page(&self, after: Option<&i64>, limit: usize) -> Result<Page<Json, i64>> {
        self.items_after(after.copied(), limit)
    }
}
