//! Leases on queue items, for delivery at least once: [`Leased`] and its [`Receipt`].
//!
//! [`Queue::lease`](crate::Queue::lease) hands out the oldest item waiting without removing it:
//! the item stays in the queue, hidden from every other taker, until its holder acknowledges
//! it ([`Queue::ack`](crate::Queue::ack): done, removed) or releases it
//! ([`Queue::release`](crate::Queue::release): handed out again at once), or until the lease
//! ends, when it is handed out again, in its place at the front. A process killed while it
//! holds a lease loses nothing.
//!
//! A receipt names one lease of one item, never another: each lease draws a random 64-bit
//! token that the item keeps until its next lease, release or removal, so a holder whose lease
//! ended can no longer acknowledge or release what another holder now works on, even should
//! the store give a later item the same position.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Json, Result};

/// An item handed out by [`Queue::lease`](crate::Queue::lease): its value, the receipt that
/// acknowledges or releases it, and how often it was handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    /// The item.
    pub value: Json,
    /// What [`Queue::ack`](crate::Queue::ack) and [`Queue::release`](crate::Queue::release)
    /// take.
    pub receipt: Receipt,
    /// How many times the item has been handed out under a lease, this time included: 1 the
    /// first time, more when earlier leases ended or were released without an
    /// acknowledgement. An item that keeps coming back can be put aside rather than tried for
    /// ever.
    pub deliveries: u64,
    /// When the lease ends (by this machine's clock, as every process sharing the database
    /// reads it): from then on the item is handed out again, unless acknowledged first.
    pub lease_ends: SystemTime,
}

/// One lease of one queue item.
///
/// It can be kept as text and read back ([`Display`](fmt::Display) and [`FromStr`]), for a
/// holder that acknowledges from elsewhere (another process, a later request):
///
/// ```
/// use easycaching::{CacheManager, Receipt};
/// use std::time::Duration;
///
/// # let dir = tempfile::tempdir()?;
/// let manager = CacheManager::open(dir.path().join("app.db"))?;
/// let jobs = manager.create_queue("jobs")?;
/// jobs.put_value("resize")?;
/// let leased = jobs.lease(Duration::from_secs(60))?.expect("an item");
/// assert_eq!(leased.deliveries, 1, "handed out for the first time");
/// let text = leased.receipt.to_string();
///
/// let receipt: Receipt = text.parse()?;
/// assert!(jobs.ack(&receipt)?, "done: the item is gone");
/// assert_eq!(jobs.len()?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt {
    /// The item's position in its queue (the store's own number for it).
    pub(crate) item: i64,
    /// The lease's random token, as the store keeps it (a `u64`'s bits).
    pub(crate) token: i64,
}

/// A fresh random token for a new lease.
pub(crate) fn new_token() -> i64 {
    fastrand::i64(..)
}

/// The text form: `item.token`, the item's position in decimal and the token in 16 hex digits.
impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:016x}", self.item, self.token as u64)
    }
}

impl FromStr for Receipt {
    type Err = Error;

    /// Reads a receipt's text form, exactly as [`Display`](fmt::Display) writes it;
    /// [`Error::InvalidArgument`] for any other text.
    fn from_str(text: &str) -> Result<Receipt> {
        let parsed = text
            .split_once('.')
            .and_then(|(item, token)| {
                Some(Receipt { item: item.parse().ok()?, token: u64::from_str_radix(token, 16).ok()? as i64 })
            })
            // Only the one spelling: no sign, no padding, lowercase hex.
            .filter(|receipt| receipt.to_string() == text);
        parsed.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{:?} is not a receipt of a leased queue item (one reads like \"12.9e3779b97f4a7c15\")",
                crate::error::shortened(text, 64)
            ))
        })
    }
}

/// A lease's length in whole milliseconds, rounded up, checked as a TTL is: at least 1 ms and
/// at most 100 years ([`MAX_TTL`](crate::MAX_TTL)).
pub(crate) fn lease_ms(lease: Duration) -> Result<u64> {
    crate::clock::bounded_ms(lease, "lease", "")
}

/// The time `ms` milliseconds after the unix epoch (the epoch for a time before it).
pub(crate) fn unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_reads_back_from_its_text_and_nothing_else_reads_as_one() {
        let receipt = Receipt { item: -3, token: -2 };
        assert_eq!(receipt.to_string(), "-3.fffffffffffffffe");
        assert_eq!(receipt.to_string().parse::<Receipt>().ok(), Some(receipt));
        let drawn = Receipt { item: 12, token: new_token() };
        assert_eq!(drawn.to_string().parse::<Receipt>().ok(), Some(drawn));
        assert_ne!(drawn.token, new_token(), "each lease draws its own token");
        for text in [
            "",
            "1",
            "1.",
            ".0000000000000001",
            "a.0000000000000001",
            "1.1",
            "1.00000000000000001",
            "1.000000000000000g",
            "1.2.0000000000000001",
            " 1.0000000000000001",
            "1.+000000000000001",
            "+1.0000000000000001",
            "01.0000000000000001",
            "1.000000000000000A",
        ] {
            assert!(matches!(text.parse::<Receipt>(), Err(Error::InvalidArgument(_))), "{text:?}");
        }
    }

    #[test]
    fn leases_are_rounded_up_to_whole_milliseconds_and_bounded() {
        assert_eq!(lease_ms(Duration::from_micros(1)).ok(), Some(1));
        assert_eq!(lease_ms(Duration::from_secs(30)).ok(), Some(30_000));
        assert!(matches!(lease_ms(Duration::ZERO), Err(Error::InvalidArgument(_))));
        assert!(matches!(lease_ms(Duration::MAX), Err(Error::InvalidArgument(_))));
        let longest = crate::MAX_TTL;
        assert_eq!(lease_ms(longest).ok(), Some(longest.as_millis() as u64));
        let refused = lease_ms(longest + Duration::from_millis(1)).map_err(|error| error.to_string());
        assert!(refused.as_ref().is_err_and(|error| error.contains("a lease of")), "{refused:?}");
        assert_eq!(unix_ms(1500), UNIX_EPOCH + Duration::from_millis(1500));
    }
}
