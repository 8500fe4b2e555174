//! Leases on queue items, for delivery at least once: [`Leased`] and its [`Receipt`].
//!
//! [`Queue::lease`](crate::Queue::lease) hands out the oldest item waiting without removing it:
//! the item stays in the queue, hidden from every other taker, until its holder acknowledges
//! it ([`Queue::ack`](crate::Queue::ack): done, removed) or releases it
//! ([`Queue::release`](crate::Queue::release): handed out again at once), or until the lease
//! ends, when it is handed out again, in its place at the front. A process killed while it
//! holds a lease loses nothing.
//!
//! A receipt names one lease of one item, never another: an item handed out again carries a
//! new receipt, so a holder whose lease ended can no longer acknowledge or release what
//! another holder now works on.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::MAX_TTL_MS;
use crate::{Error, Json, Result};

/// An item handed out by [`Queue::lease`](crate::Queue::lease): its value, and the receipt
/// that acknowledges or releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    /// The item.
    pub value: Json,
    /// What [`Queue::ack`](crate::Queue::ack) and [`Queue::release`](crate::Queue::release)
    /// take.
    pub receipt: Receipt,
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
/// let text = leased.receipt.to_string();
/// assert_eq!(leased.receipt.deliveries(), 1, "handed out for the first time");
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
    /// How many times the item has been leased, this lease included.
    pub(crate) deliveries: i64,
    /// When the lease ends, in milliseconds since the unix epoch.
    pub(crate) ends_ms: i64,
}

impl Receipt {
    /// How many times the item has been handed out under a lease, this time included: 1 the
    /// first time, more when earlier leases ended or were released without an
    /// acknowledgement. An item that keeps coming back can be put aside rather than tried for
    /// ever.
    pub fn deliveries(&self) -> u64 {
        self.deliveries.max(0) as u64
    }

    /// When the lease ends (by this machine's clock, as every process sharing the database
    /// reads it): from then on the item is handed out again, unless acknowledged first.
    pub fn ends_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.ends_ms.max(0) as u64)
    }
}

/// The text form: `item.deliveries.ends`, three decimal numbers.
impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.item, self.deliveries, self.ends_ms)
    }
}

impl FromStr for Receipt {
    type Err = Error;

    /// Reads a receipt's text form; [`Error::InvalidArgument`] for any other text.
    fn from_str(text: &str) -> Result<Receipt> {
        let mut parts = text.split('.').map(str::parse::<i64>);
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(item)), Some(Ok(deliveries)), Some(Ok(ends_ms)), None) if deliveries > 0 => {
                Ok(Receipt { item, deliveries, ends_ms })
            }
            _ => Err(Error::InvalidArgument(format!(
                "{:?} is not a receipt of a leased queue item (one reads like \"12.1.1764412345678\")",
                crate::error::shortened(text, 64)
            ))),
        }
    }
}

/// A lease's length in whole milliseconds, rounded up, checked to be at least 1 ms and at most
/// 100 years ([`MAX_TTL`](crate::MAX_TTL), as for a TTL).
pub(crate) fn lease_ms(lease: Duration) -> Result<u64> {
    let ms = u64::try_from(lease.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    if ms == 0 {
        return Err(Error::InvalidArgument("a lease of 0 ms: a lease is at least 1 ms".into()));
    }
    if ms > MAX_TTL_MS {
        return Err(Error::InvalidArgument(format!(
            "a lease of {ms} ms is longer than the longest taken, {MAX_TTL_MS} ms (100 years)"
        )));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_reads_back_from_its_text_and_nothing_else_reads_as_one() {
        let receipt = Receipt { item: -3, deliveries: 2, ends_ms: 1_764_412_345_678 };
        assert_eq!(receipt.to_string(), "-3.2.1764412345678");
        assert_eq!(receipt.to_string().parse::<Receipt>().ok(), Some(receipt));
        for text in ["", "1", "1.2", "1.2.3.4", "a.1.2", "1.0.5", "1.-1.5", "1..5", " 1.1.5"] {
            assert!(matches!(text.parse::<Receipt>(), Err(Error::InvalidArgument(_))), "{text:?}");
        }
        assert_eq!(receipt.deliveries(), 2);
        assert_eq!(receipt.ends_at(), UNIX_EPOCH + Duration::from_millis(1_764_412_345_678));
    }

    #[test]
    fn leases_are_rounded_up_to_whole_milliseconds_and_bounded() {
        assert_eq!(lease_ms(Duration::from_micros(1)).ok(), Some(1));
        assert_eq!(lease_ms(Duration::from_secs(30)).ok(), Some(30_000));
        assert!(matches!(lease_ms(Duration::ZERO), Err(Error::InvalidArgument(_))));
        assert!(matches!(lease_ms(Duration::MAX), Err(Error::InvalidArgument(_))));
        assert_eq!(lease_ms(Duration::from_millis(MAX_TTL_MS)).ok(), Some(MAX_TTL_MS));
    }
}
