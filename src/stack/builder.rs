//! The builder of a [`ResilienceLayer`].

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::time::Duration;

use tower_service::Service;

use super::admission::AdmissionLayers;
use super::answer::{
    Answer, CacheJudge, Copier, Hint, Judge, MarkAnswer, SharedKey, Weighing, admit_fn,
};
use super::layer::{Fallback, ResilienceLayer, StackBreaker, StackCache, StackHedge, StackRetry};
use super::profile::Plain;
use super::{NoCache, ResilienceConfig};
use crate::BoxError;
use crate::cache::CacheLayer;
use crate::circuit_breaker::CircuitBreakerLayer;
use crate::classify::{DefaultClassifier, Outcome};
use crate::config::{Check, ConfigError};
use crate::event::Events;
use crate::fallback::OptionalFallback;
use crate::hedge::HedgeLayer;
use crate::metrics::MetricsLayer;
use crate::request::CloneRequest;
use crate::retry::RetryLayer;
use crate::timeout::TimeoutLayer;

/// Builds a [`ResilienceLayer`]: the configuration, and the parts that are
/// code (a classifier, a cache key, how requests are copied, a fallback).
/// See the [module docs](super).
///
/// Every hook takes any closure, capturing ones included. What a part
/// needs of the request and response types is asked where the part is
/// given, so a missing bound is reported there, in a short message:
/// [`cache_key`](Self::cache_key) needs `Clone` responses,
/// [`clone_requests`](Self::clone_requests) `Clone` requests. Nothing else
/// is needed of them.
///
/// `build` checks that the parts the configuration needs are there: a
/// `cache` section needs a [`cache_key`](Self::cache_key), `retry` and
/// `hedge` sections need a way to copy requests
/// ([`clone_requests_with`](Self::clone_requests_with), or the one
/// [`http`](Self::http) and [`reqwest`](Self::reqwest) give).
pub struct ResilienceBuilder<Req, Res, C = DefaultClassifier, K = NoCache, P = Plain> {
    config: ResilienceConfig,
    classifier: C,
    key: Option<SharedKey<Req, K>>,
    weigher: Weighing<K, Res>,
    admit: Option<std::sync::Arc<super::answer::AdmitFn<Res>>>,
    copier: Copier<Req>,
    hint: Hint<Res>,
    fallback: Fallback<Req, Res>,
    events: Option<Events>,
    _profile: PhantomData<fn() -> P>,
}

impl<Req, Res, C: fmt::Debug, K, P> fmt::Debug for ResilienceBuilder<Req, Res, C, K, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilienceBuilder")
            .field("config", &self.config)
            .field("classifier", &self.classifier)
            .field("cache_key", &self.key.is_some())
            .field("clone_requests", &self.copier.is_some())
            .field("fallback", &self.fallback)
            .field("profile", &std::any::type_name::<P>())
            .finish_non_exhaustive()
    }
}

impl<Req, Res> ResilienceBuilder<Req, Res> {
    pub(super) fn new(config: ResilienceConfig) -> Self {
        ResilienceBuilder {
            config,
            classifier: DefaultClassifier,
            key: None,
            weigher: Weighing::none(),
            admit: None,
            copier: Copier::none(),
            hint: Hint::none(),
            fallback: OptionalFallback::none(),
            events: None,
            _profile: PhantomData,
        }
    }
}

impl<Req, Res, C, K, P> ResilienceBuilder<Req, Res, C, K, P> {
    /// Judges results with `classifier` in every layer (see
    /// [`crate::classify`]): a `Classify<Res, BoxError>`, such as a closure
    /// `Fn(Result<&Res, &BoxError>) -> Outcome`.
    pub fn classify<C2>(self, classifier: C2) -> ResilienceBuilder<Req, Res, C2, K, P> {
        ResilienceBuilder {
            config: self.config,
            classifier,
            key: self.key,
            weigher: self.weigher,
            admit: self.admit,
            copier: self.copier,
            hint: self.hint,
            fallback: self.fallback,
            events: self.events,
            _profile: PhantomData,
        }
    }

