//! The stack on the server side: Metrics → admission control →
//! CircuitBreaker → Timeout, answering by themselves.

use std::fmt;

use http::StatusCode;
use tower_layer::Layer;

use super::ResilienceConfig;
use super::admission::{Admission, AdmissionLayers};
use super::optional::{Optional, maybe};
use crate::circuit_breaker::{
    CircuitBreaker, CircuitBreakerHandle, CircuitBreakerLayer, PerKey, PerKeyLayer,
};
use crate::classify::HttpClassifier;
use crate::config::{Check, ConfigError};
use crate::event::Events;
use crate::metrics::{HttpLabels, Labelled, Metrics, MetricsLayer, NoRoute};
use crate::server::{Respond, RespondLayer, Responding};
use crate::timeout::{Timeout, TimeoutLayer};

/// A server stack without keys: one breaker for every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoKey;

/// A server stack with a breaker and metric labels per route (or key):
/// see [`ServerBuilder::per_route`].
#[derive(Debug, Clone)]
pub struct PerRoute<Kr> {
    keyer: Kr,
}

/// Builds a [`ServerLayer`]; made by [`ResilienceLayer::server`](super::ResilienceLayer::server).
pub struct ServerBuilder<C = HttpClassifier, P = crate::server::Http, K = NoKey> {
    config: ResilienceConfig,
    classifier: C,
    respond: Respond<P>,
    keys: K,
    max_keys: usize,
    events: Option<Events>,
}

impl<C: fmt::Debug, P: fmt::Debug, K: fmt::Debug> fmt::Debug for ServerBuilder<C, P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("classifier", &self.classifier)
            .field("respond", &self.respond)
            .field("keys", &self.keys)
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl ServerLayer {
    /// A builder of the server stack `config` describes; the same as
    /// [`ResilienceLayer::server`](super::ResilienceLayer::server).
    pub fn builder(config: ResilienceConfig) -> ServerBuilder {
        ServerBuilder::new(config)
    }
}

impl ServerBuilder {
    pub(super) fn new(config: ResilienceConfig) -> Self {
        ServerBuilder {
            config,
            classifier: HttpClassifier::default(),
            respond: Respond::http(),
            keys: NoKey,
            max_keys: 100,
            events: None,
        }
    }
}

impl<C, K> ServerBuilder<C, crate::server::Http, K> {
    /// Answers an elapsed deadline with `status` instead of 504 (408, say).
    pub fn timeout_status(mut self, status: StatusCode) -> Self {
        self.respond = self.respond.timeout_status(status);
        self
    }
}

impl<C, P, K> ServerBuilder<C, P, K> {
    /// Judges the handlers' answers with `classifier` (see
    /// [`crate::classify`]); by default an HTTP answer of 429 or 5xx but
    /// 501 is a failure.
    pub fn classify<C2>(self, classifier: C2) -> ServerBuilder<C2, P, K> {
        ServerBuilder {
            config: self.config,
            classifier,
            respond: self.respond,
            keys: self.keys,
            max_keys: self.max_keys,
            events: self.events,
        }
    }

    /// A tonic server: the `grpc-status` of the handlers' answers decides
    /// ([`GrpcClassifier`](crate::classify::GrpcClassifier); statuses sent
    /// in trailers count once [`GrpcOutcomeLayer`](crate::grpc::GrpcOutcomeLayer)
    /// is outermost), and the stack answers with gRPC statuses
    /// ([`Respond::grpc`]).
    #[cfg(feature = "grpc")]
    pub fn grpc(self) -> ServerBuilder<crate::classify::GrpcClassifier, crate::server::Grpc, K> {
        ServerBuilder {
            config: self.config,
            classifier: crate::classify::GrpcClassifier::default(),
            respond: Respond::grpc(),
            keys: self.keys,
            max_keys: self.max_keys,
            events: self.events,
        }
    }

    /// A breaker per route (or per key) instead of one for the whole
    /// server, and metrics with a `route` label, from `keyer`: axum's
    /// matched route ([`ByRoute`](crate::key::ByRoute)) or any
    /// [`Keyer`](crate::key::Keyer). At most `max_keys` routes (see
    /// [`crate::key`]).
    pub fn per_route<Kr>(self, keyer: Kr, max_keys: usize) -> ServerBuilder<C, P, PerRoute<Kr>> {
        ServerBuilder {
            config: self.config,
            classifier: self.classifier,
            respond: self.respond,
            keys: PerRoute { keyer },
            max_keys,
            events: self.events,
        }
    }

