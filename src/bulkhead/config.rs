use std::sync::Arc;
use std::time::Duration;

use crate::admission::AdmissionEvent;
use crate::config::{Check, ConfigError};
use crate::event::Emitter;

/// A [`Bulkhead`](super::Bulkhead)'s configuration. See the
/// [module docs](super).
#[derive(Debug, Clone)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct BulkheadConfig {
    /// The `service` label of the metrics and the name in events.
    /// Default: `"default"`.
    pub service: String,
    /// Calls running at once, at most. Default: 64.
    pub max_concurrent_calls: usize,
    /// Calls waiting for a place, at most; past it a call fails at once.
    /// Default: 0 (no call waits).
    pub max_queue: usize,
    /// How long a call waits for a place, at most. Default: zero; must not
    /// be zero when `max_queue` is not.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::duration::deserialize")
    )]
    pub max_wait: Duration,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub(crate) events: Emitter<AdmissionEvent>,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        BulkheadConfig {
            service: "default".to_owned(),
            max_concurrent_calls: 64,
            max_queue: 0,
            max_wait: Duration::ZERO,
            events: Emitter::none(),
        }
    }
}

impl BulkheadConfig {
    service_setter!();

    /// Sets [`max_concurrent_calls`](Self::max_concurrent_calls).
    pub fn max_concurrent_calls(mut self, calls: usize) -> Self {
        self.max_concurrent_calls = calls;
        self
    }

    /// Lets up to `calls` wait for a place, each for at most `wait`.
    pub fn queue(mut self, calls: usize, wait: Duration) -> Self {
        self.max_queue = calls;
        self.max_wait = wait;
        self
    }

    events_setter!();

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let check = Check::layer("bulkhead");
        check.nonzero("max_concurrent_calls", self.max_concurrent_calls as u64)?;
        if self.max_queue > 0 {
            check.duration("max_wait", self.max_wait)?;
        }
        Ok(())
    }

    pub(crate) fn service_name(&self) -> Arc<str> {
        Arc::from(self.service.as_str())
    }
}
