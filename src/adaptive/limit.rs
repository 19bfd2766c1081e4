//! The limit algorithms: pure arithmetic on one window's summary at a time.

use std::time::Duration;

/// What one window of calls showed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Window {
    /// The calls' average latency.
    pub(crate) rtt: Duration,
    /// The most calls in flight when one of them started.
    pub(crate) in_flight: usize,
    /// Whether a call failed or was cut off by a deadline.
    pub(crate) dropped: bool,
}

/// Bounds every algorithm keeps its limit within.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) min: usize,
    pub(crate) max: usize,
}

impl Bounds {
    fn clamp(self, limit: f64) -> f64 {
        limit.clamp(self.min as f64, self.max as f64)
    }
}

/// An exponential moving average that starts as a plain average of its
/// first samples (Netflix's `ExpAvgMeasurement`).
#[derive(Debug, Clone)]
struct ExpAverage {
    value: f64,
    count: u32,
    warmup: u32,
    factor: f64,
}

impl ExpAverage {
    fn new(window: u32, warmup: u32) -> Self {
        ExpAverage {
            value: 0.0,
            count: 0,
            warmup,
            factor: 2.0 / (f64::from(window) + 1.0),
        }
    }

    /// Starts again from `value`, warmed up.
    fn reset(&mut self, value: f64) {
        self.value = value;
        self.count = self.warmup;
    }

    fn add(&mut self, sample: f64) -> f64 {
        if self.count < self.warmup {
            self.count += 1;
            self.value += (sample - self.value) / f64::from(self.count);
        } else {
            self.value = self.value * (1.0 - self.factor) + sample * self.factor;
        }
        self.value
    }
}

/// Measures, now and then, the latency without a queue: an addition of
/// ours to Netflix's Gradient2 and Vegas.
///
/// Under load that never lets up, both learn their baseline latency from
/// loaded windows (Gradient2's long-term average follows the latency up;
/// Vegas measures its lowest latency afresh from whatever window comes),
/// and their limit climbs with it without end: in the goodput bench, for
/// a backend that serves 16 calls at once, Gradient2 went from 33 places
/// after a minute to 75 after ten, Vegas to 135. So every [`PROBE_EVERY`]
/// loaded windows the limit drops to a quarter for two windows (the first
/// drains the backend's queue, the second measures the latency without
/// one, as Envoy's adaptive concurrency filter measures its minimum
/// latency at a low concurrency), the algorithm takes that as its
/// baseline, and the limit comes back where it was. The first probe comes
/// after 20 loaded windows, so that a layer that starts under load does
/// not keep a loaded latency as its baseline.
#[derive(Debug, Clone)]
struct Prober {
    /// Loaded windows until the next probe.
    until: u32,
    state: Probe,
}

/// Where a probe is.
#[derive(Debug, Clone, Copy)]
enum Probe {
    Off,
    /// At a quarter of `saved`, while the backend's queue drains.
    Draining {
        saved: f64,
    },
    /// Still there: this window's latency is the one without a queue.
    Measuring {
        saved: f64,
    },
}

/// What a window is for, as the prober sees it.
enum Step {
    /// An ordinary window.
    Learn,
    /// A window of a probe: the limit stays as the probe set it.
    Hold,
    /// The probe is over: the latency without a queue.
    Baseline(f64),
}

/// Loaded windows between two probes (a minute at the shortest windows).
pub(crate) const PROBE_EVERY: u32 = 600;
/// Loaded windows before the first probe.
const FIRST_PROBE: u32 = 20;

impl Prober {
    fn new() -> Self {
        Prober {
            until: FIRST_PROBE,
            state: Probe::Off,
        }
    }

