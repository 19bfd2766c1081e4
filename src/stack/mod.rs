//! Every layer in the recommended order, from one configuration.
//!
//! [`ResilienceLayer`] assembles, outermost first:
//!
//! **Metrics → Cache → Retry → CircuitBreaker → Hedge → Timeout →
//! LoadBalance**
//!
//! each part optional ([`ResilienceConfig`] says which are on), so that the
//! order is right without thinking about it:
//!
//! - **Metrics** is outermost, so it sees what the caller sees: a cached
//!   answer is a fast success, and a request retried twice is one request.
//! - **Cache** sits outside the retries and the breaker: a hit costs no
//!   attempt at all, and when everything inside has failed (retries spent,
//!   circuit open) the cache can still answer with a stale entry.
//! - **Retry** sits outside the breaker, so that an open circuit fails fast
//!   instead of being retried ([`CircuitOpen`](crate::circuit_breaker::error::CircuitOpen)
//!   is never retried), and each retry is one more call the breaker
//!   counts.
//! - **CircuitBreaker** sits outside the hedge and the timeout, so that a
//!   call that timed out is a failure it counts (a timeout outside the
//!   breaker would drop the call, which the breaker ignores), and a hedged
//!   call is one call.
//! - **Hedge** sits outside the timeout, so that each attempt has its own
//!   deadline and a slow first attempt does not eat the second's time.
//! - **Timeout** is per attempt, just outside the balancer, so that an
//!   attempt that waits too long for an endpoint fails too.
//! - **LoadBalance** is innermost: every attempt (first, retry, hedge)
//!   picks an endpoint of its own, and outlier ejection sees every
//!   endpoint's own results.
//!
//! One classifier ([`crate::classify`]) judges results for every layer, and
//! one name ([`ResilienceConfig::service`]) labels every layer's metrics
//! and events. The stack's error is [`BoxError`]: tell failures apart with
//! `err.is::<CircuitOpen>()`, `err.is::<Elapsed>()` or
//! `err.is::<NoEndpointAvailable>()`.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use tower::{service_fn, BoxError, Service, ServiceExt};
//! use tower_bulwark::cache::CacheConfig;
//! use tower_bulwark::retry::RetryConfig;
//! use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let layer = ResilienceLayer::builder(
//!     ResilienceConfig::default()
//!         .service("users")
//!         .timeout(Duration::from_millis(500))
//!         .retry(RetryConfig::default())
//!         .cache(CacheConfig::default().ttl(Duration::from_secs(30))),
//! )
//! .cache_key(|id: &u64| Some(*id))
//! .clone_requests()
//! .fallback(service_fn(|id: u64| async move { Ok::<_, Infallible>(format!("user {id} (fallback)")) }))
//! .build()?;
//!
//! // Three instances of the user service, balanced by peak EWMA.
//! let instance = |name: &'static str| {
//!     service_fn(move |id: u64| async move { Ok::<_, Infallible>(format!("user {id} from {name}")) })
//! };
//! let mut users = layer.balance([("a", instance("a")), ("b", instance("b")), ("c", instance("c"))])?;
//!
//! let user = users.ready().await?.call(7).await?;
//! assert!(user.starts_with("user 7 from "));
//! # Ok(())
//! # }
//! ```
//!
//! # From a file
//!
//! With the `serde` feature, [`ResilienceConfig::from_toml`] and
//! [`ResilienceConfig::from_yaml`] read the same configuration from a file;
//! a bad value is a [`ConfigFileError`] that names the field and its line.
//!
//! # In async handlers
//!
//! The stack's service and futures are `Send` when held across `.await`
//! (what axum asks of a handler). Call it with `ready().await` and `call`:
//! the future of tower's `oneshot` names the service's future type through
//! the `Service` trait, and the compiler cannot prove that `Send` for
//! services that box errors (rust-lang/rust#110338, with tower's own
//! layers as well).
//!
//! # State
//!
//! The layer creates the state of its breaker and its retry and hedge
//! budgets when it is built: every service it wraps, and every clone of
//! those, share them (axum clones a service per request). Each service it
//! wraps gets its own cache store and its own balancer; clones share them.

