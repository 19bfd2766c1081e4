use std::fmt;
use std::hash::Hash;

use tower::discover::Discover;
use tower_layer::Layer;

use super::config::{BalanceConfig, Settings};
use super::service::LoadBalance;
use crate::BoxError;
use crate::classify::DefaultClassifier;
use crate::config::ConfigError;

/// Builds a [`LoadBalance`] over a [`Discover`] stream of endpoints. See
/// the [module docs](super).
///
/// For a fixed list of endpoints, use [`LoadBalance::new`] or
/// [`LoadBalance::weighted`], or give the layer
/// `tower::discover::ServiceList`.
#[derive(Debug, Clone)]
pub struct LoadBalanceLayer<C = DefaultClassifier> {
    settings: Settings,
    classifier: C,
}

impl LoadBalanceLayer {
    /// A layer with the balancer `config` describes.
    ///
    /// # Errors
    ///
    /// The first invalid field of `config`, as a [`ConfigError`].
    pub fn new(config: BalanceConfig) -> Result<Self, ConfigError> {
        Ok(LoadBalanceLayer {
            settings: config.validate()?,
            classifier: DefaultClassifier,
        })
    }
}

impl<C> LoadBalanceLayer<C> {
    /// Judges results with `classifier` for outlier detection.
    pub fn classify<C2>(self, classifier: C2) -> LoadBalanceLayer<C2> {
        LoadBalanceLayer {
            settings: self.settings,
            classifier,
        }
    }
}

impl<D, C> Layer<D> for LoadBalanceLayer<C>
where
    D: Discover + Send + 'static,
    D::Key: Clone + Eq + Hash + fmt::Display + Send + Sync + 'static,
    D::Service: Clone + Send + Sync + 'static,
    D::Error: Into<BoxError>,
    C: Clone,
{
    type Service = LoadBalance<D::Key, D::Service, C>;

    fn layer(&self, discover: D) -> Self::Service {
        LoadBalance::from_discover(self.settings.clone(), discover)
            .classify(self.classifier.clone())
    }
}
