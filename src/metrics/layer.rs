use std::sync::Arc;

use tower_layer::Layer;

use super::{Handles, Metrics};
use crate::classify::DefaultClassifier;

/// Applies [`Metrics`] to services. See the [module docs](super).
///
/// The metric handles are resolved here, once; every service the layer
/// wraps and their clones share them.
#[derive(Debug, Clone)]
pub struct MetricsLayer<C = DefaultClassifier> {
    handles: Arc<Handles>,
    classifier: C,
}

impl MetricsLayer {
    /// A layer reporting under the `service` label `service`.
    pub fn new(service: impl Into<String>) -> Self {
        MetricsLayer {
            handles: Arc::new(Handles::new(Arc::from(service.into()))),
            classifier: DefaultClassifier,
        }
    }
}

impl<C> MetricsLayer<C> {
    /// Sets the `outcome` label with `classifier` (see [`crate::classify`]).
    pub fn classify<C2>(self, classifier: C2) -> MetricsLayer<C2> {
        MetricsLayer {
            handles: self.handles,
            classifier,
        }
    }
}

impl<S, C: Clone> Layer<S> for MetricsLayer<C> {
    type Service = Metrics<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics::from_parts(inner, self.handles.clone(), self.classifier.clone())
    }
}