mod config;
#[cfg(feature = "serde")]
mod file;
pub mod future;

use std::fmt;
use std::hash::Hash;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::discover::Discover;
use tower::util::Either;
use tower_layer::Layer;
use tower_service::Service;

pub use self::config::ResilienceConfig;
#[cfg(feature = "serde")]
pub use self::file::ConfigFileError;
use self::future::ResponseFuture;
use crate::BoxError;
use crate::balance::LoadBalance;
use crate::cache::error::SharedError;
use crate::cache::{Cache, CacheLayer, MarkStatus, Unmarked};
use crate::circuit_breaker::{CircuitBreaker, CircuitBreakerHandle, CircuitBreakerLayer};
use crate::classify::{Classify, DefaultClassifier, Outcome};
use crate::config::{Check, ConfigError};
use crate::event::Events;
use crate::fallback::OptionalFallback;
use crate::hedge::{Hedge, HedgeLayer};
use crate::metrics::{Metrics, MetricsLayer};
use crate::retry::{Retry, RetryLayer};
use crate::timeout::{Timeout, TimeoutLayer};

/// How a request is copied for a retry or a hedge: `None` if it must not
/// be sent again.
pub type CloneFn<Req> = fn(&Req) -> Option<Req>;

/// The cache key of a request: `None` if it is not to be cached.
pub type KeyFn<Req, K> = fn(&Req) -> Option<K>;

/// A server's hint of when to retry, read from a response.
pub type RetryAfterFn<Res> = fn(&Res) -> Option<Duration>;

fn by_clone<Req: Clone>(req: &Req) -> Option<Req> {
    Some(req.clone())
}

fn no_retry_after<Res>(_: &Res) -> Option<Duration> {
    None
}

/// A fallback's answer, on its way out of the stack as an error.
///
/// The layers outside the breaker must tell a fallback's answer from the
/// service's: the cache never stores it, and prefers a stale entry to it
/// (the last good answer is better than a generic one); the retry layer
/// does not retry it (the circuit is open); the metrics count it as a
/// failure (the caller got a degraded answer). So the answer travels as
/// this error, which every layer's classifier ([`Judge`]) recognises, and
/// [`Resilience`] turns it back into the response. Callers never see it.
#[derive(Clone)]
pub struct FallbackAnswer<T>(T);

impl<T> fmt::Debug for FallbackAnswer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FallbackAnswer(..)")
    }
}

impl<T> fmt::Display for FallbackAnswer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("answered by the fallback")
    }
}

impl<T> std::error::Error for FallbackAnswer<T> {}

/// The stack's classifier as one layer uses it: the user's, and a fixed
/// outcome for a [`FallbackAnswer`].
#[derive(Debug, Clone)]
pub struct Judge<C> {
    classifier: C,
    fallback: Outcome,
}

impl<C> Judge<C> {
    fn new(classifier: C, fallback: Outcome) -> Self {
        Judge {
            classifier,
            fallback,
        }
    }
}

impl<C, T> Classify<T, BoxError> for Judge<C>
where
    C: Classify<T, BoxError>,
    T: Send + Sync + 'static,
{
    #[inline]
    fn classify(&self, result: &Result<T, BoxError>) -> Outcome {
        match result {
            Err(error) if is_fallback_answer::<T>(error) => self.fallback,
            result => self.classifier.classify(result),
        }
    }
}

fn is_fallback_answer<T: Send + Sync + 'static>(error: &BoxError) -> bool {
    error.is::<FallbackAnswer<T>>()
        || error
            .downcast_ref::<SharedError<BoxError>>()
            .is_some_and(|shared| shared.get_ref().is::<FallbackAnswer<T>>())
}

