//! The one clock that expiry is measured by: wall-clock time, in milliseconds since the unix
//! epoch.
//!
//! Expiry is stored as an absolute time (`entries.expires_at`), not as a duration, so that
//! every process sharing a database agrees when an entry is gone without telling one another:
//! each compares the stored time with this clock. Processes on one machine read one clock;
//! processes on machines whose clocks disagree would disagree on expiry by as much, which is
//! why a database is shared only by processes of one machine anyway. A wall clock stepped
//! backwards makes entries live that long longer; stepped forward, expire that much sooner.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// The longest TTL taken: 100 years (of 365.25 days). Anything longer is refused with
/// [`Error::InvalidArgument`] rather than stored as a time that means nothing; an entry meant
/// to live for ever is stored with no TTL at all.
pub const MAX_TTL: Duration = Duration::from_millis(MAX_TTL_MS);

/// [`MAX_TTL`] in milliseconds.
pub(crate) const MAX_TTL_MS: u64 = 36_525 * 24 * 60 * 60 * 1000;

/// Now, in milliseconds since the unix epoch (0 for a clock set before it).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}

/// The TTL in whole milliseconds, rounded up (so that no TTL above zero becomes zero), checked
/// to be at least 1 ms and at most [`MAX_TTL`].
pub(crate) fn ttl_ms(ttl: Duration) -> Result<u64> {
    bounded_ms(ttl, "TTL", "; store the value without a TTL to keep it until it is deleted")
}

/// `duration` in whole milliseconds, rounded up, checked to be at least 1 ms and at most
/// [`MAX_TTL`], as a TTL is: `what` names it in the error ("TTL", "lease"), and `instead` ends
/// the error of one too long (what to do instead, or nothing).
pub(crate) fn bounded_ms(duration: Duration, what: &str, instead: &str) -> Result<u64> {
    let ms = u64::try_from(duration.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    if ms == 0 {
        return Err(Error::InvalidArgument(format!("a {what} of 0 ms: a {what} is at least 1 ms")));
    }
    if ms > MAX_TTL_MS {
        return Err(Error::InvalidArgument(format!(
            "a {what} of {ms} ms is longer than the longest taken, {MAX_TTL_MS} ms (100 years){instead}"
        )));
    }
    Ok(ms)
}

/// The time, in unix milliseconds, at which an entry given `ttl_ms` (checked) from `now`
/// expires.
pub(crate) fn expiry(now: i64, ttl_ms: u64) -> i64 {
    now.saturating_add(ttl_ms as i64)
}

/// How long is left until `expires_at`, as of `now`; `None` once it has passed.
pub(crate) fn remaining(expires_at: i64, now: i64) -> Option<Duration> {
    (expires_at > now).then(|| Duration::from_millis((expires_at - now) as u64))
}

/// Whether an entry with expiry `expires_at` is gone as of `now`.
pub(crate) fn expired(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_some_and(|at| at <= now)
}

/// Whether an entry with expiry `expires_at` is gone by now; the clock is read only for an
/// entry that has an expiry, so the common one costs none.
pub(crate) fn expired_now(expires_at: Option<i64>) -> bool {
    expires_at.is_some_and(|at| at <= now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_rounded_up_to_whole_milliseconds_and_bounded() {
        assert_eq!(ttl_ms(Duration::from_micros(1)).ok(), Some(1));
        assert_eq!(ttl_ms(Duration::from_millis(1500)).ok(), Some(1500));
        assert!(matches!(ttl_ms(Duration::ZERO), Err(Error::InvalidArgument(_))));
        assert!(matches!(ttl_ms(MAX_TTL + Duration::from_millis(1)), Err(Error::InvalidArgument(_))));
        assert!(matches!(ttl_ms(Duration::MAX), Err(Error::InvalidArgument(_))));
        assert_eq!(ttl_ms(MAX_TTL).ok(), Some(MAX_TTL_MS));
        assert!(expired(Some(10), 10) && !expired(Some(11), 10) && !expired(None, i64::MAX));
        assert_eq!(remaining(15, 10), Some(Duration::from_millis(5)));
        assert_eq!(remaining(10, 10), None);
    }
}