    /// Caches requests under `key` (`None`: not cached). Needed when the
    /// configuration has a `cache` section; the cache stores copies of
    /// responses, so they must be `Clone` (collect a streaming body first).
    ///
    /// That is asked here, so a response type that is not `Clone` (a
    /// `reqwest::Response`, an `http::Response<Incoming>`) is refused at
    /// this call, with the missing `Clone` named:
    ///
    /// ```compile_fail,E0277
    /// use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};
    ///
    /// struct Streaming; // a response that cannot be copied
    /// let builder = ResilienceLayer::<u32, Streaming>::builder(ResilienceConfig::default())
    ///     .cache_key(|id: &u32| Some(*id));
    /// ```
    pub fn cache_key<K2, F>(self, key: F) -> ResilienceBuilder<Req, Res, C, K2, P>
    where
        F: Fn(&Req) -> Option<K2> + Send + Sync + 'static,
        K2: Hash + Eq + Clone + Send + Sync + 'static,
        Res: Clone + Send + Sync + 'static,
    {
        ResilienceBuilder {
            config: self.config,
            classifier: self.classifier,
            key: Some(SharedKey::new(key)),
            weigher: Weighing::none(),
            admit: self.admit,
            copier: self.copier,
            hint: self.hint,
            fallback: self.fallback,
            events: self.events,
            _profile: PhantomData,
        }
    }

    /// Bounds the cache by total weight instead of entries: `weigher` gives
    /// each entry's weight (its size in bytes, say), and the `cache`
    /// section's `max_entries` is then the most total weight kept. Give it
    /// after [`cache_key`](Self::cache_key).
    ///
    /// A cache of at most 64 MiB of HTTP answers, keeping 2xx ones only:
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// use bytes::Bytes;
    /// use tower_bulwark::cache::CacheConfig;
    /// use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};
    ///
    /// type Response = http::Response<Bytes>;
    ///
    /// /// Key, body and headers, and what holding them costs.
    /// fn bytes(key: &String, response: &Response) -> u32 {
    ///     let headers: usize = response
    ///         .headers()
    ///         .iter()
    ///         .map(|(name, value)| name.as_str().len() + value.len() + 96)
    ///         .sum();
    ///     u32::try_from(key.len() + response.body().len() + headers + 768).unwrap_or(u32::MAX)
    /// }
    ///
    /// let config = ResilienceConfig::default().cache(CacheConfig::default().max_entries(64 << 20));
    /// let layer = ResilienceLayer::<http::Request<Bytes>, Response>::builder(config)
    ///     .http()
    ///     .cache_key(|request: &http::Request<Bytes>| {
    ///         (request.method() == http::Method::GET).then(|| request.uri().path().to_owned())
    ///     })
    ///     .cache_weigher(bytes)
    ///     .cache_if(|response: &Response| response.status().is_success())
    ///     .build()?;
    /// # let _ = layer;
    /// # }
    /// # Ok::<_, tower_bulwark::ConfigError>(())
    /// ```
    pub fn cache_weigher<F>(mut self, weigher: F) -> Self
    where
        F: Fn(&K, &Res) -> u32 + Send + Sync + 'static,
    {
        self.weigher = Weighing::new(weigher);
        self
    }

    /// Stores in the cache only the responses `admit` accepts (among those
    /// the classifier calls a success): a 200, not a 404, say. The others
    /// pass through, neither stored nor answered from a stale entry.
    pub fn cache_if<F>(mut self, admit: F) -> Self
    where
        F: Fn(&Res) -> bool + Send + Sync + 'static,
    {
        self.admit = Some(admit_fn(admit));
        self
    }

