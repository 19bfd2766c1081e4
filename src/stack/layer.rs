//! The layer, and the service it makes.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tower::discover::{Change, Discover};
use tower_layer::Layer;
use tower_service::Service;

use super::admission::{Admission, AdmissionLayers};
use super::answer::{
    Answer, Bottom, BoxErrors, CacheJudge, Copier, Hint, Judge, MarkAnswer, SharedKey, Weighing,
};
use super::builder::ResilienceBuilder;
use super::future::ResponseFuture;
use super::optional::{Optional, maybe};
use super::profile::{Plain, Profile};
use super::{NoCache, ResilienceConfig};
use crate::BoxError;
use crate::balance::{BalanceConfig, LoadBalance};
use crate::cache::{Cache, CacheLayer};
use crate::circuit_breaker::{CircuitBreaker, CircuitBreakerHandle, CircuitBreakerLayer};
use crate::classify::{Classify, DefaultClassifier};
use crate::config::ConfigError;
use crate::fallback::OptionalFallback;
use crate::hedge::{Hedge, HedgeLayer};
use crate::metrics::{Metrics, MetricsLayer};
use crate::retry::{Retry, RetryLayer};
use crate::timeout::{Timeout, TimeoutLayer};

type Timed<S> = Optional<Timeout<Bottom<S>>, Bottom<S>>;
type Hedged<S, Req, C> = Optional<Hedge<Timed<S>, Copier<Req>, Judge<C>>, Timed<S>>;
pub(super) type Fallback<Req, Res> = OptionalFallback<Req, Answer<Res>>;
type Guarded<S, Req, Res, C> =
    Optional<CircuitBreaker<Hedged<S, Req, C>, Judge<C>, Fallback<Req, Res>>, Hedged<S, Req, C>>;
type Retried<S, Req, Res, C> = Optional<
    Retry<Guarded<S, Req, Res, C>, Judge<C>, Copier<Req>, Hint<Res>>,
    Guarded<S, Req, Res, C>,
>;
/// Always there, passing calls straight through when no admission section
/// is on. An `Either` would hold the whole stack beneath twice (a test of
/// the stack took 3 min 23 s to compile instead of 1 min 10 s) and save
/// little: either way the stack's future is moved once more per call.
type Admitted<T, C> = Admission<T, Judge<C>>;
type Cached<S, Req, Res, K, C> = Optional<
    Cache<
        Admitted<Retried<S, Req, Res, C>, C>,
        Req,
        K,
        SharedKey<Req, K>,
        Answer<Res>,
        BoxError,
        CacheJudge<C, Res>,
        MarkAnswer,
    >,
    Admitted<Retried<S, Req, Res, C>, C>,
>;
type Measured<T, C> = Optional<Metrics<T, Judge<C>>, T>;

/// The cache layer of a stack whose requests are cached under keys `K`.
pub(super) type StackCache<Req, Res, K, C> =
    CacheLayer<Req, K, SharedKey<Req, K>, CacheJudge<C, Res>, MarkAnswer, Weighing<K, Res>>;
/// The retry layer of a stack.
pub(super) type StackRetry<Req, Res, C> = RetryLayer<Judge<C>, Copier<Req>, Hint<Res>>;
/// The breaker layer of a stack.
pub(super) type StackBreaker<Req, Res, C> = CircuitBreakerLayer<Judge<C>, Fallback<Req, Res>>;
/// The hedge layer of a stack.
pub(super) type StackHedge<Req, C> = HedgeLayer<Copier<Req>, Judge<C>>;

/// The service a [`ResilienceLayer`] makes of `S`: what to write when you
/// store it in a struct of your own. `K` is the cache key's type
/// ([`NoCache`] without a cache), `C` the classifier and `P` the
/// [`Profile`].
pub type ResilienceService<S, Req, C = DefaultClassifier, K = NoCache, P = Plain> =
    <ResilienceLayer<Req, <S as Service<Req>>::Response, C, K, P> as Layer<S>>::Service;

/// The endpoints of a stack's balancer: services keyed by `EK`, their
/// errors boxed so that one classifier judges every layer.
pub type Endpoints<EK, ES, C> = LoadBalance<EK, BoxErrors<ES>, C>;