/// The response a [`FallbackAnswer`] carries, or the error as it is.
fn answer<T>(result: Result<T, BoxError>) -> Result<T, BoxError>
where
    T: Clone + Send + Sync + 'static,
{
    match result {
        Ok(response) => Ok(response),
        Err(error) => match error.downcast::<FallbackAnswer<T>>() {
            Ok(answer) => Ok(answer.0),
            Err(error) => match error.downcast_ref::<SharedError<BoxError>>() {
                // An answer shared by the cache with callers that waited
                // for the same key.
                Some(shared) => match shared.get_ref().downcast_ref::<FallbackAnswer<T>>() {
                    Some(answer) => Ok(answer.0.clone()),
                    None => Err(error),
                },
                None => Err(error),
            },
        },
    }
}

type Res<S, Req> = <S as Service<Req>>::Response;
type Base<S> = BoxErrors<S>;
type WithTimeout<S> = Either<Timeout<Base<S>>, Base<S>>;
type WithHedge<S, Req> = Either<Hedge<WithTimeout<S>, CloneFn<Req>>, WithTimeout<S>>;
type WithBreaker<S, Req, C> = Either<
    CircuitBreaker<WithHedge<S, Req>, Judge<C>, OptionalFallback<Req, Res<S, Req>>>,
    WithHedge<S, Req>,
>;
type WithRetry<S, Req, C> = Either<
    Retry<WithBreaker<S, Req, C>, Judge<C>, CloneFn<Req>, RetryAfterFn<Res<S, Req>>>,
    WithBreaker<S, Req, C>,
>;
type WithCache<S, Req, K, C, M> = Either<
    Cache<WithRetry<S, Req, C>, Req, K, KeyFn<Req, K>, Res<S, Req>, BoxError, Judge<C>, M>,
    WithRetry<S, Req, C>,
>;
type Assembled<S, Req, K, C, M> =
    Either<Metrics<WithCache<S, Req, K, C, M>, Judge<C>>, WithCache<S, Req, K, C, M>>;

/// The service a [`ResilienceLayer`] makes of `S`: what to write when you
/// store it in a struct of your own.
pub type ResilienceService<S, Req, K = (), C = DefaultClassifier, M = Unmarked> =
    Resilience<Assembled<S, Req, K, C, M>>;

/// The service [`ResilienceLayer::balance`] and
/// [`ResilienceLayer::discover`] make: the stack over a [`LoadBalance`] of
/// endpoints keyed by `EK`, of type `ES`.
pub type BalancedService<EK, ES, Req, K = (), C = DefaultClassifier, M = Unmarked> =
    ResilienceService<LoadBalance<EK, ES, C>, Req, K, C, M>;

type Discovered<D, Req, K, C, M> =
    BalancedService<<D as Discover>::Key, <D as Discover>::Service, Req, K, C, M>;

type StackCacheLayer<Req, K, C, M> = CacheLayer<Req, K, KeyFn<Req, K>, Judge<C>, M>;

/// Builds a [`ResilienceLayer`]: the configuration, and the parts that are
/// code (a cache key, a classifier, a fallback, how requests are copied).
/// See the [module docs](self).
///
/// `build` checks that the parts the configuration needs are there: a
/// cache needs a [`cache_key`](Self::cache_key), retries and hedges need
/// [`clone_requests`](Self::clone_requests) or
/// [`clone_requests_with`](Self::clone_requests_with).
pub struct ResilienceBuilder<Req, Res, K = (), C = DefaultClassifier, M = Unmarked> {
    config: ResilienceConfig,
    key: Option<KeyFn<Req, K>>,
    classifier: C,
    marker: M,
    cloner: Option<CloneFn<Req>>,
    retry_after: RetryAfterFn<Res>,
    fallback: OptionalFallback<Req, Res>,
    events: Option<Events>,
}

