use std::sync::Arc;
use std::time::Duration;

use super::RetryEvent;
use crate::budget::BudgetConfig;
use crate::config::{Check, ConfigError};
use crate::event::Emitter;

/// Configuration of a [`RetryLayer`](super::RetryLayer). Checked when the
/// layer is built.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_bulwark::retry::{RetryConfig, RetryLayer};
///
/// let layer = RetryLayer::new(
///     RetryConfig::default()
///         .service("users")
///         .max_attempts(3)
///         .backoff(Duration::from_millis(50), Duration::from_secs(2))
///         .budget(0.1, 5, 50),
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
pub struct RetryConfig {
    /// The `service` label of the metrics and the name in events.
    /// Default: `"default"`.
    pub service: String,
    /// Attempts per request, the first included; 1 turns retries off.
    /// Default: 3.
    pub max_attempts: u32,
    /// Retry `n` waits a random time in [0, min(`backoff_max`,
    /// `backoff_base` × 2ⁿ⁻¹)) ("full jitter"). Default: 25 ms.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::duration::deserialize")
    )]
    pub backoff_base: Duration,
    /// The longest wait before a retry, also the cap on a server's
    /// `Retry-After`. Default: 1 s.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::duration::deserialize")
    )]
    pub backoff_max: Duration,
    /// The budget of retries. Default: 20 % of first attempts plus 10 a
    /// second, 100 saved up (Finagle's and Linkerd's defaults).
    pub budget: BudgetConfig,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub(crate) events: Emitter<RetryEvent>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            service: "default".to_owned(),
            max_attempts: 3,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_secs(1),
            budget: BudgetConfig::new(0.2, 10, 100),
            events: Emitter::none(),
        }
    }
}

impl RetryConfig {
    service_setter!();

    /// Sets [`max_attempts`](Self::max_attempts).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets [`backoff_base`](Self::backoff_base) and
    /// [`backoff_max`](Self::backoff_max).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// Sets [`budget`](Self::budget): `ratio` per first attempt,
    /// `min_per_second`, and `max` saved up.
    pub fn budget(mut self, ratio: f64, min_per_second: u32, max: u32) -> Self {
        self.budget = BudgetConfig::new(ratio, min_per_second, max);
        self
    }

    events_setter!();

    pub(crate) fn validate(&self) -> Result<Settings, ConfigError> {
        let check = Check::layer("retry");
        check.nonzero("max_attempts", self.max_attempts.into())?;
        check.duration("backoff_base", self.backoff_base)?;
        check.not_smaller(
            "backoff_max",
            self.backoff_max,
            "backoff_base",
            self.backoff_base,
        )?;
        self.budget.validate(check)?;
        Ok(Settings {
            service: Arc::from(self.service.as_str()),
            config: self.clone(),
        })
    }
}

/// A checked configuration, and the service's name as the layer's events
/// and metrics share it.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) service: Arc<str>,
    pub(crate) config: RetryConfig,
}

/// The wait before retry `retry` (1 for the first retry): `unit` (a random
/// number in [0, 1)) times min(`max`, `base` × 2^(retry − 1)).
pub(crate) fn backoff(base: Duration, max: Duration, retry: u32, unit: f64) -> Duration {
    let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
    let ceiling = (base.as_secs_f64() * 2f64.powi(exponent)).min(max.as_secs_f64());
    Duration::try_from_secs_f64(ceiling * unit.clamp(0.0, 1.0)).unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn backoff_is_within_zero_and_the_capped_exponential(
            base_ms in 1u64..1_000,
            extra_ms in 0u64..10_000,
            retry in 1u32..64,
            unit in 0.0f64..1.0,
        ) {
            let base = Duration::from_millis(base_ms);
            let max = base + Duration::from_millis(extra_ms);
            let wait = backoff(base, max, retry, unit);
            let ceiling = base.saturating_mul(1 << (retry - 1).min(31)).min(max);
            prop_assert!(wait <= ceiling, "{wait:?} > {ceiling:?}");
            prop_assert_eq!(backoff(base, max, retry, 0.0), Duration::ZERO);
        }
    }
}
