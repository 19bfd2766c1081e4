use std::sync::Arc;

use tower_layer::Layer;

use super::config::BulkheadConfig;
use super::service::Bulkhead;
use crate::admission::places::Places;
use crate::admission::telemetry::Telemetry;
use crate::config::ConfigError;

/// Applies a [`Bulkhead`] to services; every service it wraps shares its
/// places. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    places: Arc<Places>,
}

impl BulkheadLayer {
    /// A layer with `config`'s cap and queue.
    ///
    /// # Errors
    ///
    /// A zero `max_concurrent_calls`, or a zero `max_wait` with a queue,
    /// as a [`ConfigError`] naming the field.
    pub fn new(config: BulkheadConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let telemetry = Telemetry::new(config.service_name(), "bulkhead", config.events.clone());
        Ok(BulkheadLayer {
            places: Arc::new(Places::new(
                config.max_concurrent_calls,
                config.max_queue,
                config.max_wait,
                telemetry,
                (),
            )),
        })
    }

    #[cfg(feature = "stack")]
    pub(crate) fn places(&self) -> &Arc<Places> {
        &self.places
    }

    /// The cap on calls running at once.
    pub fn limit(&self) -> usize {
        self.places.limit()
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.places.in_flight()
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = Bulkhead<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead::new(inner, self.places.clone())
    }
}