impl<Req, Res, K, C: fmt::Debug, M: fmt::Debug> fmt::Debug
    for ResilienceBuilder<Req, Res, K, C, M>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilienceBuilder")
            .field("config", &self.config)
            .field("cache_key", &self.key.is_some())
            .field("classifier", &self.classifier)
            .field("marker", &self.marker)
            .field("clone_requests", &self.cloner.is_some())
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

impl<Req, Res, K, C, M> ResilienceBuilder<Req, Res, K, C, M> {
    /// Caches requests under `key` (`None`: not cached). Needed when the
    /// configuration has a `cache` section.
    pub fn cache_key<K2>(self, key: KeyFn<Req, K2>) -> ResilienceBuilder<Req, Res, K2, C, M> {
        ResilienceBuilder {
            config: self.config,
            key: Some(key),
            classifier: self.classifier,
            marker: self.marker,
            cloner: self.cloner,
            retry_after: self.retry_after,
            fallback: self.fallback,
            events: self.events,
        }
    }

    /// Judges results with `classifier` in every layer (see
    /// [`crate::classify`]).
    pub fn classify<C2>(self, classifier: C2) -> ResilienceBuilder<Req, Res, K, C2, M> {
        ResilienceBuilder {
            config: self.config,
            key: self.key,
            classifier,
            marker: self.marker,
            cloner: self.cloner,
            retry_after: self.retry_after,
            fallback: self.fallback,
            events: self.events,
        }
    }

    /// How cached answers carry their [`CacheStatus`](crate::cache::CacheStatus):
    /// a [`MarkStatus`] that keeps the response type, such as
    /// [`HttpExtension`](crate::cache::HttpExtension) (feature `http`).
    /// Default: [`Unmarked`].
    pub fn mark_cached<M2>(self, marker: M2) -> ResilienceBuilder<Req, Res, K, C, M2> {
        ResilienceBuilder {
            config: self.config,
            key: self.key,
            classifier: self.classifier,
            marker,
            cloner: self.cloner,
            retry_after: self.retry_after,
            fallback: self.fallback,
            events: self.events,
        }
    }

    /// Copies requests for retries and hedges with `Clone`.
    pub fn clone_requests(mut self) -> Self
    where
        Req: Clone,
    {
        self.cloner = Some(by_clone::<Req>);
        self
    }

    /// Copies requests for retries and hedges with `cloner` (`None`: this
    /// request is not sent again), e.g.
    /// [`clone_http_request`](crate::request::clone_http_request).
    pub fn clone_requests_with(mut self, cloner: CloneFn<Req>) -> Self {
        self.cloner = Some(cloner);
        self
    }

    /// Reads a server's hint of when to retry from a response (see
    /// [`RetryAfter`](crate::retry::RetryAfter)).
    pub fn retry_after(mut self, hint: RetryAfterFn<Res>) -> Self {
        self.retry_after = hint;
        self
    }

    /// Answers requests from `fallback` while the circuit is open, instead
    /// of failing them with `CircuitOpen`.
    pub fn fallback<F>(mut self, fallback: F) -> Self
    where
        F: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        F::Error: Into<BoxError>,
        F::Future: Send + 'static,
        Req: 'static,
        Res: Send + Sync + 'static,
    {
        // The answer leaves the breaker as a `FallbackAnswer`, so that the
        // layers outside it can tell it from the service's.
        let marked = tower::ServiceBuilder::new()
            .map_result(|result: Result<Res, BoxError>| -> Result<Res, BoxError> {
                Err(match result {
                    Ok(response) => Box::new(FallbackAnswer(response)),
                    Err(error) => error,
                })
            })
            .map_err(Into::into)
            .service(fallback);
        self.fallback = OptionalFallback::new(marked);
        self
    }

    /// Sends the events of the breaker, the balancer and the retries to
    /// `hub` (see [`crate::event`]).
    pub fn events(mut self, hub: &Events) -> Self {
        self.events = Some(hub.clone());
        self
    }

