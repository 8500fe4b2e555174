//! Counting requests and how long they took, cheaply enough to do on every request from every
//! worker at once: a few relaxed atomic additions, no lock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The requests a server answered and how long they took. Latency is from the request's head
/// being read to the response's head being ready; percentiles are within about 6%.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSummary {
    /// Requests the plugin was asked to answer (the host's own endpoint is not counted).
    pub requests: u64,
    /// Of those, how many were answered with a 4xx status.
    pub client_errors: u64,
    /// Of those, how many were answered with a 5xx status, by the plugin or by the host when
    /// the plugin failed or the request ran out of time, or were cut off (see `cut_off`).
    pub server_errors: u64,
    /// Of those, how many had their response cut off halfway: the connection dropped while the
    /// response was being sent, at the request's time limit, or because the plugin failed
    /// before it finished the body. Counted in `server_errors` too.
    pub cut_off: u64,
    /// Half the requests took at most this long.
    pub p50: Duration,
    /// 90% of the requests took at most this long.
    pub p90: Duration,
    /// 99% of the requests took at most this long.
    pub p99: Duration,
    /// The slowest request.
    pub max: Duration,
}

impl MetricsSummary {
    /// The summary as the JSON document the metrics endpoint serves; durations in microseconds.
    pub fn to_json(&self) -> serde_json::Value {
        let micros = |duration: Duration| duration.as_micros() as u64;
        serde_json::json!({
            "requests": self.requests,
            "client_errors": self.client_errors,
            "server_errors": self.server_errors,
            "cut_off": self.cut_off,
            "latency_us": {
                "p50": micros(self.p50),
                "p90": micros(self.p90),
                "p99": micros(self.p99),
                "max": micros(self.max),
            },
        })
    }
}

impl fmt::Display for MetricsSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = if self.requests == 1 { "request" } else { "requests" };
        write!(
            f,
            "{} {noun} ({} answered 4xx, {} answered 5xx); latency p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
            self.requests, self.client_errors, self.server_errors, self.p50, self.p90, self.p99, self.max
        )
    }
}

/// The live counters of a server.
#[derive(Default)]
pub(crate) struct Metrics {
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    cut_off: AtomicU64,
    latency: Histogram,
}

impl Metrics {
    /// Counts one answered request.
    pub(crate) fn record(&self, status: u16, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match status {
            400..=499 => self.client_errors.fetch_add(1, Ordering::Relaxed),
            500..=599 => self.server_errors.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        self.latency.record(took.as_micros().try_into().unwrap_or(u64::MAX));
    }

    /// Counts a request already recorded whose response was then cut off: a server error, if
    /// its status (`server_error`: a 5xx) did not count it as one already.
    pub(crate) fn record_cut_off(&self, server_error: bool) {
        self.cut_off.fetch_add(1, Ordering::Relaxed);
        if !server_error {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts so far.
    pub(crate) fn summary(&self) -> MetricsSummary {
        let micros = Duration::from_micros;
        MetricsSummary {
            requests: self.requests.load(Ordering::Relaxed),
            client_errors: self.client_errors.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
            cut_off: self.cut_off.load(Ordering::Relaxed),
            p50: micros(self.latency.percentile(0.50)),
            p90: micros(self.latency.percentile(0.90)),
            p99: micros(self.latency.percentile(0.99)),
            max: micros(self.latency.max.load(Ordering::Relaxed)),
        }
    }
}

/// Bits of a value kept below its leading one: 16 buckets per power of two, so a bucket is at
/// most 1/16 of its values wide.
const SUB_BUCKET_BITS: u32 = 4;
const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
/// Enough buckets for every `u64`.
const BUCKETS: usize = (u64::BITS - SUB_BUCKET_BITS + 1) as usize * SUB_BUCKETS;

/// A log-linear histogram of microseconds: exact below 16, within 1/16 above.
struct Histogram {
    counts: Box<[AtomicU64]>,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(), max: AtomicU64::new(0) }
    }
}

impl Histogram {
    fn record(&self, value: u64) {
        self.counts[bucket(value)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// The smallest value that `quantile` of the recorded values are at most (rounded up to the
    /// top of its bucket, and never above the largest value recorded); 0 when there are none.
    fn percentile(&self, quantile: f64) -> u64 {
        let counts: Vec<u64> = self.counts.iter().map(|count| count.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((quantile * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return highest(index).min(self.max.load(Ordering::Relaxed));
            }
        }
        self.max.load(Ordering::Relaxed)
    }
}

fn bucket(value: u64) -> usize {
    if value < SUB_BUCKETS as u64 {
        return value as usize;
    }
    let shift = u64::BITS - 1 - value.leading_zeros() - SUB_BUCKET_BITS;
    // `value >> shift` keeps the leading one and the sub-bucket bits: 16..=31.
    (shift as usize + 1) * SUB_BUCKETS + (value >> shift) as usize - SUB_BUCKETS
}

/// The smallest value in `bucket`.
fn lowest(bucket: usize) -> u64 {
    if bucket < SUB_BUCKETS {
        return bucket as u64;
    }
    let shift = bucket / SUB_BUCKETS - 1;
    ((SUB_BUCKETS + bucket % SUB_BUCKETS) as u64) << shift
}

/// The largest value in `bucket`.
fn highest(bucket: usize) -> u64 {
    if bucket + 1 == BUCKETS { u64::MAX } else { lowest(bucket + 1) - 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_a_bucket_that_holds_it() {
        for value in (0..5000).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let index = bucket(value);
            assert!(index < BUCKETS, "{value} -> {index}");
            assert!(lowest(index) <= value && value <= highest(index), "{value} -> {index}");
            let width = highest(index) - lowest(index) + 1;
            assert!(width == 1 || width <= value / 16 + 1, "{value}: bucket {index} is {width} wide");
        }
    }

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let metrics = Metrics::default();
        for micros in 1..=1000 {
            metrics.record(200, Duration::from_micros(micros));
        }
        metrics.record(500, Duration::from_millis(50));
        metrics.record(404, Duration::from_micros(3));
        let summary = metrics.summary();
        assert_eq!((summary.requests, summary.client_errors, summary.server_errors), (1002, 1, 1));
        let within = |got: Duration, want: u64| {
            let got = got.as_micros() as u64;
            assert!(got >= want && got <= want + want / 16 + 1, "{got}µs, want about {want}µs");
        };
        within(summary.p50, 500);
        within(summary.p90, 900);
        within(summary.p99, 990);
        assert_eq!(summary.max, Duration::from_millis(50));
        assert_eq!(Metrics::default().summary(), MetricsSummary::default());
    }
}
