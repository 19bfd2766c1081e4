use std::sync::Arc;

use tower_layer::Layer;

use super::config::AdaptiveConfig;
use super::learner::Learner;
use super::service::AdaptiveConcurrency;
use crate::admission::places::Places;
use crate::admission::telemetry::Telemetry;
use crate::classify::DefaultClassifier;
use crate::config::ConfigError;

/// Applies an [`AdaptiveConcurrency`] limit to services; every service it
/// wraps shares its places and its limit. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct AdaptiveConcurrencyLayer<C = DefaultClassifier> {
    places: Arc<Places<Learner>>,
    classifier: C,
}

impl AdaptiveConcurrencyLayer {
    /// A layer with `config`'s algorithm and bounds.
    ///
    /// # Errors
    ///
    /// A limit, window or factor out of range, as a [`ConfigError`] naming
    /// the field.
    pub fn new(config: AdaptiveConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let telemetry = Telemetry::new(
            config.service_name(),
            "adaptive_concurrency",
            config.events.clone(),
        );
        let learner = Learner::new(config.limit(), config.bounds(), config.windows_config());
        Ok(AdaptiveConcurrencyLayer {
            places: Arc::new(Places::new(
                config.initial_limit,
                0,
                std::time::Duration::ZERO,
                telemetry,
                learner,
            )),
            classifier: DefaultClassifier,
        })
    }
}

impl<C> AdaptiveConcurrencyLayer<C> {
    /// Judges results with `classifier` (see [`crate::classify`]): a
    /// success's latency teaches the limit, a failure counts as a drop (AIMD
    /// and Vegas back off), an ignored result teaches nothing.
    pub fn classify<C2>(self, classifier: C2) -> AdaptiveConcurrencyLayer<C2> {
        AdaptiveConcurrencyLayer {
            places: self.places,
            classifier,
        }
    }

    #[cfg(feature = "stack")]
    pub(crate) fn places(&self) -> &Arc<Places<Learner>> {
        &self.places
    }

    #[cfg(feature = "stack")]
    pub(crate) fn classifier(&self) -> &C {
        &self.classifier
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.places.limit()
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.places.in_flight()
    }
}

impl<S, C: Clone> Layer<S> for AdaptiveConcurrencyLayer<C> {
    type Service = AdaptiveConcurrency<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveConcurrency::new(inner, self.places.clone(), self.classifier.clone())
    }
}