    /// Checks the configuration and the parts it needs, and builds the
    /// layer.
    ///
    /// # Errors
    ///
    /// The first invalid field, as a [`ConfigError`] whose
    /// [`path`](ConfigError::path) names the section
    /// (`circuit_breaker.minimum_calls`); or a part the configuration needs
    /// and was not given (`cache_key`, `clone_requests`).
    pub fn build(self) -> Result<ResilienceLayer<Req, Res, K, C, M>, ConfigError>
    where
        C: Clone,
    {
        let ResilienceBuilder {
            config,
            key,
            classifier,
            marker,
            cloner,
            retry_after,
            fallback,
            events,
        } = self;
        config.validate()?;
        let check = Check::layer("resilience stack");
        if config.cache.is_some() && key.is_none() {
            return Err(check.missing("cache_key", "a cache section needs a cache key function"));
        }
        let needs_copies = config.retry.is_some() || config.hedge.is_some();
        if needs_copies && cloner.is_none() {
            return Err(check.missing(
                "clone_requests",
                "retries and hedges need a way to copy requests",
            ));
        }
        let cloner = cloner.unwrap_or(|_| None);
        // Fallback answers are failures to the caller (metrics) and to the
        // cache (which prefers a stale entry), and not worth a retry.
        let judge = |fallback| Judge::new(classifier.clone(), fallback);
        let service = config.service.clone();
        let named = |name: &str| name.to_owned();

        let metrics = config
            .metrics
            .then(|| MetricsLayer::new(named(&service)).classify(judge(Outcome::Failure)));
        let cache = match (config.cache, key) {
            (Some(cache), Some(key)) => Some(
                CacheLayer::new(cache.service(named(&service)), key)
                    .map_err(|e| e.in_section("cache"))?
                    .classify(judge(Outcome::Failure))
                    .mark_with(marker),
            ),
            _ => None,
        };
        let retry = match config.retry {
            Some(mut retry) => {
                retry = retry.service(named(&service));
                if let Some(hub) = &events {
                    retry = retry.events(hub);
                }
                Some(
                    RetryLayer::new(retry)
                        .map_err(|e| e.in_section("retry"))?
                        .classify(judge(Outcome::Ignored))
                        .clone_requests_with(cloner)
                        .retry_after_hint(retry_after),
                )
            }
            None => None,
        };
        let breaker = match config.circuit_breaker {
            Some(mut breaker) => {
                breaker = breaker.service(named(&service));
                if let Some(hub) = &events {
                    breaker = breaker.events(hub);
                }
                Some(
                    CircuitBreakerLayer::new(breaker)
                        .map_err(|e| e.in_section("circuit_breaker"))?
                        .classify(judge(Outcome::Ignored))
                        .with_fallback(fallback),
                )
            }
            None => None,
        };
        let hedge = match config.hedge {
            Some(hedge) => Some(
                HedgeLayer::new(hedge.service(named(&service)))
                    .map_err(|e| e.in_section("hedge"))?
                    .clone_requests_with(cloner),
            ),
            None => None,
        };
        let timeout = config.timeout.map(TimeoutLayer::new).transpose()?;
        let mut balance = config.balance.service(named(&service));
        if let Some(hub) = &events {
            balance = balance.events(hub);
        }
        Ok(ResilienceLayer {
            metrics,
            cache,
            retry,
            breaker,
            hedge,
            timeout,
            balance,
            classifier,
        })
    }
}

/// Every layer of the crate in the recommended order, from one
/// [`ResilienceConfig`]. See the [module docs](self).
///
/// Made by [`ResilienceLayer::builder`] (or [`ResilienceLayer::new`] when
/// the configuration needs no code). Wrap one service with
/// [`layer`](Layer::layer), or many instances with
/// [`balance`](Self::balance) or [`discover`](Self::discover).
pub struct ResilienceLayer<Req, Res, K = (), C = DefaultClassifier, M = Unmarked> {
    metrics: Option<MetricsLayer<Judge<C>>>,
    cache: Option<StackCacheLayer<Req, K, C, M>>,
    retry: Option<RetryLayer<Judge<C>, CloneFn<Req>, RetryAfterFn<Res>>>,
    breaker: Option<CircuitBreakerLayer<Judge<C>, OptionalFallback<Req, Res>>>,
    hedge: Option<HedgeLayer<CloneFn<Req>>>,
    timeout: Option<TimeoutLayer>,
    balance: crate::balance::BalanceConfig,
    classifier: C,
}

