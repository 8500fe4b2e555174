//! What a write decides from what it read, the same whatever the backend stores in: the sum of
//! an increment, whether a compare-and-swap matches, whether a quota holds. Each backend's
//! `writes` reads and writes its own way and asks these, so that the backends cannot drift
//! apart on what a write means; the writes that read first, increment and compare-and-swap,
//! are made here whole ([`EntryWrites`]) from the backend's reads and writes.

use crate::error::shortened;
use crate::store::{CacheId, Outcome, QueueId, Stats, Target};
use crate::{Error, Json, Quota};

/// The reads and writes of entries that a backend's batch makes inside its transaction, from
/// which the writes that read before they write (an increment, a compare-and-swap) are made,
/// the same way in every backend: nothing can come between their read and their write, and they
/// store through the backend's own `set` and `delete`, which keep the counts, the quotas and
/// the change log.
pub(crate) trait EntryWrites {
    /// The backend's error of a write, which a refusal ([`Error`]) converts into.
    type Error: From<Error>;

    /// The value stored under `key` and its expiry, read inside the transaction; `None` when
    /// absent or expired.
    fn stored(
        &mut self,
        cache: &Target<CacheId>,
        key: &str,
    ) -> Result<Option<(Json, Option<i64>)>, Self::Error>;

    /// Stores `entries` in `cache`, expiring at `expires_at` (never when `None`), within `quota`.
    fn set(
        &mut self,
        cache: &Target<CacheId>,
        entries: &[(String, Json)],
        expires_at: Option<i64>,
        quota: &Quota,
    ) -> Result<Outcome, Self::Error>;

    /// Removes `keys` from `cache`.
    fn delete(&mut self, cache: &Target<CacheId>, keys: &[String]) -> Result<Outcome, Self::Error>;

    /// Fails with [`cache_deleted`] when `cache` is gone: a write that changes nothing still
    /// reports it.
    fn check_cache(&mut self, cache: &Target<CacheId>) -> Result<(), Self::Error>;

    /// Reads the integer under `key` (0 when absent or expired), adds `by`, and stores the sum
    /// with the entry's expiry (none for a new one, as Redis's `INCR` keeps a key's TTL). A sum
    /// whose text is longer than `max_value_bytes` is refused, as `set` refuses such a value;
    /// only here is its length known (see [`incremented`]).
    fn increment(
        &mut self,
        cache: &Target<CacheId>,
        key: &str,
        by: i64,
        max_value_bytes: usize,
        quota: &Quota,
    ) -> Result<Outcome, Self::Error> {
        let (stored, expires_at) = self.stored(cache, key)?.unzip();
        let sum = incremented(key, stored.as_ref().map(Json::as_str), by, max_value_bytes)?;
        self.set(cache, &[(key.to_owned(), Json::trusted(sum.to_string()))], expires_at.flatten(), quota)?;
        Ok(Outcome::Integer(sum))
    }

    /// Compares what is stored under `key` with `expected` as a JSON value ([`swap_matches`])
    /// and on a match stores `value`, or removes the key when `value` is `None`. A value
    /// stored over one that has not expired keeps its expiry, as an increment does: an update
    /// (read, change, swap) of an entry with a TTL keeps the TTL. A mismatch writes nothing
    /// (but a cache that is gone is still an error: its entries went with it, so its key reads
    /// as absent).
    fn compare_and_swap(
        &mut self,
        cache: &Target<CacheId>,
        key: &str,
        expected: Option<&Json>,
        value: Option<&Json>,
        quota: &Quota,
    ) -> Result<Outcome, Self::Error> {
        let (stored, expires_at) = self.stored(cache, key)?.unzip();
        if !swap_matches(stored.as_ref(), expected) {
            self.check_cache(cache)?;
            return Ok(Outcome::Swapped(false));
        }
        match value {
            Some(value) => {
                self.set(cache, &[(key.to_owned(), value.clone())], expires_at.flatten(), quota)?
            }
            None => self.delete(cache, &[key.to_owned()])?,
        };
        Ok(Outcome::Swapped(true))
    }
}

/// The sum an increment of `by` stores under `key`, which holds `stored` (`None`: absent or
/// expired, counted as 0). [`Error::WrongType`] (holding the value) when `stored` is not a
/// JSON integer that fits an `i64`, or the sum does not fit one; [`Error::TooLarge`] when the
/// sum's text is longer than `max_value_bytes`.
pub(crate) fn incremented(
    key: &str,
    stored: Option<&str>,
    by: i64,
    max_value_bytes: usize,
) -> Result<i64, Error> {
    let sum = match stored {
        None => by,
        Some(text) => {
            let refuse = |reason: String| Error::WrongType { reason, value: Json::trusted(text) };
            // `-0` is a JSON integer, which serde_json reads only as a float (to keep its
            // sign): it counts as 0.
            let current: i64 = match text.trim() {
                "-0" => Ok(0),
                _ => serde_json::from_str(text),
            }
            .map_err(|_| {
                refuse(format!(
                    "increment needs an integer that fits 64 bits, and {key:?} holds {}",
                    shortened(text, 40)
                ))
            })?;
            current.checked_add(by).ok_or_else(|| {
                refuse(format!("{current} + {by} under {key:?} does not fit a 64-bit integer"))
            })?
        }
    };
    let size = sum.to_string().len();
    if size > max_value_bytes {
        return Err(Error::TooLarge { what: "value", size, unit: "bytes", limit: max_value_bytes });
    }
    Ok(sum)
}

/// Whether a compare-and-swap expecting `expected` (`None`: no entry) goes through on a key
/// holding `stored`: both absent, or the same JSON value ([`Json::same_value`]).
pub(crate) fn swap_matches(stored: Option<&Json>, expected: Option<&Json>) -> bool {
    match (stored, expected) {
        (None, None) => true,
        (Some(stored), Some(expected)) => stored.same_value(expected),
        _ => false,
    }
}

/// Checks `quota` for a write that takes `name` from `before` to `after`. A quota shared by a
/// prefix is checked against what everything so named holds after the write, which
/// `usage_by_prefix` reads (asked only then).
pub(crate) fn check_quota<E: From<Error>>(
    quota: &Quota,
    name: &str,
    before: Stats,
    after: Stats,
    usage_by_prefix: impl FnOnce(&str) -> Result<Stats, E>,
) -> Result<(), E> {
    if quota.is_unlimited() {
        return Ok(());
    }
    let Some(prefix) = &quota.shared_by_prefix else {
        return Ok(quota.check(
            &format!("{name:?}"),
            (before.entries, before.bytes),
            (after.entries, after.bytes),
        )?);
    };
    let group = usage_by_prefix(prefix)?;
    let group_before = (
        (group.entries + before.entries).saturating_sub(after.entries),
        (group.bytes + before.bytes).saturating_sub(after.bytes),
    );
    Ok(quota.check(&format!("everything named {prefix}*"), group_before, (group.entries, group.bytes))?)
}

/// The error of a write to a cache deleted since its handle was opened.
pub(crate) fn cache_deleted(cache: &Target<CacheId>) -> Error {
    Error::CacheDeleted(cache.name.to_string())
}

/// The error of a write to a queue deleted since its handle was opened.
pub(crate) fn queue_deleted(queue: &Target<QueueId>) -> Error {
    Error::QueueDeleted(queue.name.to_string())
}