    /// Copies every request with `Clone` for retries and hedges. Only for
    /// requests that are all safe to send twice; see
    /// [`clone_requests_with`](Self::clone_requests_with).
    ///
    /// A request type that is not `Clone` is refused at this call:
    ///
    /// ```compile_fail,E0277
    /// use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};
    ///
    /// struct Upload; // a request with a streaming body
    /// let builder = ResilienceLayer::<Upload, String>::builder(ResilienceConfig::default())
    ///     .clone_requests();
    /// ```
    pub fn clone_requests(self) -> Self
    where
        Req: Clone + 'static,
    {
        self.clone_requests_with(crate::request::ByClone)
    }

    /// Copies requests for retries and hedges with `cloner`: a
    /// [`CloneRequest`] such as [`Idempotent`](crate::request::Idempotent),
    /// or any closure `Fn(&Req) -> Option<Req>`, capturing or not. A
    /// request it maps to `None` is sent once.
    pub fn clone_requests_with<R>(mut self, cloner: R) -> Self
    where
        R: CloneRequest<Req> + Send + Sync + 'static,
    {
        self.copier = Copier::new(cloner);
        self
    }

    /// Reads a server's hint of when to retry from a response (see
    /// [`RetryAfter`](crate::retry::RetryAfter)): any closure
    /// `Fn(&Res) -> Option<Duration>`.
    pub fn retry_after<F>(mut self, hint: F) -> Self
    where
        F: Fn(&Res) -> Option<Duration> + Send + Sync + 'static,
    {
        self.hint = Hint::new(hint);
        self
    }

    /// Answers requests from `fallback` while the circuit is open, instead
    /// of failing them with `CircuitOpen`.
    ///
    /// Its answers are successes to the caller, but the layers outside the
    /// breaker know them apart: the cache never stores one and serves a
    /// stale entry rather than one, retries leave them alone, and the
    /// metrics count them as failures.
    pub fn fallback<F>(mut self, fallback: F) -> Self
    where
        F: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        F::Error: Into<BoxError>,
        F::Future: Send + 'static,
        Req: 'static,
        Res: Send + 'static,
    {
        let marked = tower::ServiceBuilder::new()
            .map_response(Answer::fallback)
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

    /// The parts of an HTTP client, for `http` and `reqwest` types alike.
    #[cfg(feature = "http")]
    fn http_parts(
        self,
    ) -> ResilienceBuilder<Req, Res, crate::classify::HttpClassifier, K, super::Http>
    where
        crate::request::Idempotent: CloneRequest<Req>,
        crate::retry::HttpRetryAfter: crate::retry::RetryAfter<Res>,
        Req: 'static,
        Res: 'static,
    {
        use crate::retry::RetryAfter;
        self.clone_requests_with(crate::request::Idempotent)
            .retry_after(|response: &Res| crate::retry::HttpRetryAfter.retry_after(response))
            .profile(crate::classify::HttpClassifier::default())
    }

    /// Sets the parts an HTTP or gRPC profile gives at once.
    #[cfg(feature = "http")]
    fn profile<C2, P2>(self, classifier: C2) -> ResilienceBuilder<Req, Res, C2, K, P2> {
        ResilienceBuilder {
            config: self.config,
            classifier,
            key: self.key,
            weigher: self.weigher,
            admit: self.admit,
            copier: self.copier,
            hint: self.hint,
            fallback: self.fallback,
            events: self.events,
            _profile: PhantomData,
        }
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
    pub fn build(self) -> Result<ResilienceLayer<Req, Res, C, K, P>, ConfigError>
    where
        C: Clone,
    {
        let ResilienceBuilder {
            config,
            classifier,
            key,
            weigher,
            admit,
            copier,
            hint,
            fallback,
            events,
            _profile,
        } = self;
        config.validate()?;
        let check = Check::layer("resilience stack");
        if config.cache.is_some() && key.is_none() {
            return Err(check.missing("cache_key", "a cache section needs a cache key function"));
        }
        let needs_copies = config.retry.is_some() || config.hedge.is_some();
        if needs_copies && !copier.is_some() {
            return Err(check.missing(
                "clone_requests",
                "retries and hedges need a way to copy requests",
            ));
        }
        let parts = Parts {
            config: &config,
            classifier: &classifier,
            events: events.as_ref(),
        };
        Ok(ResilienceLayer {
            metrics: parts.metrics(),
            cache: parts.cache(key, weigher, admit)?,
            // A fallback's answer teaches the adaptive limit nothing.
            admission: AdmissionLayers::new(
                &config,
                events.as_ref(),
                parts.judge(Outcome::Ignored),
            )?,
            retry: parts.retry(&copier, hint)?,
            breaker: parts.breaker(fallback)?,
            hedge: parts.hedge(&copier)?,
            timeout: config.timeout.map(TimeoutLayer::new).transpose()?,
            balance: parts.balance(),
            classifier: classifier.clone(),
            _profile: PhantomData,
        })
    }
}

/// What each layer of a stack is built from.
struct Parts<'a, C> {
    config: &'a ResilienceConfig,
    classifier: &'a C,
    events: Option<&'a Events>,
}

impl<C: Clone> Parts<'_, C> {
    /// The stack's classifier as one layer uses it, with the outcome it
    /// gives a fallback's answer: a failure to the caller (metrics) and to
    /// the cache (which prefers a stale entry), nothing to retry or count
    /// for the layers inside.
    fn judge(&self, fallback: Outcome) -> Judge<C> {
        Judge::new(self.classifier.clone(), fallback)
    }

