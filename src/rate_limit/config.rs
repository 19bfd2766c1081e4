use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::Quota;

use crate::admission::AdmissionEvent;
use crate::config::{Check, ConfigError};
use crate::event::Emitter;

/// A [`RateLimiter`](super::RateLimiter)'s configuration. Checked when the
/// layer is built. See the [module docs](super).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_bulwark::rate_limit::{RateLimitConfig, RateLimitLayer};
///
/// // 100 calls a second, bursts of 20, a call waits up to 50 ms for its turn.
/// let layer = RateLimitLayer::new(
///     RateLimitConfig::default()
///         .service("users")
///         .rate(100, Duration::from_secs(1))
///         .burst(20)
///         .max_wait(Duration::from_millis(50)),
/// )?;
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
pub struct RateLimitConfig {
    /// The `service` label of the metrics and the name in events.
    /// Default: `"default"`.
    pub service: String,
    /// Calls allowed per [`period`](Self::period), evenly spread. Default: 100.
    pub calls: u32,
    /// Default: 1 s.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::duration::deserialize")
    )]
    pub period: Duration,
    /// Calls allowed at once after a quiet spell; `0` means [`calls`](Self::calls).
    /// Default: 0.
    pub burst: u32,
    /// How long a call may wait for its turn; a call that would wait longer
    /// fails at once with [`Overloaded`](crate::error::Overloaded), whose
    /// `retry_after` is its turn. Default: zero (no call waits).
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::duration::deserialize")
    )]
    pub max_wait: Duration,
    /// Keys of a keyed limiter held at once, the least recently used
    /// forgotten past it (a forgotten key starts again with a full burst).
    /// Default: 10,000.
    pub max_keys: usize,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub(crate) events: Emitter<AdmissionEvent>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            service: "default".to_owned(),
            calls: 100,
            period: Duration::from_secs(1),
            burst: 0,
            max_wait: Duration::ZERO,
            max_keys: 10_000,
            events: Emitter::none(),
        }
    }
}

impl RateLimitConfig {
    service_setter!();

    /// Allows `calls` per `period`.
    pub fn rate(mut self, calls: u32, period: Duration) -> Self {
        self.calls = calls;
        self.period = period;
        self
    }

    /// Sets [`burst`](Self::burst).
    pub fn burst(mut self, calls: u32) -> Self {
        self.burst = calls;
        self
    }

    /// Sets [`max_wait`](Self::max_wait).
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// Sets [`max_keys`](Self::max_keys).
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }

    events_setter!();

    /// The quota, once checked.
    pub(crate) fn quota(&self) -> Result<Quota, ConfigError> {
        let check = Check::layer("rate_limit");
        let Some(calls) = NonZeroU32::new(self.calls) else {
            return Err(check.invalid("calls", "a number of calls above zero"));
        };
        check.duration("period", self.period)?;
        check.nonzero("max_keys", self.max_keys as u64)?;
        let interval = self.period / calls.get();
        let quota = Quota::with_period(interval).ok_or_else(|| {
            check.invalid("calls", "at most one call per nanosecond of the period")
        })?;
        let burst = NonZeroU32::new(self.burst).unwrap_or(calls);
        Ok(quota.allow_burst(burst))
    }

    pub(crate) fn service_name(&self) -> Arc<str> {
        Arc::from(self.service.as_str())
    }
}
