//! The sliding windows a breaker judges failure rates over.
//!
//! Both windows are lock-free, which is why they are written here rather than
//! taken from a crate: a call records its outcome with one or two atomic
//! read-modify-writes and never blocks another call.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering::*};
use std::time::Duration;

/// Totals over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

/// An outcome as recorded in a slot: `RECORDED`, plus `FAILURE` and/or `SLOW`.
const RECORDED: u8 = 1;
const FAILURE: u8 = 2;
const SLOW: u8 = 4;

pub(crate) fn outcome_bits(failure: bool, slow: bool) -> u8 {
    RECORDED | if failure { FAILURE } else { 0 } | if slow { SLOW } else { 0 }
}

#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
    /// No window: the breaker trips on failures in a row alone (outlier
    /// detection without a failure-rate rule), and a call records nothing.
    Off,
}

impl Window {
    /// `now` is nanoseconds since the breaker's base instant; only the time
    /// window reads it.
    #[inline]
    pub(crate) fn record(&self, bits: u8, now: u64) {
        match self {
            Window::Count(w) => w.record(bits),
            Window::Time(w) => w.record(bits, now),
            Window::Off => {}
        }
    }

    pub(crate) fn totals(&self, now: u64) -> Totals {
        match self {
            Window::Count(w) => w.totals(),
            Window::Time(w) => w.totals(now),
            Window::Off => Totals::default(),
        }
    }

    pub(crate) fn reset(&self) {
        match self {
            Window::Count(w) => w.reset(),
            Window::Time(w) => w.reset(),
            Window::Off => {}
        }
    }

    pub(crate) fn needs_clock(&self) -> bool {
        matches!(self, Window::Time(_))
    }

    /// Whether recording a success now would change nothing: no window, or
    /// a count window of successes only (see [`CountWindow::record`]). A
    /// time window counts every call.
    #[inline]
    pub(crate) fn settled_for_success(&self) -> bool {
        match self {
            Window::Count(w) => w.is_all_successes(),
            Window::Time(_) => false,
            Window::Off => true,
        }
    }
}

// The count window keeps its three totals in one word, 21 bits each, so that
// a changed slot updates them with a single `fetch_add`. A window holds at
// most `MAX_COUNT_WINDOW` calls, so no field can overflow into the next.
const FIELD_BITS: u32 = 21;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;
pub(crate) const MAX_COUNT_WINDOW: u64 = 1_000_000;

fn pack(bits: u8) -> u64 {
    if bits & RECORDED == 0 {
        return 0;
    }
    1 | (u64::from(bits & FAILURE != 0) << FIELD_BITS)
        | (u64::from(bits & SLOW != 0) << (2 * FIELD_BITS))
}

/// The last `N` recorded calls. Each new call overwrites the oldest slot, so
/// the window truly slides: an old outcome leaves when a new one enters.
#[derive(Debug)]
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    next: AtomicUsize,
    packed: AtomicU64,
}

impl CountWindow {
    pub(crate) fn new(size: usize) -> Self {
        CountWindow {
            slots: (0..size).map(|_| AtomicU8::new(0)).collect(),
            next: AtomicUsize::new(0),
            packed: AtomicU64::new(0),
        }
    }

    /// Whether every slot holds a success (full, no failure, no slow call).
    #[inline]
    fn is_all_successes(&self) -> bool {
        self.packed.load(Relaxed) == self.slots.len() as u64
    }

    #[inline]
    fn record(&self, bits: u8) {
        // A success entering a window of successes only: whichever slot it
        // took, the window would hold the same outcomes, and so the same
        // totals; and since every slot is alike, where the cursor stands
        // makes no difference to what a later outcome replaces. Nothing is
        // written, so the steady state of a healthy service (and of many
        // threads sharing one breaker) only reads this window.
        if bits == RECORDED && self.is_all_successes() {
            return;
        }
        // The cursor moves with a plain load and store, not a read-modify-
        // write: under contention two calls may pick the same slot, and the
        // window then keeps one of their two outcomes. The totals stay exact
        // for what the slots hold, because every change to a slot goes
        // through `swap` and adds exactly the difference it made; one call
        // at a time, every outcome is kept. This keeps the steady state (a
        // success replacing a success) free of atomic read-modify-writes.
        let slot = self.next.load(Relaxed);
        let slot = if slot >= self.slots.len() { 0 } else { slot };
        self.next.store(slot + 1, Relaxed);
        let cell = &self.slots[slot];
        if cell.load(Relaxed) == bits {
            return;
        }
        let old = cell.swap(bits, Relaxed);
        if old != bits {
            // Wrapping arithmetic over the packed word is exact: the sum of
            // all deltas is the packed sum of the slots' contents.
            self.packed
                .fetch_add(pack(bits).wrapping_sub(pack(old)), Relaxed);
        }
    }

    fn totals(&self) -> Totals {
        let packed = self.packed.load(Relaxed);
        let totals = Totals {
            calls: packed & FIELD_MASK,
            failures: (packed >> FIELD_BITS) & FIELD_MASK,
            slow: (packed >> (2 * FIELD_BITS)) & FIELD_MASK,
        };
        // Two calls racing for one slot can leave the word briefly out of
        // step with the slots (a removal applied before its addition); such a
        // reading is not judged, and the next one is exact again.
        if totals.failures <= totals.calls
            && totals.slow <= totals.calls
            && totals.calls <= self.slots.len() as u64
        {
            totals
        } else {
            Totals::default()
        }
    }

    fn reset(&self) {
        for slot in self.slots.iter() {
            slot.store(0, Relaxed);
        }
        self.next.store(0, Relaxed);
        self.packed.store(0, Relaxed);
    }
}