/// The service [`ResilienceLayer::balance`] and
/// [`ResilienceLayer::discover`] make: the stack over a [`LoadBalance`] of
/// endpoints of type `ES` keyed by `EK`.
pub type BalancedService<EK, ES, Req, C = DefaultClassifier, K = NoCache, P = Plain> =
    <ResilienceLayer<Req, <ES as Service<Req>>::Response, C, K, P> as Layer<
        Endpoints<EK, ES, C>,
    >>::Service;

/// Every layer of the crate in the recommended order, from one
/// [`ResilienceConfig`]. See the [module docs](super).
///
/// Made by [`ResilienceLayer::builder`] (or [`ResilienceLayer::new`] when
/// the configuration needs no code). Wrap one service with
/// [`layer`](Layer::layer), or many instances with
/// [`balance`](Self::balance) or [`discover`](Self::discover).
///
/// `Req` and `Res` are the wrapped service's request and response types,
/// `C` the classifier, `K` the cache key's type ([`NoCache`] until
/// [`cache_key`](ResilienceBuilder::cache_key) is given) and `P` how
/// answers leave the stack ([`Profile`]).
pub struct ResilienceLayer<Req, Res, C = DefaultClassifier, K = NoCache, P = Plain> {
    pub(super) metrics: Option<MetricsLayer<Judge<C>>>,
    pub(super) cache: Option<StackCache<Req, Res, K, C>>,
    pub(super) admission: AdmissionLayers<Judge<C>>,
    pub(super) retry: Option<StackRetry<Req, Res, C>>,
    pub(super) breaker: Option<StackBreaker<Req, Res, C>>,
    pub(super) hedge: Option<StackHedge<Req, C>>,
    pub(super) timeout: Option<TimeoutLayer>,
    pub(super) balance: BalanceConfig,
    pub(super) classifier: C,
    pub(super) _profile: PhantomData<fn() -> P>,
}

impl<Req, Res> ResilienceLayer<Req, Res> {
    /// A builder of the layer `config` describes.
    ///
    /// `Req` and `Res` are those of the service it will wrap; name them
    /// (`ResilienceLayer::<Req, Res>::builder`) when nothing else does.
    pub fn builder(config: ResilienceConfig) -> ResilienceBuilder<Req, Res> {
        ResilienceBuilder::new(config)
    }

    /// The layer `config` describes, when it needs no code: no cache, no
    /// retries, no hedges (see [`builder`](Self::builder) for those).
    ///
    /// # Errors
    ///
    /// As [`ResilienceBuilder::build`].
    pub fn new(config: ResilienceConfig) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }
}

#[cfg(all(feature = "http", feature = "keyed"))]
impl ResilienceLayer<(), ()> {
    /// The layers of `config` that belong on a server (metrics, the
    /// breaker and the timeout), answering by themselves, for an axum
    /// `Router` or a tonic `Server`: see [`ServerLayer`](super::ServerLayer).
    pub fn server(config: ResilienceConfig) -> super::ServerBuilder {
        super::ServerBuilder::new(config)
    }
}

impl<Req, Res, C, K, P> ResilienceLayer<Req, Res, C, K, P> {
    /// A handle to the stack's circuit breaker, shared by every service
    /// this layer wraps; `None` when the breaker is off.
    pub fn circuit_breaker(&self) -> Option<CircuitBreakerHandle> {
        self.breaker.as_ref().map(CircuitBreakerLayer::handle)
    }

    /// The cap on calls in flight now, shared by every service this layer
    /// wraps: the bulkhead's, or the limit the adaptive layer has learned;
    /// `None` when neither is on.
    pub fn concurrency_limit(&self) -> Option<usize> {
        self.admission.concurrency_limit()
    }

    /// Calls holding a place of the bulkhead or the adaptive limit now;
    /// `None` when neither is on.
    pub fn in_flight(&self) -> Option<usize> {
        self.admission.in_flight()
    }

    /// The layers under the cache, around `inner`: the part of the stack
    /// that does not depend on whether there is a cache.
    fn retried<S: Clone>(&self, inner: S) -> Retried<S, Req, Res, C>
    where
        C: Clone,
    {
        let timed = maybe(self.timeout.as_ref(), Bottom::new(inner));
        let hedged = maybe(self.hedge.as_ref(), timed);
        let guarded = maybe(self.breaker.as_ref(), hedged);
        maybe(self.retry.as_ref(), guarded)
    }

