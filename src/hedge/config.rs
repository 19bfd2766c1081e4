use std::sync::Arc;
use std::time::Duration;

use crate::budget::BudgetConfig;
use crate::config::{Check, ConfigError};

/// When the second attempt is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(try_from = "crate::de::HedgeDelayFile")
)]
pub enum HedgeDelay {
    /// When the first attempt takes longer than this percentile, in (0, 1],
    /// of recent calls' latencies. No hedge until enough calls were seen.
    Percentile(f64),
    /// When the first attempt takes longer than this.
    Fixed(Duration),
}

/// Configuration of a [`HedgeLayer`](super::HedgeLayer). Checked when the
/// layer is built.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct HedgeConfig {
    /// The `service` label of the metrics. Default: `"default"`.
    pub service: String,
    /// Default: the 95th percentile.
    pub delay: HedgeDelay,
    /// Latencies seen before a percentile delay is used. Default: 100.
    pub minimum_samples: u64,
    /// The budget of hedges. Default: 5 % of requests plus 1 a second, 10
    /// saved up.
    pub budget: BudgetConfig,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        HedgeConfig {
            service: "default".to_owned(),
            delay: HedgeDelay::Percentile(0.95),
            minimum_samples: 100,
            budget: BudgetConfig::new(0.05, 1, 10),
        }
    }
}

impl HedgeConfig {
    service_setter!();

    /// Sets [`delay`](Self::delay).
    pub fn delay(mut self, delay: HedgeDelay) -> Self {
        self.delay = delay;
        self
    }

    /// Sets [`minimum_samples`](Self::minimum_samples).
    pub fn minimum_samples(mut self, samples: u64) -> Self {
        self.minimum_samples = samples;
        self
    }

    /// Sets [`budget`](Self::budget): `ratio` per first attempt,
    /// `min_per_second`, and `max` saved up.
    pub fn budget(mut self, ratio: f64, min_per_second: u32, max: u32) -> Self {
        self.budget = BudgetConfig::new(ratio, min_per_second, max);
        self
    }

    pub(crate) fn validate(&self) -> Result<Settings, ConfigError> {
        let check = Check::layer("hedge");
        match self.delay {
            HedgeDelay::Percentile(p) => check.rate("delay.percentile", p)?,
            HedgeDelay::Fixed(d) => check.duration("delay.fixed", d)?,
        }
        check.nonzero("minimum_samples", self.minimum_samples)?;
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
    pub(crate) config: HedgeConfig,
}