    /// Sends the breakers' events to `hub` (see [`crate::event`]).
    pub fn events(mut self, hub: &Events) -> Self {
        self.events = Some(hub.clone());
        self
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    ///
    /// The first invalid field, as a [`ConfigError`]; or a section a server
    /// has no use for (`cache`, `retry`, `hedge`: they call a service
    /// again, and a server's handler is not one to call again).
    pub fn build(self) -> Result<ServerLayer<C, P, K>, ConfigError>
    where
        C: Clone,
        P: Clone,
        K: ServerKeys,
    {
        let ServerBuilder {
            config,
            classifier,
            respond,
            keys,
            max_keys,
            events,
        } = self;
        config.validate()?;
        let check = Check::layer("server stack");
        for (section, on) in [
            ("cache", config.cache.is_some()),
            ("retry", config.retry.is_some()),
            ("hedge", config.hedge.is_some()),
        ] {
            if on {
                return Err(
                    check.unsupported(section, "a server stack has no cache, retries or hedges")
                );
            }
        }
        check.nonzero("max_keys", max_keys as u64)?;
        let labels = HttpLabels::new().method().status_class().max_keys(max_keys);
        let metrics = config.metrics.then(|| {
            keys.metrics(
                MetricsLayer::new(config.service.clone()).classify(classifier.clone()),
                labels,
            )
        });
        let metrics = metrics.transpose()?;
        let breaker = match config.circuit_breaker.clone() {
            Some(mut breaker) => {
                breaker = breaker.service(config.service.clone());
                if let Some(hub) = &events {
                    breaker = breaker.events(hub);
                }
                let layer = CircuitBreakerLayer::new(breaker)
                    .map_err(|e| e.in_section("circuit_breaker"))?
                    .classify(classifier.clone())
                    .respond(respond.clone());
                Some(keys.breaker(layer, max_keys)?)
            }
            None => None,
        };
        let admission = AdmissionLayers::new(&config, events.as_ref(), classifier.clone())?;
        let timeout = config
            .timeout
            .map(|t| TimeoutLayer::new(t).map(|l| l.respond(respond.clone())))
            .transpose()?;
        Ok(ServerLayer {
            metrics,
            admission,
            answers: RespondLayer::from(respond).with_other(StatusCode::INTERNAL_SERVER_ERROR),
            breaker,
            timeout,
        })
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoKey {}
    impl<Kr> Sealed for super::PerRoute<Kr> {}
}

/// How a server stack is split by key: [`NoKey`] or [`PerRoute`].
pub trait ServerKeys: sealed::Sealed {
    /// The metric labels.
    #[doc(hidden)]
    type Labels: Clone;
    /// The breaker layer.
    #[doc(hidden)]
    type Breaker<C, P>;

    #[doc(hidden)]
    fn metrics<C>(
        &self,
        layer: MetricsLayer<C>,
        labels: HttpLabels,
    ) -> Result<MetricsLayer<C, Self::Labels>, ConfigError>;

    #[doc(hidden)]
    fn breaker<C: Clone, P: Clone>(
        self,
        layer: CircuitBreakerLayer<C, Respond<P>>,
        max_keys: usize,
    ) -> Result<Self::Breaker<C, P>, ConfigError>;

    /// The handle of the layer's breaker, for [`NoKey`].
    #[doc(hidden)]
    fn handle<C: Clone, P: Clone>(breaker: &Self::Breaker<C, P>) -> CircuitBreakerHandle;
}

impl ServerKeys for NoKey {
    type Labels = Labelled<NoRoute>;
    type Breaker<C, P> = CircuitBreakerLayer<C, Respond<P>>;

    fn metrics<C>(
        &self,
        layer: MetricsLayer<C>,
        labels: HttpLabels,
    ) -> Result<MetricsLayer<C, Self::Labels>, ConfigError> {
        layer.labels(labels)
    }

    fn breaker<C: Clone, P: Clone>(
        self,
        layer: CircuitBreakerLayer<C, Respond<P>>,
        _max_keys: usize,
    ) -> Result<Self::Breaker<C, P>, ConfigError> {
        Ok(layer)
    }

    fn handle<C: Clone, P: Clone>(breaker: &Self::Breaker<C, P>) -> CircuitBreakerHandle {
        breaker.handle()
    }
}

impl<Kr: Clone> ServerKeys for PerRoute<Kr> {
    type Labels = Labelled<Kr>;
    type Breaker<C, P> = PerKeyLayer<Kr, C, Respond<P>>;

    fn metrics<C>(
        &self,
        layer: MetricsLayer<C>,
        labels: HttpLabels,
    ) -> Result<MetricsLayer<C, Self::Labels>, ConfigError> {
        layer.labels(labels.route(self.keyer.clone()))
    }

    fn breaker<C: Clone, P: Clone>(
        self,
        layer: CircuitBreakerLayer<C, Respond<P>>,
        max_keys: usize,
    ) -> Result<Self::Breaker<C, P>, ConfigError> {
        layer.per_key(self.keyer, max_keys)
    }

    fn handle<C: Clone, P: Clone>(breaker: &Self::Breaker<C, P>) -> CircuitBreakerHandle {
        breaker.keyless()
    }
}

/// The layers of [`ResilienceLayer`](super::ResilienceLayer) that belong on
/// a server, in their order: **Metrics → admission control (rate limit,
/// bulkhead or adaptive concurrency) → CircuitBreaker → Timeout →** the
/// handlers; each answers by itself ([`Respond`]), and the stack keeps the
/// handlers' error type, so axum's `Router::layer` and tonic's
/// `Server::layer` take it as it is. See the [module docs](super) and
/// [`crate::server`].
pub struct ServerLayer<C = HttpClassifier, P = crate::server::Http, K: ServerKeys = NoKey> {
    metrics: Option<MetricsLayer<C, K::Labels>>,
    admission: AdmissionLayers<C>,
    answers: RespondLayer<P>,
    breaker: Option<K::Breaker<C, P>>,
    timeout: Option<TimeoutLayer<Respond<P>>>,
}

/// Admission control, its rejections answered, when any is on.
type Admitted<T, C, P> = Optional<Responding<Admission<T, C>, P>, T>;

impl<C: Clone, P: Clone, K: ServerKeys> ServerLayer<C, P, K> {
    /// A handle to the breaker of requests without a route (with
    /// [`NoKey`], of every request); `None` when the breaker is off.
    pub fn circuit_breaker(&self) -> Option<CircuitBreakerHandle> {
        self.breaker.as_ref().map(K::handle::<C, P>)
    }

    /// The cap on calls in flight now: the bulkhead's, or the limit the
    /// adaptive layer has learned; `None` when neither is on.
    pub fn concurrency_limit(&self) -> Option<usize> {
        self.admission.concurrency_limit()
    }

    /// Admission control around `inner`, answering its rejections.
    fn admitted<T>(&self, inner: T) -> Admitted<T, C, P> {
        if !self.admission.is_on() {
            return Optional::Off(inner);
        }
        Optional::On(self.answers.layer(self.admission.layer(inner)))
    }
}

impl<C: Clone, P: Clone, Kr: Clone> ServerLayer<C, P, PerRoute<Kr>> {
    /// The breakers per route (or key) kept now, with their labels.
    pub fn breakers(&self) -> Option<&PerKeyLayer<Kr, C, Respond<P>>> {
        self.breaker.as_ref()
    }
}

impl<C: Clone, P: Clone, K: ServerKeys> Clone for ServerLayer<C, P, K>
where
    K::Breaker<C, P>: Clone,
{
    fn clone(&self) -> Self {
        ServerLayer {
            metrics: self.metrics.clone(),
            admission: self.admission.clone(),
            answers: self.answers.clone(),
            breaker: self.breaker.clone(),
            timeout: self.timeout.clone(),
        }
    }
}

impl<C: fmt::Debug, P: fmt::Debug, K: ServerKeys> fmt::Debug for ServerLayer<C, P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerLayer")
            .field("metrics", &self.metrics.is_some())
            .field("rate_limit", &self.admission.rate_limit.is_some())
            .field("bulkhead", &self.admission.bulkhead.is_some())
            .field("adaptive_concurrency", &self.admission.adaptive.is_some())
            .field("circuit_breaker", &self.breaker.is_some())
            .field("timeout", &self.timeout.as_ref().map(TimeoutLayer::timeout))
            .finish()
    }
}