    /// Admission control around `inner`: the rate limit, then the cap on
    /// calls in flight.
    fn admitted<T>(&self, inner: T) -> Admitted<T, C>
    where
        C: Clone,
    {
        self.admission.layer(inner)
    }

    fn measured<T>(&self, inner: T) -> Resilience<Measured<T, C>, P>
    where
        C: Clone,
    {
        Resilience {
            inner: maybe(self.metrics.as_ref(), inner),
            _profile: PhantomData,
        }
    }
}

impl<Req, Res, C, K, P> ResilienceLayer<Req, Res, C, K, P>
where
    C: Clone,
{
    /// The stack over a fixed list of endpoints (each of weight 1),
    /// balanced as the configuration's `balance` section says. Outlier
    /// detection judges the endpoints' results with the stack's
    /// classifier.
    ///
    /// # Errors
    ///
    /// None today for a configuration that `build` accepted; the `Result`
    /// leaves room for checks of the endpoints.
    pub fn balance<EK, ES>(
        &self,
        endpoints: impl IntoIterator<Item = (EK, ES)>,
    ) -> Result<<Self as Layer<Endpoints<EK, ES, C>>>::Service, ConfigError>
    where
        EK: Clone + Eq + Hash + fmt::Display + Send + Sync + 'static,
        ES: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        ES::Error: Into<BoxError>,
        Self: Layer<Endpoints<EK, ES, C>>,
    {
        let endpoints = endpoints
            .into_iter()
            .map(|(key, service)| (key, BoxErrors::new(service)));
        let lb = LoadBalance::new(self.balance.clone(), endpoints)
            .map_err(|e| e.in_section("balance"))?
            .classify(self.classifier.clone());
        Ok(self.layer(lb))
    }

    /// The stack over the endpoints a [`Discover`] stream reports (see
    /// [`LoadBalance::discover`]).
    ///
    /// # Errors
    ///
    /// As [`balance`](Self::balance).
    #[allow(clippy::type_complexity)]
    pub fn discover<D>(
        &self,
        discover: D,
    ) -> Result<<Self as Layer<Endpoints<D::Key, D::Service, C>>>::Service, ConfigError>
    where
        D: Discover + Send + 'static,
        D::Key: Clone + Eq + Hash + fmt::Display + Send + Sync + 'static,
        D::Service: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        D::Error: Into<BoxError>,
        <D::Service as Service<Req>>::Error: Into<BoxError>,
        Self: Layer<Endpoints<D::Key, D::Service, C>>,
    {
        let wrap = BoxErrors::new;
        let lb = LoadBalance::discover(self.balance.clone(), Boxing { discover, wrap })
            .map_err(|e| e.in_section("balance"))?
            .classify(self.classifier.clone());
        Ok(self.layer(lb))
    }

    /// The stack over the endpoints a [`Discover`] stream reports with
    /// their weights, such as
    /// [`DnsDiscover`](crate::balance::dns::DnsDiscover)'s (see
    /// [`LoadBalance::discover_weighted`]).
    ///
    /// # Errors
    ///
    /// As [`balance`](Self::balance).
    #[allow(clippy::type_complexity)]
    pub fn discover_weighted<D, EK, ES>(
        &self,
        discover: D,
    ) -> Result<<Self as Layer<Endpoints<EK, ES, C>>>::Service, ConfigError>
    where
        D: Discover<Key = EK, Service = (ES, u32)> + Send + 'static,
        EK: Clone + Eq + Hash + fmt::Display + Send + Sync + 'static,
        ES: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        D::Error: Into<BoxError>,
        ES::Error: Into<BoxError>,
        Self: Layer<Endpoints<EK, ES, C>>,
    {
        let wrap = |(service, weight)| (BoxErrors::new(service), weight);
        let lb = LoadBalance::discover_weighted(self.balance.clone(), Boxing { discover, wrap })
            .map_err(|e| e.in_section("balance"))?
            .classify(self.classifier.clone());
        Ok(self.layer(lb))
    }
}

