use std::sync::Arc;
use std::time::Duration;

use super::event::CircuitEvent;
use super::window::MAX_COUNT_WINDOW;
use crate::config::{Check, ConfigError};
use crate::event::Emitter;

/// The window over which failure and slow-call rates are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum SlidingWindow {
    /// The last `size` calls. A new call pushes out the oldest one.
    Count {
        /// How many calls the window holds (1 to 1 000 000).
        size: u32,
    },
    /// The calls of the last `size` of time, counted in `buckets` buckets of
    /// equal length; a whole bucket leaves the window at once.
    Time {
        /// How much time the window covers.
        #[cfg_attr(
            feature = "serde",
            serde(deserialize_with = "crate::de::duration::deserialize")
        )]
        size: Duration,
        /// How many buckets it is cut into (1 to 1 000).
        #[cfg_attr(feature = "serde", serde(default = "SlidingWindow::default_buckets"))]
        buckets: u32,
    },
}

impl SlidingWindow {
    /// The last `size` calls.
    pub fn count(size: u32) -> Self {
        SlidingWindow::Count { size }
    }

    /// A time window's buckets unless said.
    const BUCKETS: u32 = 10;

    /// The calls of the last `size`, in 10 buckets.
    pub fn time(size: Duration) -> Self {
        SlidingWindow::Time {
            size,
            buckets: Self::BUCKETS,
        }
    }

    #[cfg(feature = "serde")]
    fn default_buckets() -> u32 {
        Self::BUCKETS
    }

    /// The calls of the last `size`, in `buckets` buckets.
    pub fn time_buckets(size: Duration, buckets: u32) -> Self {
        SlidingWindow::Time { size, buckets }
    }
}

/// How long the breaker stays open before it lets probes through.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(from = "crate::de::OpenDurationFile")
)]
pub enum OpenDuration {
    /// The same time after every trip.
    Fixed(Duration),
    /// `base` after the first trip, multiplied by `multiplier` after each
    /// failed probe, never more than `max`; each period is shortened by a
    /// random fraction of at most `jitter` so that many breakers that tripped
    /// together do not all probe at the same instant. A successful probe
    /// closes the breaker and starts the sequence again.
    Exponential {
        /// The first open period.
        base: Duration,
        /// The longest open period.
        max: Duration,
        /// Growth per failed probe; at least 1.
        multiplier: f64,
        /// The largest fraction, in [0, 1], by which a period is shortened.
        jitter: f64,
    },
    /// `base` times the number of trips in a row, never more than `max`,
    /// shortened by a random fraction of at most `jitter` (Envoy's outlier
    /// ejection time).
    Linear {
        /// The first open period, and the step of each next one.
        base: Duration,
        /// The longest open period.
        max: Duration,
        /// The largest fraction, in [0, 1], by which a period is shortened.
        jitter: f64,
    },
}

impl OpenDuration {
    /// An exponential duration's multiplier unless said.
    const MULTIPLIER: f64 = 2.0;
    /// An exponential or linear duration's jitter unless said.
    const JITTER: f64 = 0.2;

    #[cfg(feature = "serde")]
    pub(crate) fn default_multiplier() -> f64 {
        Self::MULTIPLIER
    }

    #[cfg(feature = "serde")]
    pub(crate) fn default_jitter() -> f64 {
        Self::JITTER
    }

    /// The same time after every trip.
    pub fn fixed(duration: Duration) -> Self {
        OpenDuration::Fixed(duration)
    }

    /// From `base`, doubling after each failed probe up to `max`, with a
    /// jitter of 0.2.
    pub fn exponential(base: Duration, max: Duration) -> Self {
        OpenDuration::Exponential {
            base,
            max,
            multiplier: Self::MULTIPLIER,
            jitter: Self::JITTER,
        }
    }

    /// `base` times the number of trips in a row, up to `max`, with a jitter
    /// of 0.2.
    pub fn linear(base: Duration, max: Duration) -> Self {
        OpenDuration::Linear {
            base,
            max,
            jitter: Self::JITTER,
        }
    }

