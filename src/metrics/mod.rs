//! RED metrics (rate, errors, duration) for any service.
//!
//! [`Metrics`] counts every call by outcome, times it, and tracks the calls
//! in flight, through the [`metrics`](https://docs.rs/metrics) facade:
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `bulwark_requests_total` | counter | `service`, `outcome` | calls by outcome: `success`, `failure`, `ignored` (from the classifier, see [`crate::classify`]), or `cancelled` (dropped before it finished) |
//! | `bulwark_request_duration_seconds` | histogram | `service` | time from call to answer, for calls that finished |
//! | `bulwark_requests_in_flight` | gauge | `service` | calls under way |
//!
//! The handles are resolved when the layer is built, against the recorder
//! installed then: install yours (e.g. `metrics-exporter-prometheus`) first.
//! A call formats no label and allocates nothing. The layer keeps the inner
//! error type, so `Infallible` stays `Infallible` for axum.
//!
//! Put it outermost, so it sees what callers see. The crate docs list
//! every metric of every layer in one table.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use tower::{service_fn, Layer, Service, ServiceExt};
//! use tower_bulwark::metrics::MetricsLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Infallible> {
//! let mut svc = MetricsLayer::new("users")
//!     .layer(service_fn(|id: u32| async move { Ok::<_, Infallible>(id) }));
//! assert_eq!(svc.ready().await?.call(7).await?, 7);
//! # Ok(())
//! # }
//! ```

pub mod future;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;

use self::future::ResponseFuture;
pub use self::layer::MetricsLayer;
use crate::classify::{DefaultClassifier, Outcome};
use crate::telemetry::{Counter, Gauge, Histogram, Scope};

/// The handles of one layer, resolved when it was built.
#[derive(Debug)]
pub(crate) struct Handles {
    // success, failure, ignored, cancelled
    requests: [Counter; 4],
    duration: Histogram,
    in_flight: Gauge,
}

impl Handles {
    pub(crate) fn new(service: Arc<str>) -> Self {
        let scope = Scope::new(service);
        Handles {
            requests: ["success", "failure", "ignored", "cancelled"]
                .map(|o| scope.counter("bulwark_requests_total", &[("outcome", o.into())])),
            duration: scope.histogram("bulwark_request_duration_seconds", &[]),
            in_flight: scope.gauge("bulwark_requests_in_flight", &[]),
        }
    }

    #[inline]
    fn started(&self) {
        self.in_flight.increment(1.0);
    }

    #[inline]
    fn finished(&self, outcome: Option<Outcome>, started: Instant) {
        self.in_flight.decrement(1.0);
        let index = match outcome {
            Some(Outcome::Success) => 0,
            Some(Outcome::Failure) => 1,
            Some(Outcome::Ignored) => 2,
            None => 3,
        };
        self.requests[index].increment(1);
        if outcome.is_some() {
            self.duration.record(started.elapsed().as_secs_f64());
        }
    }
}

/// Reports RED metrics of a service. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Metrics<S, C = DefaultClassifier> {
    inner: S,
    handles: Arc<Handles>,
    classifier: C,
}

impl<S, C> Metrics<S, C> {
    pub(crate) fn from_parts(inner: S, handles: Arc<Handles>, classifier: C) -> Self {
        Metrics {
            inner,
            handles,
            classifier,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Req> Service<Req> for Metrics<S, C>
where
    S: Service<Req>,
    C: crate::classify::Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        self.handles.started();
        let started = Instant::now();
        ResponseFuture::new(
            self.inner.call(req),
            self.handles.clone(),
            self.classifier.clone(),
            started,
        )
    }
}
