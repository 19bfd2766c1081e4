use std::sync::Arc;

use tower_layer::Layer;

use super::{Metrics, Unlabelled};
use crate::classify::DefaultClassifier;

/// Applies [`Metrics`] to services. See the [module docs](super).
///
/// The metric handles are resolved here, once (with labels per route, the
/// first time each label set is seen); every service the layer wraps and
/// their clones share them.
#[derive(Debug, Clone)]
pub struct MetricsLayer<C = DefaultClassifier, L = Unlabelled> {
    labels: L,
    classifier: C,
}

impl MetricsLayer {
    /// A layer reporting under the `service` label `service`.
    pub fn new(service: impl Into<String>) -> Self {
        MetricsLayer {
            labels: Unlabelled::new(Arc::from(service.into())),
            classifier: DefaultClassifier,
        }
    }
}

impl<C, L> MetricsLayer<C, L> {
    /// Sets the `outcome` label with `classifier` (see [`crate::classify`]).
    pub fn classify<C2>(self, classifier: C2) -> MetricsLayer<C2, L> {
        MetricsLayer {
            labels: self.labels,
            classifier,
        }
    }
}

#[cfg(all(feature = "keyed", feature = "http"))]
impl<C> MetricsLayer<C> {
    /// Adds the `route`, `method` and `status_class` labels `labels` asks
    /// for, on HTTP requests and responses (see the [module docs](super)).
    ///
    /// # Errors
    ///
    /// A `max_keys` of zero, as a [`ConfigError`](crate::ConfigError).
    pub fn labels<Kr>(
        self,
        labels: super::HttpLabels<Kr>,
    ) -> Result<MetricsLayer<C, super::labels::Labelled<Kr>>, crate::ConfigError> {
        Ok(MetricsLayer {
            labels: labels.build(self.labels.service())?,
            classifier: self.classifier,
        })
    }
}

impl<S, C: Clone, L: Clone> Layer<S> for MetricsLayer<C, L> {
    type Service = Metrics<S, C, L>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics::from_parts(inner, self.labels.clone(), self.classifier.clone())
    }
}