    /// Sets the multiplier of an exponential duration; no effect on others.
    pub fn multiplier(mut self, value: f64) -> Self {
        if let OpenDuration::Exponential { multiplier, .. } = &mut self {
            *multiplier = value;
        }
        self
    }

    /// Sets the jitter of an exponential or linear duration; no effect on a
    /// fixed one.
    pub fn jitter(mut self, value: f64) -> Self {
        if let OpenDuration::Exponential { jitter, .. } | OpenDuration::Linear { jitter, .. } =
            &mut self
        {
            *jitter = value;
        }
        self
    }

    pub(crate) fn jitter_of(&self) -> f64 {
        match *self {
            OpenDuration::Fixed(_) => 0.0,
            OpenDuration::Exponential { jitter, .. } | OpenDuration::Linear { jitter, .. } => {
                jitter
            }
        }
    }

    /// The open period after `trips` consecutive trips (1 for the first),
    /// with `unit` a random number in [0, 1) for the jitter.
    pub(crate) fn period(&self, trips: u32, unit: f64) -> Duration {
        match *self {
            OpenDuration::Fixed(d) => d,
            OpenDuration::Exponential {
                base,
                max,
                multiplier,
                jitter,
            } => {
                let exponent = i32::try_from(trips.saturating_sub(1)).unwrap_or(i32::MAX);
                shorten(
                    base.as_secs_f64() * multiplier.powi(exponent),
                    max,
                    jitter,
                    unit,
                )
            }
            OpenDuration::Linear { base, max, jitter } => shorten(
                base.as_secs_f64() * f64::from(trips.max(1)),
                max,
                jitter,
                unit,
            ),
        }
    }
}

/// `nominal` seconds capped at `max`, shortened by `jitter * unit`.
fn shorten(nominal: f64, max: Duration, jitter: f64, unit: f64) -> Duration {
    let capped = nominal.min(max.as_secs_f64());
    // Validated fields keep this finite and non-negative; a `max` near
    // `Duration::MAX` may not survive the round trip to f64.
    Duration::try_from_secs_f64(capped * (1.0 - jitter * unit)).unwrap_or(max)
}

/// Configuration of a [`CircuitBreakerLayer`](super::CircuitBreakerLayer).
///
/// Every field has a documented default; set what you need with the by-value
/// setters. Values are checked when the layer is built
/// ([`CircuitBreakerLayer::new`](super::CircuitBreakerLayer::new)), and a bad
/// one is a [`ConfigError`] naming the field.
///
/// The breaker trips (goes from Closed to Open) when any enabled policy says so:
///
/// - **failure rate**: failures / calls in the window reach
///   `failure_rate_threshold`, once the window holds `minimum_calls` calls;
/// - **slow-call rate** (when `slow_call_duration` is set): calls slower than
///   it / calls reach `slow_call_rate_threshold`, with the same minimum;
/// - **consecutive failures** (when set): that many failures in a row.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_bulwark::circuit_breaker::{
///     CircuitBreakerConfig, CircuitBreakerLayer, OpenDuration, SlidingWindow,
/// };
///
/// let config = CircuitBreakerConfig::default()
///     .service("users")
///     .sliding_window(SlidingWindow::time(Duration::from_secs(30)))
///     .minimum_calls(50)
///     .failure_rate_threshold(0.25)
///     .slow_call_duration(Duration::from_millis(500))
///     .consecutive_failures(10)
///     .open_duration(OpenDuration::exponential(Duration::from_secs(1), Duration::from_secs(30)))
///     .half_open_probes(2);
/// let layer = CircuitBreakerLayer::new(config)?;
/// # let _ = layer;
/// # Ok::<_, tower_bulwark::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct CircuitBreakerConfig {
    /// The `service` label of the metrics and the name in events.
    /// Default: `"default"`.
    pub service: String,
    /// Default: the last 100 calls.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::kind::deserialize")
    )]
    pub sliding_window: SlidingWindow,
    /// Calls the window must hold before a rate is judged. Default: 20.
    pub minimum_calls: u32,
    /// Failure rate in (0, 1] at which the breaker trips. Default: 0.5.
    pub failure_rate_threshold: f64,
    /// Calls that take longer than this are slow. Default: `None` (slow
    /// calls are not tracked, and no clock is read while closed).
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::option_duration::deserialize")
    )]
    pub slow_call_duration: Option<Duration>,
    /// Slow-call rate in (0, 1] at which the breaker trips. Default: 1.0.
    pub slow_call_rate_threshold: f64,
    /// Trip after this many failures in a row, whatever the rate.
    /// Default: `None`.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::maybe::deserialize")
    )]
    pub consecutive_failures: Option<u32>,
    /// Default: exponential from 5 s to 60 s, doubling, jitter 0.2.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::kind::deserialize")
    )]
    pub open_duration: OpenDuration,
    /// Probes allowed in flight while half-open; this many successes close
    /// the breaker, and one failure opens it again. Default: 1.
    pub half_open_probes: u32,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub(crate) events: Emitter<CircuitEvent>,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            service: "default".to_owned(),
            sliding_window: SlidingWindow::count(100),
            minimum_calls: 20,
            failure_rate_threshold: 0.5,
            slow_call_duration: None,
            slow_call_rate_threshold: 1.0,
            consecutive_failures: None,
            open_duration: OpenDuration::exponential(
                Duration::from_secs(5),
                Duration::from_secs(60),
            ),
            half_open_probes: 1,
            events: Emitter::none(),
        }
    }
}