    /// Moves the probe on by one window whose latency was `rtt`; sets
    /// `limit` when a probe starts or ends.
    fn step(&mut self, limit: &mut f64, rtt: f64, loaded: bool, bounds: Bounds) -> Step {
        match self.state {
            Probe::Draining { saved } => {
                self.state = Probe::Measuring { saved };
                Step::Hold
            }
            Probe::Measuring { saved } => {
                self.state = Probe::Off;
                *limit = saved;
                Step::Baseline(rtt)
            }
            Probe::Off if loaded => {
                self.until -= 1;
                if self.until > 0 {
                    return Step::Learn;
                }
                self.until = PROBE_EVERY;
                self.state = Probe::Draining { saved: *limit };
                *limit = bounds.clamp((*limit / 4.0).ceil());
                Step::Hold
            }
            Probe::Off => Step::Learn,
        }
    }
}

/// Netflix's Gradient2: the limit follows the ratio of a long-term average
/// latency to the latest one, plus a small queue; with our [`Prober`].
#[derive(Debug, Clone)]
pub(crate) struct Gradient2 {
    limit: f64,
    long_rtt: ExpAverage,
    tolerance: f64,
    smoothing: f64,
    prober: Prober,
}

/// Calls Gradient2 lets wait on top of what the backend serves without
/// queueing (Netflix's default `queueSize`).
const GRADIENT2_QUEUE: f64 = 4.0;

/// Windows the long-term latency averages over (Netflix's `longWindow`),
/// and the first windows it takes as a plain average.
const GRADIENT2_LONG_WINDOW: u32 = 600;
const GRADIENT2_WARMUP: u32 = 10;

impl Gradient2 {
    pub(crate) fn new(initial: usize, tolerance: f64, smoothing: f64) -> Self {
        Gradient2 {
            limit: initial as f64,
            long_rtt: ExpAverage::new(GRADIENT2_LONG_WINDOW, GRADIENT2_WARMUP),
            tolerance,
            smoothing,
            prober: Prober::new(),
        }
    }

    fn update(&mut self, window: Window, bounds: Bounds) -> f64 {
        let short = window.rtt.as_secs_f64().max(1e-9);
        let loaded = (window.in_flight as f64) >= self.limit / 2.0;
        match self.prober.step(&mut self.limit, short, loaded, bounds) {
            Step::Learn => {}
            Step::Hold => return self.limit,
            Step::Baseline(rtt) => {
                self.long_rtt.reset(rtt);
                return self.limit;
            }
        }
        let long = self.long_rtt.add(short);
        // After a slow spell, the long-term average comes back down faster.
        if long / short > 2.0 {
            self.long_rtt.value *= 0.9;
        }
        // A limit the callers do not reach says nothing: it stays.
        if !loaded {
            return self.limit;
        }
        let gradient = (self.tolerance * long / short).clamp(0.5, 1.0);
        let target = self.limit * gradient + GRADIENT2_QUEUE;
        self.limit = bounds.clamp(self.limit * (1.0 - self.smoothing) + target * self.smoothing);
        self.limit
    }
}

/// Additive increase, multiplicative decrease: one more place after each
/// window that used at least half of them, `backoff` times fewer after one
/// with a failure or a latency over `slow`.
#[derive(Debug, Clone)]
pub(crate) struct Aimd {
    limit: f64,
    backoff: f64,
    slow: Duration,
}

impl Aimd {
    pub(crate) fn new(initial: usize, backoff: f64, slow: Duration) -> Self {
        Aimd {
            limit: initial as f64,
            backoff,
            slow,
        }
    }

    fn update(&mut self, window: Window, bounds: Bounds) -> f64 {
        if window.dropped || window.rtt > self.slow {
            self.limit = bounds.clamp((self.limit * self.backoff).floor());
        } else if window.in_flight as f64 * 2.0 >= self.limit {
            self.limit = bounds.clamp(self.limit + 1.0);
        }
        self.limit
    }
}

