use std::sync::Arc;
use std::time::Duration;

use crate::config::{Check, ConfigError};

/// When the second attempt is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
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
pub struct HedgeConfig {
    /// The `service` label of the metrics. Default: `"default"`.
    pub service: String,
    /// Default: the 95th percentile.
    pub delay: HedgeDelay,
    /// Latencies seen before a percentile delay is used. Default: 100.
    pub minimum_samples: u64,
    /// Hedges allowed per request, in [0, 1]. Default: 0.05.
    pub budget_ratio: f64,
    /// Hedges allowed per second whatever the traffic. Default: 1.
    pub budget_min_per_second: u32,
    /// Hedges that can be saved up (the budget starts full). Default: 10.
    pub budget_max: u32,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        HedgeConfig {
            service: "default".to_owned(),
            delay: HedgeDelay::Percentile(0.95),
            minimum_samples: 100,
            budget_ratio: 0.05,
            budget_min_per_second: 1,
            budget_max: 10,
        }
    }
}

impl HedgeConfig {
    /// Sets [`service`](Self::service).
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.service = name.into();
        self
    }

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

    /// Sets [`budget_ratio`](Self::budget_ratio),
    /// [`budget_min_per_second`](Self::budget_min_per_second) and
    /// [`budget_max`](Self::budget_max).
    pub fn budget(mut self, ratio: f64, min_per_second: u32, max: u32) -> Self {
        self.budget_ratio = ratio;
        self.budget_min_per_second = min_per_second;
        self.budget_max = max;
        self
    }

    pub(crate) fn validate(&self) -> Result<Settings, ConfigError> {
        let check = Check::layer("hedge");
        match self.delay {
            HedgeDelay::Percentile(p) => check.rate("delay.percentile", p)?,
            HedgeDelay::Fixed(d) => check.duration("delay.fixed", d)?,
        }
        check.nonzero("minimum_samples", self.minimum_samples)?;
        check.ratio("budget_ratio", self.budget_ratio)?;
        check.nonzero("budget_max", self.budget_max.into())?;
        Ok(Settings {
            service: Arc::from(self.service.as_str()),
            delay: self.delay,
            minimum_samples: self.minimum_samples,
            budget: (
                self.budget_ratio,
                self.budget_min_per_second,
                self.budget_max,
            ),
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) service: Arc<str>,
    pub(crate) delay: HedgeDelay,
    pub(crate) minimum_samples: u64,
    pub(crate) budget: (f64, u32, u32),
}
