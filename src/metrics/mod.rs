//! RED metrics (rate, errors, duration) for any service.
//!
//! [`Metrics`] counts every call by outcome, times it, and tracks the calls
//! in flight, through the [`metrics`](https://docs.rs/metrics) facade:
//! `bulwark_requests_total` (by `outcome`: `success`, `failure`, `ignored`
//! as the classifier says, see [`crate::classify`], or `cancelled`, dropped
//! before it finished), `bulwark_request_duration_seconds` and
//! `bulwark_requests_in_flight`, as [the crate's metrics table](crate#metrics)
//! lists them with every other layer's.
//!
//! The handles are resolved when the layer is built, against the recorder
//! installed then: install yours (e.g. `metrics-exporter-prometheus`) first.
//! A call formats no label and allocates nothing. The layer keeps the inner
//! error type, so `Infallible` stays `Infallible` for axum.
//!
//! # Labels per route, method and status
//!
//! On an HTTP server (or client), [`MetricsLayer::labels`] with
//! [`HttpLabels`] (feature `keyed`) adds the labels you choose: `route`
//! (from a [`Keyer`](crate::key::Keyer), such as axum's matched route),
//! `method` (`GET`, `POST`, ... or `other`) and `status_class` (`2xx`,
//! `5xx`, ..., or `none` for a call without a response). Their values come
//! from fixed sets, and routes from at most `max_keys` labels (then
//! `other`), so the series stay bounded whatever the requests say. The
//! series of a label set are registered the first time it is seen, with
//! the recorder installed then; `bulwark_requests_in_flight` has the
//! `route` and `method` labels only.
//!
//! Put it outermost, so it sees what callers see.
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
#[cfg(all(feature = "keyed", feature = "http"))]
mod labels;
mod layer;
mod service;

use std::sync::Arc;

use tokio::time::Instant;

#[cfg(all(feature = "keyed", feature = "http"))]
pub use self::labels::{HttpLabels, Labelled, NoRoute};
pub use self::layer::MetricsLayer;
pub use self::service::Metrics;
use crate::classify::Outcome;
use crate::telemetry::{Counter, Gauge, Histogram, Scope};

/// The status class of an answer: `1xx` to `5xx`, or none (not an HTTP
/// response, an error, a cancelled call). An index into `CLASSES`.
pub(crate) type StatusClass = usize;

/// The values of the `status_class` label, by [`StatusClass`].
#[cfg(all(feature = "keyed", feature = "http"))]
pub(crate) const CLASSES: [&str; 6] = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];

/// The counters and histogram of calls, and the in-flight gauge, that a
/// call reports to.
#[doc(hidden)]
pub trait Tally: Send + Sync + 'static {
    fn started(&self);
    fn finished(&self, outcome: Option<Outcome>, class: StatusClass, started: Instant);
}

/// The index of `outcome` (`None`: cancelled) among the `outcome` labels.
#[inline]
fn outcome_index(outcome: Option<Outcome>) -> usize {
    match outcome {
        Some(Outcome::Success) => 0,
        Some(Outcome::Failure) => 1,
        Some(Outcome::Ignored) => 2,
        None => 3,
    }
}

const OUTCOMES: [&str; 4] = ["success", "failure", "ignored", "cancelled"];

/// The handles of one layer without labels, resolved when it was built.
#[doc(hidden)]
#[derive(Debug)]
pub struct Handles {
    // success, failure, ignored, cancelled
    requests: [Counter; 4],
    duration: Histogram,
    in_flight: Gauge,
}

impl Handles {
    pub(crate) fn new(service: Arc<str>) -> Self {
        let scope = Scope::new(service);
        Handles {
            requests: OUTCOMES
                .map(|o| scope.counter("bulwark_requests_total", &[("outcome", o.into())])),
            duration: scope.histogram("bulwark_request_duration_seconds", &[]),
            in_flight: scope.gauge("bulwark_requests_in_flight", &[]),
        }
    }

    #[inline]
    fn count(&self, outcome: Option<Outcome>, started: Instant) {
        self.requests[outcome_index(outcome)].increment(1);
        if outcome.is_some() {
            self.duration.record(
                crate::clock::now()
                    .saturating_duration_since(started)
                    .as_secs_f64(),
            );
        }
    }
}

impl Tally for Handles {
    #[inline]
    fn started(&self) {
        self.in_flight.increment(1.0);
    }

    #[inline]
    fn finished(&self, outcome: Option<Outcome>, _class: StatusClass, started: Instant) {
        self.in_flight.decrement(1.0);
        self.count(outcome, started);
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Unlabelled {}
    #[cfg(all(feature = "keyed", feature = "http"))]
    impl<Kr> Sealed for super::labels::Labelled<Kr> {}
}

/// The status class of an answer of type `Res`, for a label mode.
pub trait ClassOf<Res>: sealed::Sealed {
    /// The status class of an answer.
    #[doc(hidden)]
    fn class<E>(result: Result<&Res, &E>) -> StatusClass;
}

/// How a [`Metrics`] layer labels a call of `Req` answered with `Res`:
/// [`Unlabelled`], or the labels of [`HttpLabels`].
#[allow(private_bounds)]
pub trait Labels<Req, Res>: ClassOf<Res> {
    /// What a call reports to.
    #[doc(hidden)]
    type Tally: Tally;

    /// The tally of `req`.
    #[doc(hidden)]
    fn tally(&self, req: &Req) -> Arc<Self::Tally>;
}

/// No labels but `service` and `outcome`: the default.
#[derive(Debug, Clone)]
pub struct Unlabelled {
    handles: Arc<Handles>,
    #[cfg(all(feature = "keyed", feature = "http"))]
    service: Arc<str>,
}

impl Unlabelled {
    pub(crate) fn new(service: Arc<str>) -> Self {
        Unlabelled {
            handles: Arc::new(Handles::new(service.clone())),
            #[cfg(all(feature = "keyed", feature = "http"))]
            service,
        }
    }

    /// The `service` label.
    #[cfg(all(feature = "keyed", feature = "http"))]
    pub(crate) fn service(&self) -> Arc<str> {
        self.service.clone()
    }
}

impl<Req, Res> Labels<Req, Res> for Unlabelled {
    type Tally = Handles;

    #[inline]
    fn tally(&self, _req: &Req) -> Arc<Handles> {
        self.handles.clone()
    }
}

impl<Res> ClassOf<Res> for Unlabelled {
    #[inline]
    fn class<E>(_result: Result<&Res, &E>) -> StatusClass {
        0
    }
}