/// TCP Vegas as Netflix adapts it: the queue is estimated from the lowest
/// latency seen (no queue) and the latest one; the limit grows while that
/// queue is short and shrinks when it is long, by steps that grow with the
/// logarithm of the limit. The lowest latency is measured afresh by our
/// [`Prober`] (where Netflix forgets it every 30·√limit windows and takes
/// the next window's, loaded or not).
#[derive(Debug, Clone)]
pub(crate) struct Vegas {
    limit: f64,
    /// The lowest latency seen: the latency without a queue.
    no_load: Option<f64>,
    prober: Prober,
}

impl Vegas {
    pub(crate) fn new(initial: usize) -> Self {
        Vegas {
            limit: initial as f64,
            no_load: None,
            prober: Prober::new(),
        }
    }

    fn update(&mut self, window: Window, bounds: Bounds) -> f64 {
        let rtt = window.rtt.as_secs_f64().max(1e-9);
        let loaded = (window.in_flight as f64) * 2.0 >= self.limit;
        match self.prober.step(&mut self.limit, rtt, loaded, bounds) {
            Step::Learn => {}
            Step::Hold => return self.limit,
            Step::Baseline(rtt) => {
                self.no_load = Some(rtt);
                return self.limit;
            }
        }
        let no_load = match self.no_load {
            Some(no_load) if no_load <= rtt => no_load,
            _ => {
                self.no_load = Some(rtt);
                return self.limit;
            }
        };
        let log = self.limit.log10().max(1.0);
        let queue = (self.limit * (1.0 - no_load / rtt)).ceil();
        let next = if window.dropped {
            self.limit - log
        } else if !loaded {
            // Callers do not reach the limit: it says nothing.
            return self.limit;
        } else if queue <= log {
            self.limit + 6.0 * log
        } else if queue < 3.0 * log {
            self.limit + log
        } else if queue > 6.0 * log {
            self.limit - log
        } else {
            self.limit
        };
        self.limit = bounds.clamp(next);
        self.limit
    }
}

/// One of the algorithms, as configured.
#[derive(Debug, Clone)]
pub(crate) enum Limit {
    Gradient2(Gradient2),
    Aimd(Aimd),
    Vegas(Vegas),
}