/// A stack without a cache.
impl<S, Req, C, P> Layer<S> for ResilienceLayer<Req, S::Response, C, NoCache, P>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, BoxError> + Clone,
    P: Profile<S::Response>,
{
    type Service = Resilience<Measured<Admitted<Retried<S, Req, S::Response, C>, C>, C>, P>;

    fn layer(&self, inner: S) -> Self::Service {
        self.measured(self.admitted(self.retried(inner)))
    }
}

/// A stack with a cache, keyed by `K`.
impl<S, Req, K, C, P> Layer<S> for ResilienceLayer<Req, S::Response, C, K, P>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    S::Response: Clone + Send + Sync + 'static,
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Classify<S::Response, BoxError> + Clone,
    P: Profile<S::Response>,
{
    type Service = Resilience<Measured<Cached<S, Req, S::Response, K, C>, C>, P>;

    fn layer(&self, inner: S) -> Self::Service {
        let admitted = self.admitted(self.retried(inner));
        self.measured(maybe(self.cache.as_ref(), admitted))
    }
}

impl<Req, Res, C: Clone, K, P> Clone for ResilienceLayer<Req, Res, C, K, P> {
    fn clone(&self) -> Self {
        ResilienceLayer {
            metrics: self.metrics.clone(),
            cache: self.cache.clone(),
            admission: self.admission.clone(),
            retry: self.retry.clone(),
            breaker: self.breaker.clone(),
            hedge: self.hedge.clone(),
            timeout: self.timeout.clone(),
            balance: self.balance.clone(),
            classifier: self.classifier.clone(),
            _profile: PhantomData,
        }
    }
}

impl<Req, Res, C, K, P> fmt::Debug for ResilienceLayer<Req, Res, C, K, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilienceLayer")
            .field("metrics", &self.metrics.is_some())
            .field("cache", &self.cache.is_some())
            .field("rate_limit", &self.admission.rate_limit.is_some())
            .field("bulkhead", &self.admission.bulkhead.is_some())
            .field("adaptive_concurrency", &self.admission.adaptive.is_some())
            .field("retry", &self.retry.is_some())
            .field("circuit_breaker", &self.breaker.is_some())
            .field("hedge", &self.hedge.is_some())
            .field("timeout", &self.timeout.as_ref().map(TimeoutLayer::timeout))
            .field("balance", &self.balance)
            .finish_non_exhaustive()
    }
}

/// The service a [`ResilienceLayer`] makes: the layers that are on, in the
/// recommended order, around the inner service; answers leave it as the
/// profile `P` says. Name it with [`ResilienceService`] or
/// [`BalancedService`].
pub struct Resilience<T, P = Plain> {
    inner: T,
    _profile: PhantomData<fn() -> P>,
}

impl<T: Clone, P> Clone for Resilience<T, P> {
    fn clone(&self) -> Self {
        Resilience {
            inner: self.inner.clone(),
            _profile: PhantomData,
        }
    }
}

impl<T, P> fmt::Debug for Resilience<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resilience").finish_non_exhaustive()
    }
}

impl<T, P, Req, Res> Service<Req> for Resilience<T, P>
where
    T: Service<Req, Response = Answer<Res>, Error = BoxError>,
    P: Profile<Res>,
{
    type Response = P::Response;
    type Error = BoxError;
    type Future = ResponseFuture<T::Future, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(P::error)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture::new(self.inner.call(req))
    }
}

pin_project_lite::pin_project! {
    /// A [`Discover`] stream whose services have their errors boxed:
    /// `wrap` boxes one (and keeps its weight, for a weighted stream).
    struct Boxing<D, W> {
        #[pin]
        discover: D,
        wrap: W,
    }
}

impl<D: Discover, W: Fn(D::Service) -> T, T> Stream for Boxing<D, W> {
    type Item = Result<Change<D::Key, T>, D::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let wrap = this.wrap;
        this.discover.poll_discover(cx).map(|change| {
            change.map(|change| {
                change.map(|change| match change {
                    Change::Insert(key, service) => Change::Insert(key, wrap(service)),
                    Change::Remove(key) => Change::Remove(key),
                })
            })
        })
    }
}