    fn service(&self) -> String {
        self.config.service.clone()
    }

    fn metrics(&self) -> Option<MetricsLayer<Judge<C>>> {
        self.config
            .metrics
            .then(|| MetricsLayer::new(self.service()).classify(self.judge(Outcome::Failure)))
    }

    fn cache<Req, Res, K>(
        &self,
        key: Option<SharedKey<Req, K>>,
        weigher: Weighing<K, Res>,
        admit: Option<std::sync::Arc<super::answer::AdmitFn<Res>>>,
    ) -> Result<Option<StackCache<Req, Res, K, C>>, ConfigError> {
        let (Some(config), Some(key)) = (self.config.cache.clone(), key) else {
            return Ok(None);
        };
        let layer = CacheLayer::with_key(config.service(self.service()), key)
            .map_err(|e| e.in_section("cache"))?
            .classify(CacheJudge::new(self.judge(Outcome::Failure), admit))
            .mark_with(MarkAnswer)
            .weigh_with(weigher);
        Ok(Some(layer))
    }

    fn retry<Req, Res>(
        &self,
        copier: &Copier<Req>,
        hint: Hint<Res>,
    ) -> Result<Option<StackRetry<Req, Res, C>>, ConfigError> {
        let Some(mut config) = self.config.retry.clone() else {
            return Ok(None);
        };
        config = config.service(self.service());
        if let Some(hub) = self.events {
            config = config.events(hub);
        }
        let layer = RetryLayer::new(config)
            .map_err(|e| e.in_section("retry"))?
            .classify(self.judge(Outcome::Ignored))
            .clone_requests_with(copier.clone())
            .retry_after_hint(hint);
        Ok(Some(layer))
    }

    fn breaker<Req, Res>(
        &self,
        fallback: Fallback<Req, Res>,
    ) -> Result<Option<StackBreaker<Req, Res, C>>, ConfigError> {
        let Some(mut config) = self.config.circuit_breaker.clone() else {
            return Ok(None);
        };
        config = config.service(self.service());
        if let Some(hub) = self.events {
            config = config.events(hub);
        }
        let layer = CircuitBreakerLayer::new(config)
            .map_err(|e| e.in_section("circuit_breaker"))?
            .classify(self.judge(Outcome::Ignored))
            .with_fallback(fallback);
        Ok(Some(layer))
    }

