//! What the calls of one window show, gathered without a lock, and the
//! limit learned from it when the window closes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::time::Duration;

use tokio::time::Instant;

use super::limit::{Bounds, Limit, Window};
use crate::admission::AdmissionEvent;
use crate::admission::places::Places;

/// The count of latency samples sits in the low bits of `sums`, their sum
/// in microseconds in the high ones: one atomic addition per sample.
const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// A window closes by itself at this many samples (half a million), well
/// before the count could overflow into the sum.
const MAX_SAMPLES: u64 = 1 << (COUNT_BITS - 1);
/// The longest latency a sample counts with (33 s), so that the sum of
/// twice `MAX_SAMPLES` of them fits in its 44 bits.
const MAX_RTT_MICROS: u64 = (1 << (64 - COUNT_BITS)) / (2 * MAX_SAMPLES);

/// Timed calls a window aims at: past that, one call in a power of two is
/// timed, so that a busy service reads the clock on few of its calls.
const TIMED_PER_WINDOW: u64 = 256;
/// The most calls one timed call stands for.
const MAX_STRIDE: u64 = 1 << 16;

thread_local! {
    /// Calls started on this thread, for the choice of the calls timed.
    static TICK: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// How one call ended, for the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sample {
    /// Answered well: its latency counts.
    Latency,
    /// Failed, or cut off by a deadline: a sign of overload.
    Dropped,
}

/// The limit's state, touched only by the call that closes a window.
#[derive(Debug)]
struct Learning {
    limit: Limit,
    /// The latest window's average latency, for a window of drops alone.
    last_rtt: Duration,
}

/// How windows are cut.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
    pub(crate) samples: u32,
}

/// Gathers the samples of the current window and closes it.
#[derive(Debug)]
pub(crate) struct Learner {
    base: Instant,
    sums: AtomicU64,
    drops: AtomicU32,
    max_in_flight: AtomicUsize,
    /// When the current window may close, in nanoseconds from `base`.
    closes_at: AtomicU64,
    /// One call in `stride_mask + 1` (a power of two) is timed: the clock
    /// is read twice per timed call, which would be most of a call's cost
    /// if every call were (31 ns a read in the overhead bench).
    stride_mask: AtomicU32,
    windows: Windows,
    bounds: Bounds,
    learning: Mutex<Learning>,
}

impl Learner {
    pub(crate) fn new(limit: Limit, bounds: Bounds, windows: Windows) -> Self {
        Learner {
            base: Instant::now(),
            sums: AtomicU64::new(0),
            drops: AtomicU32::new(0),
            max_in_flight: AtomicUsize::new(0),
            closes_at: AtomicU64::new(nanos(windows.min)),
            stride_mask: AtomicU32::new(0),
            windows,
            bounds,
            learning: Mutex::new(Learning {
                limit,
                last_rtt: windows.min,
            }),
        }
    }

    /// Whether the call starting now is to be timed: every call while the
    /// windows see fewer than 256 calls; past that, one in a power of two
    /// on each thread, so that a window still has about 256.
    #[inline]
    pub(crate) fn times(&self) -> bool {
        let mask = self.stride_mask.load(Relaxed);
        mask == 0
            || TICK.with(|tick| {
                let n = tick.get().wrapping_add(1);
                tick.set(n);
                n & mask == 0
            })
    }

    /// Records a call that started at `start` (if it was timed) with
    /// `in_flight` calls running (itself included), and closes the window
    /// if it is over. Without a lock: one atomic addition, and a look at
    /// the window's highest count of calls in flight.
    #[inline]
    pub(crate) fn sample(
        &self,
        places: &Places<Learner>,
        start: Option<Instant>,
        in_flight: usize,
        sample: Sample,
    ) {
        if sample == Sample::Latency && start.is_none() {
            // An untimed call that went well: nothing to learn.
            return;
        }
        let now = crate::clock::now();
        let samples = match (sample, start) {
            (Sample::Latency, None) => return,
            (Sample::Latency, Some(start)) => {
                let micros = (now.saturating_duration_since(start).as_micros() as u64)
                    .clamp(1, MAX_RTT_MICROS);
                let before = self.sums.fetch_add((micros << COUNT_BITS) | 1, AcqRel);
                (before & COUNT_MASK) + 1
            }
            (Sample::Dropped, _) => u64::from(self.drops.fetch_add(1, AcqRel)) + 1,
        };
        if in_flight > self.max_in_flight.load(Relaxed) {
            self.max_in_flight.fetch_max(in_flight, AcqRel);
        }
        let elapsed = nanos(now.saturating_duration_since(self.base));
        if (elapsed >= self.closes_at.load(Acquire) && self.enough(samples))
            || samples >= MAX_SAMPLES
        {
            self.close(places, elapsed);
        }
    }

    /// Whether a window with `samples` may close once its time is up: at
    /// least `window_samples` of them, or any number while only some calls
    /// are timed (a window of a service whose calls suddenly became few
    /// closes on time, and times every call again).
    #[inline]
    fn enough(&self, samples: u64) -> bool {
        samples >= u64::from(self.windows.samples) || self.stride_mask.load(Relaxed) > 0
    }

    /// Closes the window: the one call that takes the lock computes the
    /// new limit; the others go on.
    #[cold]
    fn close(&self, places: &Places<Learner>, elapsed: u64) {
        let Ok(mut learning) = self.learning.try_lock() else {
            return;
        };
        let sums = self.sums.load(Acquire);
        let drops = self.drops.load(Acquire);
        let count = (sums & COUNT_MASK) + u64::from(drops);
        let due = elapsed >= self.closes_at.load(Acquire) && self.enough(count);
        if !due && count < MAX_SAMPLES {
            // Closed meanwhile by another call, which took these samples.
            return;
        }
        let sums = self.sums.swap(0, AcqRel);
        let drops = self.drops.swap(0, AcqRel);
        let in_flight = self.max_in_flight.swap(0, AcqRel);
        let latencies = sums & COUNT_MASK;
        let rtt = (sums >> COUNT_BITS)
            .checked_div(latencies)
            .map_or(learning.last_rtt, Duration::from_micros);
        learning.last_rtt = rtt;
        // The calls of this window, as many as its timed ones stand for:
        // the next window times one in as many as leave it about 256.
        let calls = count.saturating_mul(u64::from(self.stride_mask.load(Relaxed)) + 1);
        let stride = (calls / TIMED_PER_WINDOW).clamp(1, MAX_STRIDE);
        let stride = 1u64 << (63 - stride.leading_zeros());
        self.stride_mask
            .store(u32::try_from(stride - 1).unwrap_or(0), Relaxed);
        let length = (rtt * 2).clamp(self.windows.min, self.windows.max);
        self.closes_at
            .store(elapsed.saturating_add(nanos(length)), Release);
        let window = Window {
            rtt,
            in_flight,
            dropped: drops > 0,
        };
        let limit = learning.limit.update(window, self.bounds);
        drop(learning);
        let before = places.limit();
        if limit != before {
            places.set_limit(limit);
            let telemetry = &places.telemetry;
            telemetry.events.emit(|| AdmissionEvent::LimitChanged {
                service: telemetry.service.clone(),
                from: before,
                to: limit,
            });
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
