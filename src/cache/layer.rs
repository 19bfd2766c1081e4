use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use tower_layer::Layer;
use tower_service::Service;

use super::config::Settings;
use super::store::WeighFn;
use super::{Cache, CacheConfig, Store, Wrap};
use crate::classify::DefaultClassifier;
use crate::config::ConfigError;

/// Applies a [`Cache`] to services. See the [module docs](super).
///
/// Each service the layer wraps gets its own store; clones of that service
/// share it.
pub struct CacheLayer<Req, K, F, C = DefaultClassifier, M = Wrap, W = Unweighted> {
    settings: Settings,
    key: F,
    classifier: C,
    marker: M,
    weigher: W,
    _types: PhantomData<fn(&Req) -> K>,
}

/// Entries are counted one each: the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unweighted;

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
        Self::with_key(config, key)
    }
}

impl<Req, K, F> CacheLayer<Req, K, F> {
    /// A layer caching by `key`, a [`CacheKey`](super::CacheKey) of any kind.
    pub(crate) fn with_key(config: CacheConfig, key: F) -> Result<Self, ConfigError> {
        Ok(CacheLayer {
            settings: config.validate()?,
            key,
            classifier: DefaultClassifier,
            marker: Wrap,
            weigher: Unweighted,
            _types: PhantomData,
        })
    }
}

impl<Req, K, F, C, M, W> CacheLayer<Req, K, F, C, M, W> {
    /// Bounds the store by weight instead of entries: `weigher` gives each
    /// entry's weight (its size in bytes, say), and
    /// [`max_entries`](CacheConfig::max_entries) becomes the most total
    /// weight kept.
    pub fn weigh_with<W2>(self, weigher: W2) -> CacheLayer<Req, K, F, C, M, W2> {
        CacheLayer {
            settings: self.settings,
            key: self.key,
            classifier: self.classifier,
            marker: self.marker,
            weigher,
            _types: PhantomData,
        }
    }
}

impl<Req, K, F, C, M, W> CacheLayer<Req, K, F, C, M, W> {
    /// Stores only what `classifier` calls a success, and serves stale
    /// entries when it calls an answer a failure (see [`crate::classify`]).
    pub fn classify<C2>(self, classifier: C2) -> CacheLayer<Req, K, F, C2, M, W> {
        CacheLayer {
            settings: self.settings,
            key: self.key,
            classifier,
            marker: self.marker,
            weigher: self.weigher,
            _types: PhantomData,
        }
    }

    /// Marks answers with `marker` (see [`MarkStatus`](super::MarkStatus)):
    /// [`Wrap`](super::Wrap) by default.
    pub fn mark_with<M2>(self, marker: M2) -> CacheLayer<Req, K, F, C, M2, W> {
        CacheLayer {
            settings: self.settings,
            key: self.key,
            classifier: self.classifier,
            marker,
            weigher: self.weigher,
            _types: PhantomData,
        }
    }

    /// Answers `http::Response`s as they are, with their
    /// [`CacheStatus`](super::CacheStatus) in their extensions.
    #[cfg(feature = "http")]
    pub fn http_extension(self) -> CacheLayer<Req, K, F, C, super::HttpExtension, W> {
        self.mark_with(super::HttpExtension)
    }
}

impl<Req, K, F: Clone, C: Clone, M: Clone, W: Clone> Clone for CacheLayer<Req, K, F, C, M, W> {
    fn clone(&self) -> Self {
        CacheLayer {
            settings: self.settings.clone(),
            key: self.key.clone(),
            classifier: self.classifier.clone(),
            marker: self.marker.clone(),
            weigher: self.weigher.clone(),
            _types: PhantomData,
        }
    }
}

impl<Req, K, F, C: std::fmt::Debug, M: std::fmt::Debug, W> std::fmt::Debug
    for CacheLayer<Req, K, F, C, M, W>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer")
            .field("settings", &self.settings)
            .field("classifier", &self.classifier)
            .field("marker", &self.marker)
            .finish_non_exhaustive()
    }
}

impl<S, Req, K, F, C, M, W> Layer<S> for CacheLayer<Req, K, F, C, M, W>
where
    S: Service<Req>,
    S::Response: Clone + Send + Sync + 'static,
    K: Hash + Eq + Send + Sync + 'static,
    F: Clone,
    C: Clone,
    M: Clone,
    W: Weigher<K, S::Response> + Clone,
{
    type Service = Cache<S, Req, K, F, S::Response, S::Error, C, M>;

    fn layer(&self, inner: S) -> Self::Service {
        let weigher = self.weigher.clone().into_weigher();
        let store = Arc::new(Store::new(self.settings.clone(), weigher));
        Cache::from_parts(
            inner,
            self.key.clone(),
            self.classifier.clone(),
            self.marker.clone(),
            store,
        )
    }
}

/// How a cache layer weighs entries: [`Unweighted`], or a closure
/// `Fn(&K, &V) -> u32` given to [`CacheLayer::weigh_with`].
pub trait Weigher<K, V> {
    /// The weigher as the store uses it; `None` counts entries.
    #[doc(hidden)]
    fn into_weigher(self) -> Option<WeighFn<K, V>>;
}

impl<K, V> Weigher<K, V> for Unweighted {
    fn into_weigher(self) -> Option<WeighFn<K, V>> {
        None
    }
}

impl<K, V, W> Weigher<K, V> for W
where
    W: Fn(&K, &V) -> u32 + Send + Sync + 'static,
{
    fn into_weigher(self) -> Option<WeighFn<K, V>> {
        Some(Arc::new(self))
    }
}
