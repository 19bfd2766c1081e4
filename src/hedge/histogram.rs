//! A lock-free latency histogram for the hedge delay.
//!
//! Written by hand rather than taken from tower's `hedge` (an
//! `hdrhistogram` behind a mutex, locked on every call): here a sample is
//! two atomic additions into fixed log-linear buckets (8 per power of two,
//! so a percentile is within 12.5 %), the percentile is recomputed every
//! 128 samples, and the counts are halved when they grow large, so recent
//! calls weigh the most. No allocation after construction.

use std::sync::atomic::{AtomicU64, Ordering::*};
use std::time::Duration;

const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = 512;
const RECOMPUTE_EVERY: u64 = 128;
const HALVE_AT: u64 = 1 << 14;

fn index(nanos: u64) -> usize {
    if nanos < SUB {
        return nanos as usize;
    }
    let exponent = 63 - nanos.leading_zeros();
    let sub = (nanos >> (exponent - SUB_BITS)) & (SUB - 1);
    ((exponent - SUB_BITS + 1) as u64 * SUB + sub) as usize
}

/// The largest value that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let exponent = i / SUB + u64::from(SUB_BITS) - 1;
    let sub = i % SUB;
    ((SUB + sub + 1) << (exponent - u64::from(SUB_BITS))).saturating_sub(1)
}

#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    total: AtomicU64,
    /// The percentile's value in nanoseconds; 0 while unknown.
    threshold: AtomicU64,
    percentile: f64,
    minimum_samples: u64,
}

impl Histogram {
    pub(crate) fn new(percentile: f64, minimum_samples: u64) -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
            threshold: AtomicU64::new(0),
            percentile,
            minimum_samples,
        }
    }

    #[inline]
    pub(crate) fn record(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[index(nanos)].fetch_add(1, Relaxed);
        let n = self.total.fetch_add(1, Relaxed) + 1;
        if n % RECOMPUTE_EVERY == 0 {
            if n >= HALVE_AT {
                self.halve();
            }
            self.recompute();
        }
    }

    /// The percentile of recent latencies, once enough were seen.
    #[inline]
    pub(crate) fn threshold(&self) -> Option<Duration> {
        match self.threshold.load(Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    fn halve(&self) {
        // Samples recorded meanwhile may be halved or not: the estimate is
        // statistical, and stays valid either way.
        let mut sum = 0;
        for bucket in self.buckets.iter() {
            let before = bucket
                .fetch_update(Relaxed, Relaxed, |c| Some(c / 2))
                .unwrap_or(0);
            sum += before / 2;
        }
        self.total.store(sum, Relaxed);
    }

    fn recompute(&self) {
        let counts: u64 = self.buckets.iter().map(|b| b.load(Relaxed)).sum();
        if counts < self.minimum_samples {
            return;
        }
        let target = ((counts as f64) * self.percentile).ceil() as u64;
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Relaxed);
            if seen >= target {
                self.threshold.store(upper(i).max(1), Relaxed);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_within_an_eighth() {
        for v in [
            0u64,
            1,
            7,
            8,
            9,
            15,
            16,
            17,
            100,
            1_000,
            1_000_000,
            123_456_789,
            u64::MAX / 2,
        ] {
            let i = index(v);
            assert!(i < BUCKETS);
            assert!(upper(i) >= v, "{v}: bucket {i} ends at {}", upper(i));
            if v >= SUB {
                assert!((upper(i) - v) as f64 <= v as f64 / 8.0, "{v}: {}", upper(i));
            }
            if i > 0 {
                assert!(upper(i - 1) < v, "{v} also fits bucket {}", i - 1);
            }
        }
    }

    #[test]
    fn the_percentile_follows_the_samples() {
        let h = Histogram::new(0.95, 100);
        for i in 0..1_000u64 {
            let ms = if i % 100 < 95 { 1 } else { 50 };
            h.record(Duration::from_millis(ms));
        }
        let p95 = h.threshold().unwrap();
        assert!(
            p95 >= Duration::from_millis(1) && p95 <= Duration::from_micros(1_125),
            "{p95:?}"
        );
    }
}