type Timed<S, P> = Optional<Timeout<S, Respond<P>>, S>;
type Measured<T, C, L> = Optional<Metrics<T, C, L>, T>;

impl<S, C: Clone, P: Clone> Layer<S> for ServerLayer<C, P, NoKey> {
    type Service = Measured<
        Admitted<Optional<CircuitBreaker<Timed<S, P>, C, Respond<P>>, Timed<S, P>>, C, P>,
        C,
        Labelled<NoRoute>,
    >;

    fn layer(&self, inner: S) -> Self::Service {
        let timed = maybe(self.timeout.as_ref(), inner);
        let guarded = maybe(self.breaker.as_ref(), timed);
        maybe(self.metrics.as_ref(), self.admitted(guarded))
    }
}

impl<S, C: Clone, P: Clone, Kr: Clone> Layer<S> for ServerLayer<C, P, PerRoute<Kr>> {
    type Service = Measured<
        Admitted<Optional<PerKey<Timed<S, P>, Kr, C, Respond<P>>, Timed<S, P>>, C, P>,
        C,
        Labelled<Kr>,
    >;

    fn layer(&self, inner: S) -> Self::Service {
        let timed = maybe(self.timeout.as_ref(), inner);
        let guarded = maybe(self.breaker.as_ref(), timed);
        maybe(self.metrics.as_ref(), self.admitted(guarded))
    }
}