impl CircuitBreakerConfig {
    service_setter!();

    /// Sets [`sliding_window`](Self::sliding_window).
    pub fn sliding_window(mut self, window: SlidingWindow) -> Self {
        self.sliding_window = window;
        self
    }

    /// Sets [`minimum_calls`](Self::minimum_calls).
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls;
        self
    }

    /// Sets [`failure_rate_threshold`](Self::failure_rate_threshold).
    pub fn failure_rate_threshold(mut self, rate: f64) -> Self {
        self.failure_rate_threshold = rate;
        self
    }

    /// Sets [`slow_call_duration`](Self::slow_call_duration), which enables
    /// the slow-call policy.
    pub fn slow_call_duration(mut self, duration: Duration) -> Self {
        self.slow_call_duration = Some(duration);
        self
    }

    /// Sets [`slow_call_rate_threshold`](Self::slow_call_rate_threshold).
    pub fn slow_call_rate_threshold(mut self, rate: f64) -> Self {
        self.slow_call_rate_threshold = rate;
        self
    }

    /// Sets [`consecutive_failures`](Self::consecutive_failures).
    pub fn consecutive_failures(mut self, failures: u32) -> Self {
        self.consecutive_failures = Some(failures);
        self
    }

    /// Sets [`open_duration`](Self::open_duration).
    pub fn open_duration(mut self, duration: OpenDuration) -> Self {
        self.open_duration = duration;
        self
    }

    /// Sets [`half_open_probes`](Self::half_open_probes).
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.half_open_probes = probes;
        self
    }

    events_setter!();

    /// Checks every field; the first bad one is the error.
    pub(crate) fn validate(&self) -> Result<Settings, ConfigError> {
        let check = Check::layer("circuit breaker");
        match self.sliding_window {
            SlidingWindow::Count { size } => {
                check.nonzero("sliding_window.size", size.into())?;
                check.at_most("sliding_window.size", size.into(), MAX_COUNT_WINDOW)?;
            }
            SlidingWindow::Time { size, buckets } => {
                check.duration("sliding_window.size", size)?;
                check.nonzero("sliding_window.buckets", buckets.into())?;
                check.at_most("sliding_window.buckets", buckets.into(), 1_000)?;
            }
        }
        check.nonzero("minimum_calls", self.minimum_calls.into())?;
        if let SlidingWindow::Count { size } = self.sliding_window {
            check.at_most("minimum_calls", self.minimum_calls.into(), size.into())?;
        }
        check.rate("failure_rate_threshold", self.failure_rate_threshold)?;
        check.rate("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        if let Some(d) = self.slow_call_duration {
            check.duration("slow_call_duration", d)?;
        }
        if let Some(n) = self.consecutive_failures {
            check.nonzero("consecutive_failures", n.into())?;
        }
        match self.open_duration {
            OpenDuration::Fixed(d) => check.duration("open_duration", d)?,
            OpenDuration::Exponential {
                base,
                max,
                multiplier,
                jitter,
            } => {
                check.duration("open_duration.base", base)?;
                check.not_smaller("open_duration.max", max, "open_duration.base", base)?;
                check.not_smaller("open_duration.multiplier", multiplier, "1.0", 1.0)?;
                check.ratio("open_duration.jitter", jitter)?;
            }
            OpenDuration::Linear { base, max, jitter } => {
                check.duration("open_duration.base", base)?;
                check.not_smaller("open_duration.max", max, "open_duration.base", base)?;
                check.ratio("open_duration.jitter", jitter)?;
            }
        }
        check.nonzero("half_open_probes", self.half_open_probes.into())?;
        check.at_most(
            "half_open_probes",
            self.half_open_probes.into(),
            u16::MAX.into(),
        )?;
        Ok(Settings {
            service: Arc::from(self.service.as_str()),
            config: self.clone(),
            trip_memory: Duration::ZERO,
            rates: true,
            gate: None,
            metrics: true,
            key: None,
        })
    }
}

