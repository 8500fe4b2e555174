//! Size limits and quotas, with their documented defaults.

use std::sync::Arc;

use crate::{Error, Result};

/// Default for [`Limits::max_key_bytes`]: 4 KiB, room for any URL used as a key.
pub const DEFAULT_MAX_KEY_BYTES: usize = 4 * 1024;
/// Default for [`Limits::max_value_bytes`]: 1 MiB of JSON text.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Default for [`Limits::max_batch_items`]: 1,000 keys, entries or items in one call.
pub const DEFAULT_MAX_BATCH_ITEMS: usize = 1000;
/// The most entries one page of a scan holds, whatever limit is asked for.
pub const MAX_PAGE_ITEMS: usize = 1000;
/// A page of a scan stops early once its values add up to this many bytes (4 MiB), so a scan
/// never holds much of a large cache in memory at once. A page always holds at least one entry.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The most bytes of values one [`Cache::get_many`](crate::Cache::get_many) returns (16 MiB):
/// asking for more is [`Error::TooLarge`], so one call never makes the process copy more than
/// this, however large the values or however often a key is repeated.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Size limits checked before anything is stored. Going over one is [`Error::TooLarge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest key, in bytes of UTF-8. Default [`DEFAULT_MAX_KEY_BYTES`]. Every call
    /// that names a key checks it, reads and deletes too: a database opened with a lower
    /// limit than it was written with reaches its longer keys only by iterating and clearing.
    pub max_key_bytes: usize,
    /// The longest value, in bytes of JSON text. Default [`DEFAULT_MAX_VALUE_BYTES`].
    pub max_value_bytes: usize,
    /// The most keys, entries or items given to one batch call (`get_many`, `set_many`,
    /// `delete_many`, `put_many`). Default [`DEFAULT_MAX_BATCH_ITEMS`]. A queue's `get_many`
    /// is bounded apart: at most [`MAX_PAGE_ITEMS`] items and about [`MAX_PAGE_BYTES`].
    pub max_batch_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_batch_items: DEFAULT_MAX_BATCH_ITEMS,
        }
    }
}

impl Limits {
    pub(crate) fn check_key(&self, key: &str) -> Result<()> {
        check("key", key.len(), "bytes", self.max_key_bytes)
    }

    pub(crate) fn check_value(&self, value: &str) -> Result<()> {
        check("value", value.len(), "bytes", self.max_value_bytes)
    }

    pub(crate) fn check_batch(&self, items: usize) -> Result<()> {
        check("batch", items, "items", self.max_batch_items)
    }
}

fn check(what: &'static str, size: usize, unit: &'static str, limit: usize) -> Result<()> {
    if size > limit {
        return Err(Error::TooLarge { what, size, unit, limit });
    }
    Ok(())
}

/// How much a cache or queue may hold, on its own or together with others. `None` means no
/// bound.
///
/// A quota travels with a handle: the wasm host gives each plugin's handles the quota of its
/// grant, so two plugins can share a cache under different quotas. A write that would go over
/// is refused with [`Error::QuotaExceeded`] and stores nothing; writes that do not grow the
/// usage always pass, so a cache over its quota can always be shrunk.
///
/// With [`Quota::shared_by_prefix`] the quota bounds every cache (or queue) whose name starts
/// with the prefix, all together, and creating one more counts its name's bytes: this is how a
/// grant such as `cache:tenant.*` caps everything a plugin may keep under it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quota {
    /// The most entries (items, for a queue).
    pub max_entries: Option<u64>,
    /// The most bytes of keys and values (of items, for a queue).
    pub max_bytes: Option<u64>,
    /// When set, the quota is shared by every cache or queue whose name starts with this.
    pub shared_by_prefix: Option<Arc<str>>,
}

impl Quota {
    /// No bound at all.
    pub const UNLIMITED: Quota = Quota { max_entries: None, max_bytes: None, shared_by_prefix: None };

    /// Whether this quota bounds anything.
    pub fn is_unlimited(&self) -> bool {
        self.max_entries.is_none() && self.max_bytes.is_none()
    }

    /// Checks a write that takes `what` from `old` to `new` (entries, bytes). A dimension that
    /// does not grow always passes.
    pub(crate) fn check(&self, what: &str, old: (u64, u64), new: (u64, u64)) -> Result<()> {
        if let Some(max) = self.max_entries
            && new.0 > max
            && new.0 > old.0
        {
            return Err(Error::QuotaExceeded(format!(
                "{what} would hold {} entries; the quota is {max}",
                new.0
            )));
        }
        if let Some(max) = self.max_bytes
            && new.1 > max
            && new.1 > old.1
        {
            return Err(Error::QuotaExceeded(format!(
                "{what} would hold {} bytes; the quota is {max}",
                new.1
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_what_is_over_and_accept_what_is_at() {
        let limits = Limits { max_key_bytes: 3, max_value_bytes: 5, max_batch_items: 2 };
        limits.check_key("abc").unwrap();
        assert!(matches!(limits.check_key("abcd"), Err(Error::TooLarge { what: "key", size: 4, .. })));
        limits.check_value("12345").unwrap();
        assert!(matches!(limits.check_value("123456"), Err(Error::TooLarge { what: "value", .. })));
        limits.check_batch(2).unwrap();
        assert!(matches!(limits.check_batch(3), Err(Error::TooLarge { what: "batch", .. })));
        let none = Limits { max_batch_items: 0, ..limits };
        let one = none.check_batch(1).unwrap_err().to_string();
        assert_eq!(one, "batch is 1 item, over the limit of 0");
        assert_eq!(limits.check_batch(3).unwrap_err().to_string(), "batch is 3 items, over the limit of 2");
    }

    #[test]
    fn quota_refuses_growth_past_it_but_lets_a_full_cache_shrink() {
        let quota = Quota { max_entries: Some(2), max_bytes: Some(100), shared_by_prefix: None };
        quota.check("c", (1, 10), (2, 20)).unwrap();
        assert!(matches!(quota.check("c", (2, 20), (3, 30)), Err(Error::QuotaExceeded(_))));
        assert!(matches!(quota.check("c", (2, 20), (2, 101)), Err(Error::QuotaExceeded(_))));
        // Already over (the quota was lowered): shrinking and same-size writes still pass.
        quota.check("c", (5, 500), (4, 400)).unwrap();
        Quota::UNLIMITED.check("c", (0, 0), (u64::MAX, u64::MAX)).unwrap();
    }
}