impl Limit {
    /// The limit after `window`, as a whole number of places within `bounds`.
    pub(crate) fn update(&mut self, window: Window, bounds: Bounds) -> usize {
        let limit = match self {
            Limit::Gradient2(gradient) => gradient.update(window, bounds),
            Limit::Aimd(aimd) => aimd.update(window, bounds),
            Limit::Vegas(vegas) => vegas.update(window, bounds),
        };
        (limit as usize).clamp(bounds.min, bounds.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds { min: 1, max: 1000 };

    fn window_us(micros: u64, in_flight: usize) -> Window {
        Window {
            rtt: Duration::from_micros(micros),
            in_flight,
            dropped: false,
        }
    }

    fn window(millis: u64, in_flight: usize) -> Window {
        Window {
            rtt: Duration::from_millis(millis),
            in_flight,
            dropped: false,
        }
    }

    #[test]
    fn gradient2_settles_a_queue_of_four_over_what_the_backend_serves() {
        // A backend that serves 16 at once in 10 ms; above that, each call
        // waits its turn (latency grows with the calls in flight).
        let mut limit = Limit::Gradient2(Gradient2::new(16, 1.0, 0.2));
        let mut current = 16;
        for _ in 0..100 {
            let rtt = 10_000 * current.max(16) as u64 / 16;
            current = limit.update(window_us(rtt, current), BOUNDS);
        }
        // 16 + 4 places: every place of the backend busy, latency 1.25 ×
        // the unloaded one (a little more as the long-term average drifts).
        assert!((19..=25).contains(&current), "limit {current}");
        // With a tolerance of 1.5, latency may grow by half first: a longer
        // queue.
        let strict = current;
        let mut limit = Limit::Gradient2(Gradient2::new(16, 1.5, 0.2));
        let mut current = 16;
        for _ in 0..100 {
            let rtt = 10_000 * current.max(16) as u64 / 16;
            current = limit.update(window_us(rtt, current), BOUNDS);
        }
        assert!(current >= strict + 8, "limit {current} against {strict}");
    }

    #[test]
    fn probes_of_the_latency_without_a_queue_keep_the_limit_from_drifting() {
        // A backend that serves 16 at once, under load that never lets up.
        let queueing = |limit: usize| window_us(10_000 * limit.max(16) as u64 / 16, limit);
        for mut limit in [
            Limit::Gradient2(Gradient2::new(16, 1.0, 0.2)),
            Limit::Vegas(Vegas::new(16)),
        ] {
            let mut current = 16;
            let mut highest = 0;
            let mut probes = 0;
            for _ in 0..(10 * (PROBE_EVERY + 2)) {
                let next = limit.update(queueing(current), BOUNDS);
                if next * 2 < current {
                    probes += 1;
                }
                current = next;
                highest = highest.max(current);
            }
            assert_eq!(
                probes, 10,
                "one probe early, then every {PROBE_EVERY} loaded windows"
            );
            assert!(
                highest <= 40,
                "{limit:?}: the limit stays near 16: at most {highest}"
            );
        }
    }

    #[test]
    fn gradient2_grows_while_latency_holds_and_not_when_unused() {
        let mut limit = Limit::Gradient2(Gradient2::new(20, 1.5, 0.2));
        let mut current = 20;
        for _ in 0..50 {
            current = limit.update(window(10, current), BOUNDS);
        }
        assert!(current > 40, "grew to {current}");
        let before = current;
        for _ in 0..50 {
            current = limit.update(window(10, 2), BOUNDS);
        }
        assert_eq!(current, before, "a limit nobody reaches stays");
    }

    #[test]
    fn gradient2_halves_at_most_per_window_and_keeps_its_bounds() {
        let mut limit = Limit::Gradient2(Gradient2::new(100, 1.5, 1.0));
        for _ in 0..20 {
            limit.update(window(10, 100), BOUNDS);
        }
        let before = limit.update(window(10, 100), BOUNDS);
        let after = limit.update(window(10_000, before), BOUNDS);
        assert!(after * 2 + 8 >= before, "{before} -> {after}");
        let bounds = Bounds { min: 5, max: 50 };
        for _ in 0..100 {
            let now = limit.update(window(10_000, 1000), bounds);
            assert!((5..=50).contains(&now));
        }
    }

    #[test]
    fn aimd_adds_one_and_backs_off_on_a_drop_or_a_slow_window() {
        let mut limit = Limit::Aimd(Aimd::new(10, 0.5, Duration::from_millis(100)));
        assert_eq!(limit.update(window(10, 10), BOUNDS), 11);
        assert_eq!(limit.update(window(10, 2), BOUNDS), 11, "unused: stays");
        let dropped = Window {
            dropped: true,
            ..window(10, 11)
        };
        assert_eq!(limit.update(dropped, BOUNDS), 5);
        assert_eq!(limit.update(window(200, 5), BOUNDS), 2);
        assert_eq!(limit.update(window(200, 5), BOUNDS), 1, "not below min");
        assert_eq!(limit.update(window(200, 5), BOUNDS), 1);
    }

    #[test]
    fn vegas_grows_without_a_queue_and_shrinks_with_one() {
        let mut limit = Limit::Vegas(Vegas::new(20));
        let mut current = limit.update(window(10, 20), BOUNDS);
        assert_eq!(
            current, 20,
            "the first window measures the latency without a queue"
        );
        for _ in 0..5 {
            current = limit.update(window(10, current), BOUNDS);
        }
        assert!(current > 40, "grew to {current}");
        let before = current;
        for _ in 0..5 {
            current = limit.update(window(40, current), BOUNDS);
        }
        assert!(current < before, "{before} -> {current}");
    }
}
