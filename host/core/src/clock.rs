//! The one clock that expiry is measured by: wall-clock time, in milliseconds since the unix
//! epoch.
//!
//! Expiry is stored as an absolute time (`entries.expires_at`), not as a duration, so that
//! every process sharing a database agrees when an entry is gone without telling one another:
//! each compares the stored time with this clock. Processes on one machine read one clock;
//! processes on machines whose clocks disagree would disagree on expiry by as much, which is
//! why a database is shared only by processes of one machine anyway. A wall clock stepped
//! backwards makes entries live that long longer; stepped forward, expire that much sooner.
//!
//! A manager reads that clock through a [`Clock`]: the system's, or, for tests, a
//! [`ManualClock`] that moves only when told to.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// The longest TTL taken: 100 years (of 365.25 days). Anything longer is refused with
/// [`Error::InvalidArgument`] rather than stored as a time that means nothing; an entry meant
/// to live for ever is stored with no TTL at all.
pub const MAX_TTL: Duration = Duration::from_millis(MAX_TTL_MS);

/// [`MAX_TTL`] in milliseconds.
pub(crate) const MAX_TTL_MS: u64 = 36_525 * 24 * 60 * 60 * 1000;

/// The clock a manager and its store tell expiry and leases by: the system's wall clock (the
/// default), or a [`ManualClock`]. Set with
/// [`CacheManagerBuilder::clock`](crate::CacheManagerBuilder::clock).
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<ManualClock>);

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// Now, as this clock tells it.
    pub fn now(&self) -> SystemTime {
        crate::lease::unix_ms(self.now_ms())
    }

    /// The manual clock this is, if it is one.
    pub fn manual(&self) -> Option<&ManualClock> {
        self.0.as_ref()
    }

    /// Now, in milliseconds since the unix epoch (0 for a clock set before it).
    pub(crate) fn now_ms(&self) -> i64 {
        match &self.0 {
            None => unix_ms_of(SystemTime::now()),
            Some(manual) => manual.0.load(Ordering::Acquire),
        }
    }

    /// Whether an entry with expiry `expires_at` is gone by now; the clock is read only for an
    /// entry that has an expiry, so the common one costs none.
    pub(crate) fn expired(&self, expires_at: Option<i64>) -> bool {
        expires_at.is_some_and(|at| at <= self.now_ms())
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Clock {
        Clock(Some(manual))
    }
}

impl From<&ManualClock> for Clock {
    fn from(manual: &ManualClock) -> Clock {
        Clock(Some(manual.clone()))
    }
}

/// A clock that stands still until it is moved, for tests of what time does: entries that
/// expire, leases that end. Give it to a manager with
/// [`CacheManagerBuilder::clock`](crate::CacheManagerBuilder::clock) and keep a clone to move
/// it; every clone moves together.
///
/// It governs what the manager and its store tell by the clock (TTLs set and expired,
/// `Cache::ttl`, leases handed out and ended) and, through `easycaching-host`, the wall clock
/// of the plugins it runs; not the time other processes sharing the database go by: a manual
/// clock is for a database of its own, as a test's is.
///
/// ```
/// use std::time::Duration;
/// use easycaching::{CacheManager, ManualClock};
///
/// # let dir = tempfile::tempdir()?;
/// let clock = ManualClock::new();
/// let manager = CacheManager::builder(dir.path().join("test.db")).clock(&clock).open()?;
/// let sessions = manager.create_cache("sessions")?;
/// sessions.set_with_ttl("ada", easycaching::Json::from_value(&1)?, Duration::from_secs(3600))?;
///
/// clock.advance(Duration::from_secs(3599));
/// assert_eq!(sessions.ttl("ada")?, Some(Duration::from_secs(1)));
/// clock.advance(Duration::from_secs(1));
/// assert!(!sessions.contains("ada")?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at the system's time now, to the millisecond.
    pub fn new() -> ManualClock {
        ManualClock::at(SystemTime::now())
    }

    /// A clock stopped at `time`, to the millisecond (the unix epoch for a time before it).
    pub fn at(time: SystemTime) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(unix_ms_of(time))))
    }

    /// Moves the clock forward by `by`, to the millisecond (rounded down).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        // Never fails: the closure always answers.
        let _ = self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| Some(now.saturating_add(ms)));
    }

    /// Sets the clock to `time`, to the millisecond, forward or back.
    pub fn set(&self, time: SystemTime) {
        self.0.store(unix_ms_of(time), Ordering::Release);
    }

    /// The time the clock shows.
    pub fn now(&self) -> SystemTime {
        crate::lease::unix_ms(self.0.load(Ordering::Acquire))
    }
}

impl Default for ManualClock {
    fn default() -> ManualClock {
        ManualClock::new()
    }
}

/// `time` in milliseconds since the unix epoch (0 for a time before it).
fn unix_ms_of(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
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

    #[test]
    fn a_manual_clock_moves_only_when_told_and_every_clone_with_it() {
        let start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let manual = ManualClock::at(start + Duration::from_micros(900));
        let clock = Clock::from(&manual);
        assert_eq!(clock.now(), start, "kept to the millisecond, rounded down");
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(clock.now_ms(), 1_700_000_000_123, "it stands still");
        manual.clone().advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), start + Duration::from_millis(1500));
        assert!(clock.expired(Some(1_700_000_001_623)) && !clock.expired(Some(1_700_000_001_624)));
        manual.set(start);
        assert_eq!(manual.now(), start, "set moves it back too");
        manual.advance(Duration::MAX);
        assert_eq!(clock.now_ms(), i64::MAX, "saturates rather than wraps");
        assert_eq!(ManualClock::at(UNIX_EPOCH - Duration::from_secs(1)).now(), UNIX_EPOCH);
        let system = Clock::system().now_ms();
        assert!((system - unix_ms_of(SystemTime::now())).abs() < 60_000, "the system clock is the system's");
    }
}
