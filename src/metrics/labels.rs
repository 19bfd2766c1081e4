//! Labels per route, method and status class, bounded.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};

use tokio::time::Instant;

use super::{CLASSES, ClassOf, Labels, OUTCOMES, StatusClass, Tally, outcome_index};
use crate::classify::Outcome;
use crate::config::{Check, ConfigError};
use crate::key::{Keyer, NONE, Registry};
use crate::telemetry::{Counter, Gauge, Histogram, Scope};

/// Which labels a [`MetricsLayer`](super::MetricsLayer) adds on HTTP calls:
/// `route` (from a [`Keyer`], such as [`ByRoute`](crate::key::ByRoute)),
/// `method` and `status_class`, and the bound on the label sets. See the
/// [module docs](super).
///
/// # Example
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use tower_bulwark::key::ByRoute;
/// use tower_bulwark::metrics::{HttpLabels, MetricsLayer};
///
/// let metrics = MetricsLayer::new("api")
///     .labels(HttpLabels::new().route(ByRoute).method().status_class())
///     .expect("max_keys is not zero");
/// # let _ = metrics;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HttpLabels<Kr = NoRoute> {
    route: Option<Kr>,
    method: bool,
    status_class: bool,
    max_keys: usize,
}

/// No `route` label: the default of [`HttpLabels`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRoute;

impl<Req> Keyer<Req> for NoRoute {
    fn hash_key<H: Hasher>(&self, _req: &Req, _state: &mut H) -> bool {
        false
    }

    fn label(&self, _req: &Req) -> Arc<str> {
        Arc::from(NONE)
    }
}

/// The values of the `method` label; any other method is `other`.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other",
];

fn method_index(method: &http::Method) -> usize {
    METHODS
        .iter()
        .take(METHODS.len() - 1)
        .position(|m| *m == method.as_str())
        .unwrap_or(METHODS.len() - 1)
}

impl HttpLabels {
    /// No label yet; at most 100 label sets.
    pub fn new() -> Self {
        HttpLabels {
            route: None,
            method: false,
            status_class: false,
            max_keys: 100,
        }
    }
}

impl Default for HttpLabels {
    fn default() -> Self {
        Self::new()
    }
}

impl<Kr> HttpLabels<Kr> {
    /// A `route` label from `keyer` (`none` for a request without a key).
    pub fn route<K2>(self, keyer: K2) -> HttpLabels<K2> {
        HttpLabels {
            route: Some(keyer),
            method: self.method,
            status_class: self.status_class,
            max_keys: self.max_keys,
        }
    }

    /// A `method` label: `GET`, `POST`, ..., or `other`.
    pub fn method(mut self) -> Self {
        self.method = true;
        self
    }

    /// A `status_class` label on requests and durations: `1xx` to `5xx`,
    /// or `none` for a call without a response.
    pub fn status_class(mut self) -> Self {
        self.status_class = true;
        self
    }

    /// At most `max_keys` label sets of route and method (then `other`
    /// routes); default 100.
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    pub(super) fn build(self, service: Arc<str>) -> Result<Labelled<Kr>, ConfigError> {
        Check::layer("metrics").nonzero("max_keys", self.max_keys as u64)?;
        Ok(Labelled {
            route: self.route,
            table: Arc::new(Table {
                service,
                method: self.method,
                status_class: self.status_class,
                registry: Registry::new(self.max_keys),
                hasher: RandomState::new(),
            }),
        })
    }
}

/// The labels of a [`MetricsLayer`](super::MetricsLayer) built with
/// [`HttpLabels`].
#[derive(Debug, Clone)]
pub struct Labelled<Kr> {
    route: Option<Kr>,
    table: Arc<Table>,
}

#[derive(Debug)]
struct Table {
    service: Arc<str>,
    method: bool,
    status_class: bool,
    registry: Registry<u64, Arc<RouteHandles>>,
    hasher: RandomState,
}

/// The handles of one route and method.
#[doc(hidden)]
#[derive(Debug)]
pub struct RouteHandles {
    in_flight: Gauge,
    /// By status class (only the first when the label is off), registered
    /// the first time each is seen.
    by_class: [OnceLock<ClassHandles>; CLASSES.len()],
    status_class: bool,
    scope: Scope,
}

#[derive(Debug)]
struct ClassHandles {
    requests: [Counter; 4],
    duration: Histogram,
}

impl ClassHandles {
    fn new(scope: &Scope, class: Option<&'static str>) -> Self {
        let labels = |outcome: Option<&'static str>| {
            let mut labels = Vec::with_capacity(2);
            if let Some(outcome) = outcome {
                labels.push(("outcome", outcome.into()));
            }
            if let Some(class) = class {
                labels.push(("status_class", class.into()));
            }
            labels
        };
        ClassHandles {
            requests: OUTCOMES.map(|o| scope.counter("bulwark_requests_total", &labels(Some(o)))),
            duration: scope.histogram("bulwark_request_duration_seconds", &labels(None)),
        }
    }
}

impl Tally for RouteHandles {
    #[inline]
    fn started(&self) {
        self.in_flight.increment(1.0);
    }

    fn finished(&self, outcome: Option<Outcome>, class: StatusClass, started: Instant) {
        self.in_flight.decrement(1.0);
        let class = if self.status_class { class } else { 0 };
        let handles = self.by_class[class].get_or_init(|| {
            ClassHandles::new(&self.scope, self.status_class.then_some(CLASSES[class]))
        });
        handles.requests[outcome_index(outcome)].increment(1);
        if outcome.is_some() {
            handles.duration.record(
                crate::clock::now()
                    .saturating_duration_since(started)
                    .as_secs_f64(),
            );
        }
    }
}

impl<Kr, B, Res> Labels<http::Request<B>, Res> for Labelled<Kr>
where
    Kr: Keyer<http::Request<B>>,
    Self: ClassOf<Res>,
{
    type Tally = RouteHandles;

    #[inline]
    fn tally(&self, req: &http::Request<B>) -> Arc<RouteHandles> {
        let table = &*self.table;
        let mut state = table.hasher.build_hasher();
        let routed = self
            .route
            .as_ref()
            .is_some_and(|keyer| keyer.hash_key(req, &mut state));
        let method = table.method.then(|| method_index(req.method()));
        method.hash(&mut state);
        let key = state.finish();
        table.registry.get_or_make(
            &key,
            || match (&self.route, routed) {
                (Some(keyer), true) => Some(keyer.label(req)),
                _ => None,
            },
            |route| {
                let mut scope = Scope::new(table.service.clone());
                if self.route.is_some() {
                    scope = scope.with("route", route.into());
                }
                if let Some(method) = method {
                    scope = scope.with("method", METHODS[method].into());
                }
                Arc::new(RouteHandles {
                    in_flight: scope.gauge("bulwark_requests_in_flight", &[]),
                    by_class: Default::default(),
                    status_class: table.status_class,
                    scope,
                })
            },
        )
    }
}

impl<Kr, B> ClassOf<http::Response<B>> for Labelled<Kr> {
    #[inline]
    fn class<E>(result: Result<&http::Response<B>, &E>) -> StatusClass {
        match result {
            Ok(response) => usize::from(response.status().as_u16() / 100).clamp(1, 5),
            Err(_) => 0,
        }
    }
}
