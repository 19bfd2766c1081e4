//! A breaker per key of the requests.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use super::error::CircuitOpen;
use super::future::ResponseFuture;
use super::lanes::Lane;
use super::service::{Call, Reservation};
use super::state::{Breaker, Permit};
use super::{CircuitBreakerHandle, CircuitState};
use crate::classify::Classify;
use crate::config::{Check, ConfigError};
use crate::fallback::{Fallback, Immediate};
use crate::key::{Keyer, Registry, key_of};

/// The breakers of a [`PerKeyLayer`]: one per key, at most `max_keys`
/// (least recently used evicted), and the layer's own for requests without
/// a key.
struct Breakers {
    keyless: Lane,
    per_key: Registry<u64, Lane>,
    hasher: RandomState,
}

impl Breakers {
    /// The breaker of `req`, made on the key's first request.
    #[inline]
    fn of<Req, Kr: Keyer<Req>>(&self, keyer: &Kr, req: &Req) -> Lane {
        let Some(key) = key_of(keyer, &self.hasher, req) else {
            return self.keyless.clone();
        };
        self.per_key.get_or_make(
            &key,
            || Some(keyer.label(req)),
            |label| {
                let mut settings = self.keyless.settings().clone();
                settings.key = Some(label);
                Lane::single(Arc::new(Breaker::new(settings)))
            },
        )
    }
}

impl fmt::Debug for Breakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breakers").finish_non_exhaustive()
    }
}

/// One circuit breaker per key of the requests (per route, per tenant,
/// ...), at most `max_keys` of them; see
/// [`CircuitBreakerLayer::per_key`](super::CircuitBreakerLayer::per_key)
/// and [`crate::key`].
///
/// A request's breaker is known only once the request is: the breaker
/// decides in `call`, not in `poll_ready`. A request it rejects gets the
/// fallback's answer ([`NoFallback`](crate::fallback::NoFallback)'s
/// [`CircuitOpen`], or [`Respond`](crate::server::Respond)'s 503), and the
/// inner service's readiness is given back (a clone takes its place), so
/// the inner service must be `Clone`, as axum's and tonic's routes are.
#[derive(Debug)]
pub struct PerKey<S, Kr, C, F> {
    inner: S,
    keyer: Kr,
    breakers: Arc<Breakers>,
    classifier: C,
    fallback: F,
}

impl<S, Kr, C, F> PerKey<S, Kr, C, F> {
    inner_service!();
}

impl<S: Clone, Kr: Clone, C: Clone, F: Clone> Clone for PerKey<S, Kr, C, F> {
    fn clone(&self) -> Self {
        PerKey {
            inner: self.inner.clone(),
            keyer: self.keyer.clone(),
            breakers: self.breakers.clone(),
            classifier: self.classifier.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

impl<S, Kr, C, F, Req> Service<Req> for PerKey<S, Kr, C, F>
where
    S: Service<Req> + Clone,
    S::Error: Into<crate::BoxError> + 'static,
    Kr: Keyer<Req>,
    C: Classify<S::Response, S::Error> + Clone,
    F: Fallback<Req, S::Response, S::Error> + Immediate,
{
    type Response = S::Response;
    type Error = F::Error<S::Error>;
    type Future = ResponseFuture<S::Future, C, F::Future, F>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(F::inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let breaker = self.breakers.of(&self.keyer, &req);
        match breaker.acquire(crate::clock::now) {
            permit @ Permit::Rejected { .. } => {
                let retry_after = permit.retry_after();
                breaker.on_rejected(retry_after);
                // The inner service was made ready for a call it will not
                // get: a clone takes its place, and what its readiness
                // reserved is given back now.
                let fresh = self.inner.clone();
                drop(std::mem::replace(&mut self.inner, fresh));
                ResponseFuture::rejected(self.fallback.call(req, CircuitOpen::new(retry_after)))
            }
            permit => {
                let start = breaker.times_calls().then(crate::clock::now);
                let call = Call::new(Reservation::holding(breaker, permit), start);
                ResponseFuture::called(self.inner.call(req), self.classifier.clone(), call)
            }
        }
    }
}

/// Applies [`PerKey`]: a circuit breaker per key of the requests. Made by
/// [`CircuitBreakerLayer::per_key`](super::CircuitBreakerLayer::per_key).
///
/// The breakers are the layer's: every service it wraps (every route of an
/// axum `Router`) and their clones share them, one per key.
#[derive(Debug)]
pub struct PerKeyLayer<Kr, C, F> {
    keyer: Kr,
    breakers: Arc<Breakers>,
    classifier: C,
    fallback: F,
}

impl<Kr, C, F> PerKeyLayer<Kr, C, F> {
    pub(super) fn new(
        keyless: Arc<Breaker>,
        keyer: Kr,
        max_keys: usize,
        classifier: C,
        fallback: F,
    ) -> Result<Self, ConfigError> {
        Check::layer("circuit breaker").nonzero("max_keys", max_keys as u64)?;
        Ok(PerKeyLayer {
            keyer,
            breakers: Arc::new(Breakers {
                keyless: Lane::single(keyless),
                per_key: Registry::new(max_keys),
                hasher: RandomState::new(),
            }),
            classifier,
            fallback,
        })
    }

    /// A handle to each key's breaker that is kept now, with the key's
    /// label, in the labels' order.
    pub fn handles(&self) -> Vec<(Arc<str>, CircuitBreakerHandle)> {
        let mut handles: Vec<_> = self
            .breakers
            .per_key
            .entries()
            .into_iter()
            .map(|(_, breaker)| {
                let label = breaker
                    .settings()
                    .key
                    .clone()
                    .unwrap_or_else(|| Arc::from(""));
                (label, CircuitBreakerHandle::new(breaker.shared().clone()))
            })
            .collect();
        handles.sort_by(|a, b| a.0.cmp(&b.0));
        handles
    }

    /// The state of the breaker of the key labelled `label`, if it is kept.
    pub fn state_of(&self, label: &str) -> Option<CircuitState> {
        self.handles()
            .into_iter()
            .find(|(l, _)| &**l == label)
            .map(|(_, handle)| handle.state())
    }

    /// A handle to the breaker of requests without a key.
    pub fn keyless(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(self.breakers.keyless.shared().clone())
    }
}

impl<Kr: Clone, C: Clone, F: Clone> Clone for PerKeyLayer<Kr, C, F> {
    fn clone(&self) -> Self {
        PerKeyLayer {
            keyer: self.keyer.clone(),
            breakers: self.breakers.clone(),
            classifier: self.classifier.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

impl<S, Kr: Clone, C: Clone, F: Clone> Layer<S> for PerKeyLayer<Kr, C, F> {
    type Service = PerKey<S, Kr, C, F>;

    fn layer(&self, inner: S) -> Self::Service {
        PerKey {
            inner,
            keyer: self.keyer.clone(),
            breakers: self.breakers.clone(),
            classifier: self.classifier.clone(),
            fallback: self.fallback.clone(),
        }
    }
}