/// Calls of the last `size` of time, in `buckets` buckets of equal length.
///
/// A call adds to the bucket of its time; a bucket last written more than a
/// window ago is cleared by the first call that lands in it again. The work
/// per call is constant and no record is kept per call.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    bucket_nanos: u64,
    buckets: Box<[Bucket]>,
}

#[derive(Debug, Default)]
struct Bucket {
    // The number of the bucket-length period this bucket holds, plus one;
    // zero for a bucket never written.
    epoch: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

impl TimeWindow {
    pub(crate) fn new(size: Duration, buckets: usize) -> Self {
        let bucket_nanos = (size.as_nanos() / buckets as u128).max(1);
        TimeWindow {
            bucket_nanos: u64::try_from(bucket_nanos).unwrap_or(u64::MAX),
            buckets: (0..buckets).map(|_| Bucket::default()).collect(),
        }
    }

    fn epoch(&self, now: u64) -> u64 {
        now / self.bucket_nanos + 1
    }

    #[inline]
    fn record(&self, bits: u8, now: u64) {
        let epoch = self.epoch(now);
        let bucket = &self.buckets[(epoch % self.buckets.len() as u64) as usize];
        let seen = bucket.epoch.load(Acquire);
        if seen != epoch {
            if seen > epoch {
                // A call that finished in a period now past: too late to count.
                return;
            }
            if bucket
                .epoch
                .compare_exchange(seen, epoch, AcqRel, Acquire)
                .is_ok()
            {
                // A call of the new period that slips in between the exchange
                // and these stores is lost: a bucket is approximate at its
                // very start, and never drifts.
                bucket.calls.store(0, Relaxed);
                bucket.failures.store(0, Relaxed);
                bucket.slow.store(0, Relaxed);
            }
        }
        bucket.calls.fetch_add(1, Relaxed);
        if bits & FAILURE != 0 {
            bucket.failures.fetch_add(1, Relaxed);
        }
        if bits & SLOW != 0 {
            bucket.slow.fetch_add(1, Relaxed);
        }
    }

    fn totals(&self, now: u64) -> Totals {
        let epoch = self.epoch(now);
        let len = self.buckets.len() as u64;
        let mut totals = Totals::default();
        for bucket in self.buckets.iter() {
            let seen = bucket.epoch.load(Acquire);
            if seen != 0 && seen <= epoch && epoch - seen < len {
                totals.calls += bucket.calls.load(Relaxed);
                totals.failures += bucket.failures.load(Relaxed);
                totals.slow += bucket.slow.load(Relaxed);
            }
        }
        totals
    }

    fn reset(&self) {
        for bucket in self.buckets.iter() {
            bucket.epoch.store(0, Release);
            bucket.calls.store(0, Relaxed);
            bucket.failures.store(0, Relaxed);
            bucket.slow.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_totals(w: &CountWindow) -> (u64, u64, u64) {
        let t = w.totals();
        (t.calls, t.failures, t.slow)
    }

    #[test]
    fn count_window_slides_one_outcome_at_a_time() {
        let w = CountWindow::new(4);
        for _ in 0..4 {
            w.record(outcome_bits(false, false));
        }
        assert_eq!(count_totals(&w), (4, 0, 0));
        w.record(outcome_bits(true, false));
        assert_eq!(count_totals(&w), (4, 1, 0));
        w.record(outcome_bits(true, true));
        assert_eq!(count_totals(&w), (4, 2, 1));
        for _ in 0..4 {
            w.record(outcome_bits(false, false));
        }
        assert_eq!(count_totals(&w), (4, 0, 0));
        w.reset();
        assert_eq!(count_totals(&w), (0, 0, 0));
    }

    #[test]
    fn a_success_among_successes_writes_nothing_and_the_window_still_slides() {
        let w = CountWindow::new(4);
        for _ in 0..4 {
            w.record(outcome_bits(false, false));
        }
        let cursor = w.next.load(Relaxed);
        for _ in 0..7 {
            w.record(outcome_bits(false, false));
        }
        assert_eq!(w.next.load(Relaxed), cursor);
        // A failure still leaves after exactly four more outcomes.
        w.record(outcome_bits(true, false));
        for _ in 0..3 {
            w.record(outcome_bits(false, false));
            assert_eq!(count_totals(&w), (4, 1, 0));
        }
        w.record(outcome_bits(false, false));
        assert_eq!(count_totals(&w), (4, 0, 0));
        // A window not yet full fills up.
        let w = CountWindow::new(4);
        w.record(outcome_bits(false, false));
        w.record(outcome_bits(false, false));
        assert_eq!(count_totals(&w), (2, 0, 0));
    }

    #[test]
    fn time_window_forgets_buckets_older_than_the_window() {
        let sec = 1_000_000_000;
        let w = TimeWindow::new(Duration::from_secs(10), 10);
        w.record(outcome_bits(true, false), 0);
        w.record(outcome_bits(false, false), 5 * sec);
        assert_eq!(
            w.totals(5 * sec),
            Totals {
                calls: 2,
                failures: 1,
                slow: 0
            }
        );
        // At 10 s the bucket of second 0 has left the window.
        assert_eq!(
            w.totals(10 * sec),
            Totals {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        // A call in the same slot ten seconds on clears the old contents.
        w.record(outcome_bits(false, true), 15 * sec + 1);
        assert_eq!(
            w.totals(15 * sec + 1),
            Totals {
                calls: 1,
                failures: 0,
                slow: 1
            }
        );
        assert_eq!(w.totals(100 * sec), Totals::default());
    }
}
