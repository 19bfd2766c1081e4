use std::sync::Arc;

use tower_layer::Layer;

use super::{ByClone, Hedge, HedgeConfig, Shared};
use crate::config::ConfigError;

/// Applies [`Hedge`] to services. See the [module docs](super).
///
/// The latency figures and the budget are created with the layer and shared
/// by every service it wraps and their clones.
#[derive(Debug, Clone)]
pub struct HedgeLayer<R = ByClone> {
    shared: Arc<Shared>,
    cloner: R,
}

impl HedgeLayer {
    /// A layer with the hedging `config` describes.
    ///
    /// # Errors
    ///
    /// The first invalid field of `config`, as a [`ConfigError`].
    pub fn new(config: HedgeConfig) -> Result<Self, ConfigError> {
        Ok(HedgeLayer {
            shared: Arc::new(Shared::new(config.validate()?)),
            cloner: ByClone,
        })
    }
}

impl<R> HedgeLayer<R> {
    /// Copies requests with `cloner` (a [`CloneRequest`](super::CloneRequest))
    /// instead of `Clone`; a request it maps to `None` is never hedged.
    pub fn clone_requests_with<R2>(self, cloner: R2) -> HedgeLayer<R2> {
        HedgeLayer {
            shared: self.shared,
            cloner,
        }
    }
}

impl<S, R: Clone> Layer<S> for HedgeLayer<R> {
    type Service = Hedge<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::from_parts(inner, self.shared.clone(), self.cloner.clone())
    }
}
