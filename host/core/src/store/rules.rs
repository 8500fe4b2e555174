//! What a write decides from what it read, the same whatever the backend stores in: the sum of
//! an increment, whether a compare-and-swap matches, whether a quota holds. Each backend's
//! `writes` reads and writes its own way and asks these, so that the backends cannot drift
//! apart on what a write means.

use crate::error::shortened;
use crate::store::{CacheId, QueueId, Stats, Target};
use crate::{Error, Json, Quota};

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