/// A checked configuration, the service's name as the breaker's events and
/// metrics share it, and what the crate's own layers set for a breaker of
/// theirs (a balancer's endpoints, a layer's keys).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) service: Arc<str>,
    pub(crate) config: CircuitBreakerConfig,
    /// How long trips are remembered after closing: a trip within this time
    /// of the last close counts as one more in a row (outlier ejection);
    /// zero for a plain breaker, whose count starts over on closing.
    pub(crate) trip_memory: Duration,
    /// Whether the window's rates may trip the breaker. When not (outlier
    /// detection without a failure-rate rule), no window is kept and a
    /// completed call writes nothing unless it follows a failure.
    pub(crate) rates: bool,
    /// Shared limit on how many breakers of a group may be open at once.
    pub(crate) gate: Option<Arc<Gate>>,
    /// Whether to register `bulwark_circuit_*` series.
    pub(crate) metrics: bool,
    /// The label of the key this breaker is for, among a layer's breakers
    /// per key: on its metrics (`key`) and events.
    pub(crate) key: Option<Arc<str>>,
}

/// A limit on how many breakers of a group (the endpoints of a balancer) may
/// be open or half-open at once.
#[derive(Debug)]
pub(crate) struct Gate {
    open: std::sync::atomic::AtomicUsize,
    members: std::sync::atomic::AtomicUsize,
    max_percent: f64,
}

impl Gate {
    #[cfg(feature = "balance")]
    pub(crate) fn new(max_percent: f64) -> Self {
        Gate {
            open: Default::default(),
            members: Default::default(),
            max_percent,
        }
    }

    /// How many members may be open at once: `max_percent` of them rounded
    /// down, but at least one when the percentage is not zero, and never all.
    fn allowed(&self, members: usize) -> usize {
        if self.max_percent <= 0.0 || members < 2 {
            return 0;
        }
        let share = (members as f64 * self.max_percent / 100.0) as usize;
        share.max(1).min(members - 1)
    }

    /// Takes a place for one more open member, if the limit allows it.
    pub(crate) fn try_open(&self) -> bool {
        use std::sync::atomic::Ordering::*;
        let members = self.members.load(Acquire);
        self.open
            .fetch_update(AcqRel, Acquire, |open| {
                (open < self.allowed(members)).then_some(open + 1)
            })
            .is_ok()
    }

    pub(crate) fn close(&self) {
        use std::sync::atomic::Ordering::*;
        let _ = self
            .open
            .fetch_update(AcqRel, Acquire, |open| open.checked_sub(1));
    }

    #[cfg(feature = "balance")]
    #[inline]
    pub(crate) fn open_count(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::Acquire)
    }

    #[cfg(feature = "balance")]
    pub(crate) fn set_members(&self, members: usize) {
        self.members
            .store(members, std::sync::atomic::Ordering::Release);
    }
}
