use std::sync::Arc;

use tower_layer::Layer;

use super::lanes::Lanes;
use super::state::Breaker;
use super::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerHandle};
use crate::classify::DefaultClassifier;
use crate::config::ConfigError;
use crate::fallback::{NoFallback, WithFallback};

/// Applies a [`CircuitBreaker`] to services. See the [module docs](super).
///
/// The breaker's state is created with the layer: every service this layer
/// wraps, and every clone of those, shares that one breaker. Build one layer
/// per downstream service you want to protect separately.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<C = DefaultClassifier, F = NoFallback> {
    breaker: Lanes,
    classifier: C,
    fallback: F,
}

impl CircuitBreakerLayer {
    /// A layer with the breaker `config` describes; `Err` is a failure
    /// ([`DefaultClassifier`]) and rejected calls fail with
    /// [`CircuitOpen`](super::error::CircuitOpen).
    ///
    /// # Errors
    ///
    /// The first invalid field of `config`, as a [`ConfigError`].
    pub fn new(config: CircuitBreakerConfig) -> Result<Self, ConfigError> {
        Ok(CircuitBreakerLayer {
            breaker: Lanes::new(Arc::new(Breaker::new(config.validate()?))),
            classifier: DefaultClassifier,
            fallback: NoFallback,
        })
    }
}

impl<C, F> CircuitBreakerLayer<C, F> {
    /// Judges results with `classifier` (see [`crate::classify`]).
    pub fn classify<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2, F> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classifier,
            fallback: self.fallback,
        }
    }

    /// Sends rejected calls to `fallback` instead of failing them (see
    /// [`crate::fallback`]).
    pub fn fallback<G>(self, fallback: G) -> CircuitBreakerLayer<C, WithFallback<G>> {
        self.with_fallback(WithFallback::new(fallback))
    }

    /// Answers rejected calls by itself, on a server: with a 503 and a
    /// `Retry-After` of the breaker's remaining wait (whole seconds,
    /// rounded up), or a gRPC `UNAVAILABLE`; the inner service's error type
    /// is kept (axum's `Infallible`). See [`crate::server`].
    #[cfg(feature = "http")]
    pub fn respond<P>(
        self,
        respond: crate::server::Respond<P>,
    ) -> CircuitBreakerLayer<C, crate::server::Respond<P>> {
        self.with_fallback(respond)
    }

    /// Sends rejected calls to `fallback`, a [`Fallback`](crate::fallback::Fallback)
    /// of any kind.
    pub(crate) fn with_fallback<G>(self, fallback: G) -> CircuitBreakerLayer<C, G> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classifier: self.classifier,
            fallback,
        }
    }

    /// A breaker per key of the requests, given by `keyer` (a closure
    /// `Fn(&Req) -> Option<K>`, or [`ByRoute`](crate::key::ByRoute) for
    /// axum's routes), instead of one for all: a failing route opens its
    /// own breaker, and the others keep answering. At most `max_keys`
    /// breakers are kept (least recently used evicted; see
    /// [`crate::key`]); requests without a key share this layer's breaker.
    /// Each key's breaker reports its metrics with a `key` label and its
    /// events with the key.
    ///
    /// The fallback must answer at once: [`NoFallback`] or
    /// [`Respond`](crate::server::Respond).
    ///
    /// # Errors
    ///
    /// A `max_keys` of zero, as a [`ConfigError`] naming `max_keys`.
    #[cfg(feature = "keyed")]
    pub fn per_key<Kr>(
        self,
        keyer: Kr,
        max_keys: usize,
    ) -> Result<super::PerKeyLayer<Kr, C, F>, ConfigError> {
        super::PerKeyLayer::new(
            self.breaker.shared().clone(),
            keyer,
            max_keys,
            self.classifier,
            self.fallback,
        )
    }

    /// A handle to read and steer the breaker this layer shares.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(self.breaker.shared().clone())
    }
}

impl<S, C: Clone, F: Clone> Layer<S> for CircuitBreakerLayer<C, F> {
    type Service = CircuitBreaker<S, C, F>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::from_parts(
            inner,
            self.breaker.clone(),
            self.classifier.clone(),
            self.fallback.clone(),
        )
    }
}
