use std::sync::Arc;
use std::time::Duration;

use super::learner::Windows;
use super::limit::{Aimd, Bounds, Gradient2, Limit, Vegas};
use crate::admission::AdmissionEvent;
use crate::config::{Check, ConfigError};
use crate::event::Emitter;

/// How an [`AdaptiveConcurrency`](super::AdaptiveConcurrency) learns its
/// limit. See the [module docs](super) for how fast each reacts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Algorithm {
    /// Netflix's Gradient2: the limit follows the ratio of the long-term
    /// average latency to the latest window's, plus a queue of 4. The
    /// default.
    #[default]
    Gradient2,
    /// Additive increase, multiplicative decrease: one more place per
    /// window that used half of them, [`backoff`](AdaptiveConfig::backoff)
    /// times fewer after a failure or a window slower than
    /// [`slow_call`](AdaptiveConfig::slow_call).
    Aimd,
    /// TCP Vegas: a queue estimated from the lowest latency seen and the
    /// latest one; the limit grows while the queue is short and shrinks when
    /// it is long.
    Vegas,
}

/// An [`AdaptiveConcurrency`](super::AdaptiveConcurrency)'s configuration.
/// Checked when the layer is built. See the [module docs](super).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_bulwark::adaptive::{AdaptiveConcurrencyLayer, AdaptiveConfig, Algorithm};
///
/// let layer = AdaptiveConcurrencyLayer::new(
///     AdaptiveConfig::default()
///         .service("users")
///         .algorithm(Algorithm::Gradient2)
///         .limits(1, 20, 500),
/// )?;
/// assert_eq!(layer.limit(), 20);
/// # Ok::<_, tower_bulwark::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct AdaptiveConfig {
    /// The `service` label of the metrics and the name in events.
    /// Default: `"default"`.
    pub service: String,
    /// The algorithm. Default: [`Algorithm::Gradient2`].
    pub algorithm: Algorithm,
    /// The limit before anything is learned. Default: 20.
    pub initial_limit: usize,
    /// The lowest limit. Default: 1.
    pub min_limit: usize,
    /// The highest limit. Default: 1000.
    pub max_limit: usize,
    /// A window lasts twice its calls' average latency, but at least this
    /// long. Default: 100 ms.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::duration::deserialize")
    )]
    pub min_window: Duration,
    /// ... and at most this long. Default: 1 s.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::duration::deserialize")
    )]
    pub max_window: Duration,
    /// A window closes only once it has this many calls. Default: 10.
    pub window_samples: u32,
    /// Gradient2: how much slower than the long-term average a window may
    /// be before the limit comes down (at least 1). Default: 1, as in
    /// Netflix's Gradient2 today (its first versions took 1.5).
    pub tolerance: f64,
    /// Gradient2: how far the limit moves towards its new value after each
    /// window, in (0, 1]. Default: 0.2.
    pub smoothing: f64,
    /// AIMD: the factor on the limit after a window with a failure or a
    /// slow latency, in (0, 1). Default: 0.9.
    pub backoff: f64,
    /// AIMD: a window whose average latency is above this counts as a
    /// failure. Default: 5 s.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::duration::deserialize")
    )]
    pub slow_call: Duration,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub(crate) events: Emitter<AdmissionEvent>,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            service: "default".to_owned(),
            algorithm: Algorithm::Gradient2,
            initial_limit: 20,
            min_limit: 1,
            max_limit: 1000,
            min_window: Duration::from_millis(100),
            max_window: Duration::from_secs(1),
            window_samples: 10,
            tolerance: 1.0,
            smoothing: 0.2,
            backoff: 0.9,
            slow_call: Duration::from_secs(5),
            events: Emitter::none(),
        }
    }
}

impl AdaptiveConfig {
    service_setter!();

    /// Sets [`algorithm`](Self::algorithm).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the lowest, first and highest limits.
    pub fn limits(mut self, min: usize, initial: usize, max: usize) -> Self {
        self.min_limit = min;
        self.initial_limit = initial;
        self.max_limit = max;
        self
    }

    /// Sets how windows are cut: between `min` and `max` long, with at
    /// least `samples` calls.
    pub fn windows(mut self, min: Duration, max: Duration, samples: u32) -> Self {
        self.min_window = min;
        self.max_window = max;
        self.window_samples = samples;
        self
    }

    /// Sets Gradient2's [`tolerance`](Self::tolerance) and
    /// [`smoothing`](Self::smoothing).
    pub fn gradient(mut self, tolerance: f64, smoothing: f64) -> Self {
        self.tolerance = tolerance;
        self.smoothing = smoothing;
        self
    }

    /// Sets AIMD's [`backoff`](Self::backoff) and [`slow_call`](Self::slow_call).
    pub fn aimd(mut self, backoff: f64, slow_call: Duration) -> Self {
        self.backoff = backoff;
        self.slow_call = slow_call;
        self
    }

    events_setter!();

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let check = Check::layer("adaptive_concurrency");
        check.nonzero("min_limit", self.min_limit as u64)?;
        check.not_smaller(
            "initial_limit",
            self.initial_limit,
            "min_limit",
            self.min_limit,
        )?;
        check.not_smaller(
            "max_limit",
            self.max_limit,
            "initial_limit",
            self.initial_limit,
        )?;
        check.duration("min_window", self.min_window)?;
        check.not_smaller("max_window", self.max_window, "min_window", self.min_window)?;
        check.nonzero("window_samples", self.window_samples.into())?;
        if !(self.tolerance >= 1.0 && self.tolerance.is_finite()) {
            return Err(check.invalid("tolerance", "a number of at least 1"));
        }
        check.rate("smoothing", self.smoothing)?;
        if !(self.backoff > 0.0 && self.backoff < 1.0) {
            return Err(check.invalid("backoff", "a number between 0 and 1, both excluded"));
        }
        check.duration("slow_call", self.slow_call)?;
        Ok(())
    }

    pub(crate) fn service_name(&self) -> Arc<str> {
        Arc::from(self.service.as_str())
    }

    pub(crate) fn limit(&self) -> Limit {
        match self.algorithm {
            Algorithm::Gradient2 => Limit::Gradient2(Gradient2::new(
                self.initial_limit,
                self.tolerance,
                self.smoothing,
            )),
            Algorithm::Aimd => {
                Limit::Aimd(Aimd::new(self.initial_limit, self.backoff, self.slow_call))
            }
            Algorithm::Vegas => Limit::Vegas(Vegas::new(self.initial_limit)),
        }
    }

    pub(crate) fn bounds(&self) -> Bounds {
        Bounds {
            min: self.min_limit,
            max: self.max_limit,
        }
    }

    pub(crate) fn windows_config(&self) -> Windows {
        Windows {
            min: self.min_window,
            max: self.max_window,
            samples: self.window_samples,
        }
    }
}
