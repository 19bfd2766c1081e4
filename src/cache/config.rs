use std::sync::Arc;
use std::time::Duration;

use crate::config::{Check, ConfigError};

/// Configuration of a [`CacheLayer`](super::CacheLayer). Checked when the
/// layer is built.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct CacheConfig {
    /// The `service` label of the metrics. Default: `"default"`.
    pub service: String,
    /// How long an entry answers requests without calling the service.
    /// Default: 60 s. At most 1000 years, with `stale_if_error`.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::duration::deserialize")
    )]
    pub ttl: Duration,
    /// How long after `ttl` an entry may still answer when the service
    /// fails. Zero turns stale-if-error off. Default: 5 min.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::duration::deserialize")
    )]
    pub stale_if_error: Duration,
    /// The most entries kept (or the most total weight, with a weigher);
    /// the least used go first. Default: 10 000.
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            service: "default".to_owned(),
            ttl: Duration::from_secs(60),
            stale_if_error: Duration::from_secs(300),
            max_entries: 10_000,
        }
    }
}

impl CacheConfig {
    service_setter!();

    /// Sets [`ttl`](Self::ttl).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`stale_if_error`](Self::stale_if_error).
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// Sets [`max_entries`](Self::max_entries).
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.max_entries = entries;
        self
    }

    pub(crate) fn validate(&self) -> Result<Settings, ConfigError> {
        let check = Check::layer("cache");
        check.duration("ttl", self.ttl)?;
        // moka keeps an entry at most 1000 years.
        const LONGEST: Duration = Duration::from_secs(1000 * 365 * 24 * 3600);
        check.not_longer("ttl", self.ttl, LONGEST, "1000 years")?;
        check.not_longer(
            "stale_if_error",
            self.ttl.saturating_add(self.stale_if_error),
            LONGEST,
            "1000 years with the ttl",
        )?;
        check.nonzero("max_entries", self.max_entries)?;
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
    pub(crate) config: CacheConfig,
}