    fn hedge<Req>(&self, copier: &Copier<Req>) -> Result<Option<StackHedge<Req, C>>, ConfigError> {
        let Some(config) = self.config.hedge.clone() else {
            return Ok(None);
        };
        let layer = HedgeLayer::new(config.service(self.service()))
            .map_err(|e| e.in_section("hedge"))?
            .clone_requests_with(copier.clone())
            .classify(self.judge(Outcome::Ignored));
        Ok(Some(layer))
    }

    fn balance(&self) -> crate::balance::BalanceConfig {
        let mut balance = self.config.balance.clone().service(self.service());
        if let Some(hub) = self.events {
            balance = balance.events(hub);
        }
        balance
    }
}

#[cfg(feature = "http")]
impl<ReqB, ResB, C, K, P> ResilienceBuilder<http::Request<ReqB>, http::Response<ResB>, C, K, P> {
    /// The parts an HTTP client stack wants (hyper-util's `Client`, any
    /// service of `http::Request`s):
    ///
    /// - 429 and 5xx responses but 501 are failures
    ///   ([`HttpClassifier`](crate::classify::HttpClassifier));
    /// - only requests safe to repeat are copied for retries and hedges
    ///   ([`Idempotent`](crate::request::Idempotent): idempotent methods,
    ///   or an `Idempotency-Key` header); a `POST` is sent once;
    /// - a 429 or 503's `Retry-After` sets the wait before a retry;
    /// - a cached response carries its
    ///   [`CacheStatus`](crate::cache::CacheStatus) in its extensions.
    ///
    /// The request body must be `Clone` (`Full<Bytes>`, `Bytes`, `String`)
    /// for a copy to be made.
    pub fn http(
        self,
    ) -> ResilienceBuilder<
        http::Request<ReqB>,
        http::Response<ResB>,
        crate::classify::HttpClassifier,
        K,
        super::Http,
    >
    where
        ReqB: Clone + 'static,
        ResB: 'static,
    {
        self.http_parts()
    }
}

#[cfg(feature = "reqwest")]
impl<C, K, P> ResilienceBuilder<reqwest::Request, reqwest::Response, C, K, P> {
    /// The parts a `reqwest::Client` stack wants: as [`http`](Self::http)
    /// gives for `http` types. Requests are copied with `try_clone`, so a
    /// streaming body is sent once.
    pub fn reqwest(
        self,
    ) -> ResilienceBuilder<
        reqwest::Request,
        reqwest::Response,
        crate::classify::HttpClassifier,
        K,
        super::Http,
    > {
        self.http_parts()
    }
}

#[cfg(feature = "grpc")]
impl<ReqB, ResB, C, K, P> ResilienceBuilder<http::Request<ReqB>, http::Response<ResB>, C, K, P> {
    /// The parts a gRPC client stack (a tonic `Channel`) wants:
    ///
    /// - the `grpc-status` decides, in the headers or in the trailers at
    ///   the end of the body ([`GrpcClassifier`](crate::classify::GrpcClassifier));
    ///   the stack watches the body and records the outcome when it ends;
    /// - the stack's errors leave as the `tonic::Status` they mean
    ///   ([`crate::error::grpc_status`]): an open circuit is `UNAVAILABLE`,
    ///   an elapsed deadline `DEADLINE_EXCEEDED`.
    ///
    /// gRPC requests are `POST`s, which are not safe to repeat: retries and
    /// hedges need [`clone_requests_with`](Self::clone_requests_with) for
    /// the methods you know to be idempotent.
    pub fn grpc(
        self,
    ) -> ResilienceBuilder<
        http::Request<ReqB>,
        http::Response<ResB>,
        crate::classify::GrpcClassifier,
        K,
        super::Grpc,
    > {
        self.profile(crate::classify::GrpcClassifier::default())
    }
}
