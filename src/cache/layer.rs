use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;
use tower_service::Service;

use super::config::Settings;
use super::{Cache, CacheConfig, Store, Wrap};
use crate::classify::DefaultClassifier;
use crate::config::ConfigError;

/// Applies a [`Cache`] to services. See the [module docs](super).
///
/// Each service the layer wraps gets its own store; clones of that service
/// share it.
pub struct CacheLayer<Req, K, F, C = DefaultClassifier, M = Wrap> {
    settings: Settings,
    key: F,
    classifier: C,
    marker: M,
    _types: PhantomData<fn(&Req) -> K>,
}

impl<Req, K, F> CacheLayer<Req, K, F>
where
    F: Fn(&Req) -> Option<K>,
{
    /// A layer caching by `key`: requests it maps to `None` are not cached.
    ///
    /// # Errors
    ///
    /// The first invalid field of `config`, as a [`ConfigError`].
    pub fn new(config: CacheConfig, key: F) -> Result<Self, ConfigError> {
        Ok(CacheLayer {
            settings: config.validate()?,
            key,
            classifier: DefaultClassifier,
            marker: Wrap,
            _types: PhantomData,
        })
    }
}

impl<Req, K, F, C, M> CacheLayer<Req, K, F, C, M> {
    /// Stores only what `classifier` calls a success, and serves stale
    /// entries when it calls an answer a failure (see [`crate::classify`]).
    pub fn classify<C2>(self, classifier: C2) -> CacheLayer<Req, K, F, C2, M> {
        CacheLayer {
            settings: self.settings,
            key: self.key,
            classifier,
            marker: self.marker,
            _types: PhantomData,
        }
    }

    /// Answers `http::Response`s as they are, with their
    /// [`CacheStatus`](super::CacheStatus) in their extensions.
    #[cfg(feature = "http")]
    pub fn http_extension(self) -> CacheLayer<Req, K, F, C, super::HttpExtension> {
        CacheLayer {
            settings: self.settings,
            key: self.key,
            classifier: self.classifier,
            marker: super::HttpExtension,
            _types: PhantomData,
        }
    }
}

impl<Req, K, F: Clone, C: Clone, M: Clone> Clone for CacheLayer<Req, K, F, C, M> {
    fn clone(&self) -> Self {
        CacheLayer {
            settings: self.settings.clone(),
            key: self.key.clone(),
            classifier: self.classifier.clone(),
            marker: self.marker.clone(),
            _types: PhantomData,
        }
    }
}

impl<Req, K, F, C: std::fmt::Debug, M: std::fmt::Debug> std::fmt::Debug
    for CacheLayer<Req, K, F, C, M>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer")
            .field("settings", &self.settings)
            .field("classifier", &self.classifier)
            .field("marker", &self.marker)
            .finish_non_exhaustive()
    }
}

impl<S, Req, K, F, C, M> Layer<S> for CacheLayer<Req, K, F, C, M>
where
    S: Service<Req>,
    S::Response: Clone + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
    F: Clone,
    C: Clone,
    M: Clone,
{
    type Service = Cache<S, Req, K, F, C, M>;

    fn layer(&self, inner: S) -> Self::Service {
        let store = Arc::new(Store::new(self.settings.clone()));
        Cache::from_parts(
            inner,
            self.key.clone(),
            self.classifier.clone(),
            self.marker.clone(),
            store,
        )
    }
}