impl<Req, Res> ResilienceLayer<Req, Res> {
    /// A builder of the layer `config` describes.
    pub fn builder(config: ResilienceConfig) -> ResilienceBuilder<Req, Res> {
        ResilienceBuilder {
            config,
            key: None,
            classifier: DefaultClassifier,
            marker: Unmarked,
            cloner: None,
            retry_after: no_retry_after::<Res>,
            fallback: OptionalFallback::none(),
            events: None,
        }
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

#[cfg(feature = "http")]
impl<ReqB, ResB> ResilienceBuilder<http::Request<ReqB>, http::Response<ResB>> {
    /// The parts an HTTP client stack wants: 5xx responses are failures
    /// ([`HttpClassifier`](crate::classify::HttpClassifier)), a cached
    /// response carries its status in its extensions
    /// ([`HttpExtension`](crate::cache::HttpExtension)), and a 429 or 503's
    /// `Retry-After` sets the wait before a retry. Requests are copied with
    /// [`clone_http_request`](crate::request::clone_http_request) when
    /// their body is `Clone`.
    pub fn http(
        self,
    ) -> ResilienceBuilder<
        http::Request<ReqB>,
        http::Response<ResB>,
        (),
        crate::classify::HttpClassifier,
        crate::cache::HttpExtension,
    >
    where
        ReqB: Clone,
    {
        self.classify(crate::classify::HttpClassifier::default())
            .mark_cached(crate::cache::HttpExtension)
            .clone_requests_with(crate::request::clone_http_request::<ReqB>)
            .retry_after(|response| {
                crate::retry::RetryAfter::retry_after(&crate::retry::HttpRetryAfter, response)
            })
    }
}

impl<Req, Res, K, C, M> ResilienceLayer<Req, Res, K, C, M> {
    /// A handle to the stack's circuit breaker, shared by every service
    /// this layer wraps; `None` when the breaker is off.
    pub fn circuit_breaker(&self) -> Option<CircuitBreakerHandle> {
        self.breaker.as_ref().map(CircuitBreakerLayer::handle)
    }
}

impl<Req, Res, K, C, M> ResilienceLayer<Req, Res, K, C, M>
where
    C: Clone,
{
    /// The stack over a fixed list of endpoints (each of weight 1),
    /// balanced as the configuration's `balance` section says. The
    /// endpoints' results are judged by the stack's classifier for outlier
    /// ejection.
    ///
    /// # Errors
    ///
    /// None today for a configuration that `build` accepted; the `Result`
    /// leaves room for checks of the endpoints.
    pub fn balance<EK, ES>(
        &self,
        endpoints: impl IntoIterator<Item = (EK, ES)>,
    ) -> Result<BalancedService<EK, ES, Req, K, C, M>, ConfigError>
    where
        EK: Clone + Eq + Hash + fmt::Display + Send + Sync + 'static,
        ES: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        ES::Error: Into<BoxError>,
        Res: Clone + Send + Sync + 'static,
        K: Hash + Eq + Clone + Send + Sync + 'static,
        C: Classify<Res, BoxError> + Classify<Res, ES::Error>,
        M: MarkStatus<Res, Response = Res> + Clone,
    {
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
    pub fn discover<D>(&self, discover: D) -> Result<Discovered<D, Req, K, C, M>, ConfigError>
    where
        D: Discover + Send + 'static,
        D::Key: Clone + Eq + Hash + fmt::Display + Send + Sync + 'static,
        D::Service: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        D::Error: Into<BoxError>,
        <D::Service as Service<Req>>::Error: Into<BoxError>,
        Res: Clone + Send + Sync + 'static,
        K: Hash + Eq + Clone + Send + Sync + 'static,
        C: Classify<Res, BoxError> + Classify<Res, <D::Service as Service<Req>>::Error>,
        M: MarkStatus<Res, Response = Res> + Clone,
    {
        let lb = LoadBalance::discover(self.balance.clone(), discover)
            .map_err(|e| e.in_section("balance"))?
            .classify(self.classifier.clone());
        Ok(self.layer(lb))
    }
}

/// Wraps `layer`'s service around `inner` when the layer is on.
fn maybe<L: Layer<S>, S>(layer: Option<&L>, inner: S) -> Either<L::Service, S> {
    match layer {
        Some(layer) => Either::Left(layer.layer(inner)),
        None => Either::Right(inner),
    }
}

impl<S, Req, K, C, M> Layer<S> for ResilienceLayer<Req, S::Response, K, C, M>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    S::Response: Clone + Send + Sync + 'static,
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Classify<S::Response, BoxError> + Clone,
    M: MarkStatus<S::Response, Response = S::Response> + Clone,
{
    type Service = ResilienceService<S, Req, K, C, M>;

    fn layer(&self, inner: S) -> Self::Service {
        let base = BoxErrors { inner };
        let timed = maybe(self.timeout.as_ref(), base);
        let hedged = maybe(self.hedge.as_ref(), timed);
        let guarded = maybe(self.breaker.as_ref(), hedged);
        let retried = maybe(self.retry.as_ref(), guarded);
        let cached = maybe(self.cache.as_ref(), retried);
        Resilience {
            inner: maybe(self.metrics.as_ref(), cached),
        }
    }
}

impl<Req, Res, K, C: Clone, M: Clone> Clone for ResilienceLayer<Req, Res, K, C, M> {
    fn clone(&self) -> Self {
        ResilienceLayer {
            metrics: self.metrics.clone(),
            cache: self.cache.clone(),
            retry: self.retry.clone(),
            breaker: self.breaker.clone(),
            hedge: self.hedge.clone(),
            timeout: self.timeout.clone(),
            balance: self.balance.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<Req, Res, K, C, M> fmt::Debug for ResilienceLayer<Req, Res, K, C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilienceLayer")
            .field("metrics", &self.metrics.is_some())
            .field("cache", &self.cache.is_some())
            .field("retry", &self.retry.is_some())
            .field("circuit_breaker", &self.breaker.is_some())
            .field("hedge", &self.hedge.is_some())
            .field("timeout", &self.timeout.as_ref().map(TimeoutLayer::timeout))
            .field("balance", &self.balance)
            .finish()
    }
}

/// The inner service with its errors boxed, under the layers that keep
/// their inner service's error type.
///
/// Written by hand rather than with tower's `MapErr` and a function
/// pointer: a `fn(BoxError) -> BoxError` in a future's type trips the
/// compiler's check that the future is `Send` (rust-lang/rust#110338),
/// which axum needs of handlers.
#[derive(Debug, Clone)]
pub struct BoxErrors<S> {
    inner: S,
}

impl<S, Req> Service<Req> for BoxErrors<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = future::BoxErrorsFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        future::BoxErrorsFuture::new(self.inner.call(req))
    }
}

/// The service a [`ResilienceLayer`] makes: the layers that are on, in the
/// recommended order, around the inner service. Name it with
/// [`ResilienceService`].
#[derive(Clone)]
pub struct Resilience<T> {
    inner: T,
}

impl<T> fmt::Debug for Resilience<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resilience").finish_non_exhaustive()
    }
}

impl<T, Req> Service<Req> for Resilience<T>
where
    T: Service<Req, Error = BoxError>,
    T::Response: Clone + Send + Sync + 'static,
{
    type Response = T::Response;
    type Error = BoxError;
    type Future = ResponseFuture<T::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture::new(self.inner.call(req))
    }
}
