//! The `Cache` service.

use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::error::SharedError;
use super::future::ResponseFuture;
use super::store::Store;
use super::{CacheKey, MarkStatus, Wrap, store};
use crate::classify::{Classify, DefaultClassifier};

/// Caches a service's answers. See the [module docs](super).
///
/// `T` and `E` are the inner service's response and error types, named
/// rather than read from `S` so that the compiler can tell this type is
/// `Send` inside an `async` block without proving `S`'s `Service` impl
/// again (which fails for some `BoxError` services, rust-lang/rust#110338).
pub struct Cache<S, Req, K, F, T, E, C = DefaultClassifier, M = Wrap> {
    inner: S,
    key: F,
    classifier: C,
    marker: M,
    store: Arc<Store<K, T, E>>,
    _request: PhantomData<fn(Req)>,
}

impl<S, Req, K, F, T, E, C, M> Cache<S, Req, K, F, T, E, C, M> {
    pub(crate) fn from_parts(
        inner: S,
        key: F,
        classifier: C,
        marker: M,
        store: Arc<Store<K, T, E>>,
    ) -> Self {
        Cache {
            inner,
            key,
            classifier,
            marker,
            store,
            _request: PhantomData,
        }
    }

    /// The total weight stored ([`CacheLayer::weigh_with`](super::CacheLayer::weigh_with)), or the entry
    /// count without a weigher, after pending evictions are applied.
    pub fn weighted_size(&self) -> u64
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
        T: Clone + Send + Sync + 'static,
    {
        self.store.weighted_size()
    }

    /// Entries stored, after pending evictions are applied.
    pub fn entry_count(&self) -> u64
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
        T: Clone + Send + Sync + 'static,
    {
        self.store.entry_count()
    }

    inner_service!();
}

impl<S, Req, K, F, T, E, C, M> Clone for Cache<S, Req, K, F, T, E, C, M>
where
    S: Clone,
    F: Clone,
    C: Clone,
    M: Clone,
{
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
            key: self.key.clone(),
            classifier: self.classifier.clone(),
            marker: self.marker.clone(),
            store: self.store.clone(),
            _request: PhantomData,
        }
    }
}

impl<S, Req, K, F, T, E, C, M> std::fmt::Debug for Cache<S, Req, K, F, T, E, C, M>
where
    S: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, Req, K, F, T, E, C, M> Service<Req> for Cache<S, Req, K, F, T, E, C, M>
where
    S: Service<Req, Response = T, Error = E> + Clone,
    T: Clone + Send + Sync + 'static,
    E: From<SharedError<E>> + Send + Sync + 'static,
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    F: CacheKey<Req, K>,
    C: Classify<T, E> + Clone,
    M: MarkStatus<T> + Clone,
{
    type Response = M::Response;
    type Error = E;
    type Future = ResponseFuture<S, S::Future, Req, K, C, M, T, E>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let marker = self.marker.clone();
        let Some(key) = self.key.key(&req) else {
            return ResponseFuture::bypass(self.inner.call(req), marker);
        };
        let (fresh, stale) = self.store.lookup(&key);
        if let Some(response) = fresh {
            // The inner service was made ready for a call it will not get:
            // a clone takes its place, and what its readiness reserved (a
            // breaker's probe slot, a balancer's endpoint) is given back
            // now rather than held until this service's next miss.
            let fresh_clone = self.inner.clone();
            drop(std::mem::replace(&mut self.inner, fresh_clone));
            return ResponseFuture::hit(response, marker, &self.store);
        }
        match self.store.join_or_lead(&key) {
            store::Role::Waiter(flight) => {
                // The ready service goes with the waiter, which calls it
                // only if the call it waits for is cancelled, and drops it
                // (and its reservation) when done; a clone takes its place.
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::waiter(flight, stale, req, service, marker, self.store.clone())
            }
            store::Role::Leader(flight) => ResponseFuture::leader(
                self.inner.call(req),
                flight,
                key,
                stale,
                self.classifier.clone(),
                marker,
                self.store.clone(),
            ),
        }
    }
}
