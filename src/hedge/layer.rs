use std::sync::Arc;

use tower_layer::Layer;

use super::{Core, Hedge, HedgeConfig, Shared};
use crate::classify::DefaultClassifier;
use crate::config::ConfigError;
use crate::request::ByClone;
use crate::request::Template;

/// Applies [`Hedge`] to services. See the [module docs](super).
///
/// The latency figures and the budget are created with the layer and shared
/// by every service it wraps and their clones.
#[derive(Debug, Clone)]
pub struct HedgeLayer<R = ByClone, C = DefaultClassifier> {
    core: Arc<Core>,
    cloner: R,
    classifier: C,
}

impl HedgeLayer {
    /// A layer with the hedging `config` describes.
    ///
    /// # Errors
    ///
    /// The first invalid field of `config`, as a [`ConfigError`].
    pub fn new(config: HedgeConfig) -> Result<Self, ConfigError> {
        Ok(HedgeLayer {
            core: Arc::new(Core::new(config.validate()?)),
            cloner: ByClone,
            classifier: DefaultClassifier,
        })
    }
}

impl<R, C> HedgeLayer<R, C> {
    /// Copies requests with `cloner` (a [`CloneRequest`](crate::request::CloneRequest))
    /// instead of `Clone`; a request it maps to `None` is never hedged.
    pub fn clone_requests_with<R2>(self, cloner: R2) -> HedgeLayer<R2, C> {
        HedgeLayer {
            core: self.core,
            cloner,
            classifier: self.classifier,
        }
    }

    /// Judges answers with `classifier` (see [`crate::classify`]): the first
    /// success wins, a failure only when every attempt has failed.
    pub fn classify<C2>(self, classifier: C2) -> HedgeLayer<R, C2> {
        HedgeLayer {
            core: self.core,
            cloner: self.cloner,
            classifier,
        }
    }
}

impl<S: Clone, R: Clone, C: Clone> Layer<S> for HedgeLayer<R, C> {
    type Service = Hedge<S, R, C>;

    fn layer(&self, inner: S) -> Self::Service {
        let shared = Arc::new(Shared {
            core: self.core.clone(),
            cloner: self.cloner.clone(),
            classifier: self.classifier.clone(),
            service: Template::new(&inner),
        });
        Hedge::from_parts(inner, shared)
    }
}
