//! The gateway: `/users…` and `/orders…` to several instances of each
//! service, each through a `ResilienceLayer` (balancing with outlier
//! ejection, a circuit breaker, a timeout per attempt, budgeted retries of
//! idempotent requests, a concurrency limit learned from latency, and a
//! cache for reads that answers with the last good answer while the
//! service fails).
//!
//! The users stack has a fallback: while its breaker is open, a read of a
//! user nobody has cached gets a degraded answer (`"degraded": true`,
//! header `x-bulwark-fallback`). The orders stack has none: while its
//! breaker is open, callers get a 503 with `Retry-After`. A timeout is a
//! 504; no endpoint available, a 503. A call past the learned limit is
//! turned away at once with a 503 (header `x-bulwark-shed`), and a read
//! with an entry in the cache gets that entry instead.
//!
//! The cache keeps at most 64 MiB (weighed by key and body), keyed by a
//! route's path and the query parameters it reads, and stores 2xx answers
//! only. A `POST` is retried only with an `Idempotency-Key`, which is sent
//! on to the service. A 503 that an order instance gives because the user
//! service is down (header `x-dependency-unavailable`) does not count
//! against the order service. Paths with dot segments (`..`, `%2e`) are
//! refused before anything is proxied.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tower::{BoxError, Service, ServiceExt, service_fn};
use tower_bulwark::adaptive::AdaptiveConfig;
use tower_bulwark::balance::{BalanceConfig, OutlierDetection};
use tower_bulwark::cache::{CacheConfig, CacheStatus};
use tower_bulwark::circuit_breaker::{
    CircuitBreakerConfig, CircuitBreakerHandle, OpenDuration, SlidingWindow,
};
use tower_bulwark::error::ErrorKind;
use tower_bulwark::event::Events;
use tower_bulwark::retry::RetryConfig;
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};

use super::client::{HttpClient, Request, Response as UpstreamResponse};
use super::orders::DEPENDENCY_HEADER;
use tower_bulwark::classify::{Classify, HttpClassifier, Outcome};
use tower_bulwark::stack::{BalancedService, Http};

/// The header that says a response is a fallback's.
pub const FALLBACK_HEADER: &str = "x-bulwark-fallback";
/// The header that says where a response came from in the cache: `hit`,
/// `miss`, `stale` or `coalesced`.
pub const CACHE_HEADER: &str = "x-bulwark-cache";
/// The header that says the gateway turned a request away at once, its
/// upstream having more calls under way than it can serve.
pub const SHED_HEADER: &str = "x-bulwark-shed";

/// How the gateway judges its upstreams' answers: as the HTTP classifier
/// does, except that a 503 an instance gives because a dependency of its
/// own is down (header `x-dependency-unavailable`) says nothing of the
/// instance, and counts neither way.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpstreamClassifier {
    http: HttpClassifier,
}

impl<E> Classify<UpstreamResponse, E> for UpstreamClassifier {
    fn classify(&self, result: Result<&UpstreamResponse, &E>) -> Outcome {
        match result {
            Ok(response) if response.headers().contains_key(DEPENDENCY_HEADER) => Outcome::Ignored,
            result => self.http.classify(result),
        }
    }
}

/// One upstream service as the gateway sees it.
pub type Upstream = BalancedService<String, HttpClient, Request, UpstreamClassifier, String, Http>;

/// The stack an upstream is built with, which its breaker and its
/// concurrency limit are read from.
type UpstreamLayer = ResilienceLayer<Request, UpstreamResponse, UpstreamClassifier, String, Http>;

/// The most bytes the gateway's cache keeps, per upstream.
pub const CACHE_BYTES: u64 = 64 << 20;

/// The cache key of a read: the route's path and the query parameters it
/// reads, in a fixed order (`/users?limit=5&after=2&x=1` and
/// `/users?after=2&limit=5` are one entry); `None` for a write, or for a
/// path the services do not serve.
pub fn cache_key(request: &Request) -> Option<String> {
    if request.method() != http::Method::GET {
        return None;
    }
    let query = |name: &str| {
        request.uri().query().and_then(|query| {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| *key == name)
                .and_then(|(_, value)| value.parse::<i64>().ok())
        })
    };
    let segments: Vec<&str> = request.uri().path().trim_matches('/').split('/').collect();
    match segments.as_slice() {
        [resource @ ("users" | "orders"), id] => {
            let id: i64 = id.parse().ok()?;
            Some(format!("/{resource}/{id}"))
        }
        ["users"] => Some(format!(
            "/users?after={}&limit={}",
            query("after").unwrap_or(0),
            query("limit").unwrap_or(20)
        )),
        ["orders"] => Some(format!("/orders?user_id={}", query("user_id")?)),
        _ => None,
    }
}

/// What an entry weighs in the cache, in bytes: its key, its body, its
/// headers, and what holding them costs (the map's entries, the cache's
/// own bookkeeping), measured roughly: the cache's real footprint stays
/// near its cap.
fn weight(key: &str, response: &UpstreamResponse) -> u32 {
    let headers: usize = response
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 96)
        .sum();
    u32::try_from(key.len() + response.body().len() + headers + 768).unwrap_or(u32::MAX)
}

/// The gateway's two upstreams, and their breakers for whoever watches.
#[derive(Clone)]
pub struct Gateway {
    pub users: Upstream,
    pub orders: Upstream,
    pub users_breaker: CircuitBreakerHandle,
    pub orders_breaker: CircuitBreakerHandle,
    layers: Arc<[UpstreamLayer; 2]>,
}

/// The stack configuration both upstreams use; `service` names it.
pub fn config(service: &str) -> ResilienceConfig {
    ResilienceConfig::default()
        .service(service)
        .timeout(Duration::from_millis(250))
        .retry(
            RetryConfig::default()
                .max_attempts(3)
                .backoff(Duration::from_millis(10), Duration::from_millis(200)),
        )
        .cache(
            CacheConfig::default()
                .ttl(Duration::from_secs(2))
                .stale_if_error(Duration::from_secs(600)),
        )
        .circuit_breaker(
            CircuitBreakerConfig::default()
                .sliding_window(SlidingWindow::time(Duration::from_secs(5)))
                .minimum_calls(20)
                .failure_rate_threshold(0.5)
                .open_duration(OpenDuration::exponential(
                    Duration::from_secs(2),
                    Duration::from_secs(8),
                )),
        )
        .balance(
            BalanceConfig::default()
                .outlier_detection(
                    OutlierDetection::default()
                        .consecutive_failures(Some(3))
                        .failure_rate(0.5, 20, 10)
                        .ejection_time(Duration::from_secs(3), Duration::from_secs(30)),
                )
                // A few fixed instances: a series each for the dashboard.
                .endpoint_metrics(true),
        )
        // The calls under way at once, learned from latency: past it, a
        // call is turned away at once (503) instead of waiting in a queue
        // it would leave by its timeout.
        .adaptive_concurrency(AdaptiveConfig::default())
}

/// The users fallback: a degraded user for a read, a 503 otherwise.
async fn users_fallback(request: Request) -> Result<UpstreamResponse, BoxError> {
    let path = request.uri().path().to_owned();
    let id = path
        .strip_prefix("/users/")
        .and_then(|id| id.parse::<u64>().ok());
    let response = match (request.method() == http::Method::GET, id) {
        (true, Some(id)) => http::Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(FALLBACK_HEADER, "circuit-open")
            .body(Bytes::from(format!(
                r#"{{"id":{id},"name":null,"degraded":true}}"#
            )))?,
        _ => http::Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header(FALLBACK_HEADER, "circuit-open")
            .header(http::header::RETRY_AFTER, "2")
            .body(Bytes::from_static(b"the user service is unavailable"))?,
    };
    Ok(response)
}

impl Gateway {
    /// Stacks over the user instances at `users` and the order instances at
    /// `orders`, each with a cache of [`CACHE_BYTES`].
    pub fn new(
        users: &[String],
        orders: &[String],
        client: reqwest::Client,
        events: &Events,
    ) -> Result<Self, BoxError> {
        Self::with_cache(users, orders, client, events, Some(CACHE_BYTES))
    }

    /// As [`new`](Self::new), with caches of `cache_bytes` each, or none.
    pub fn with_cache(
        users: &[String],
        orders: &[String],
        client: reqwest::Client,
        events: &Events,
        cache_bytes: Option<u64>,
    ) -> Result<Self, BoxError> {
        let endpoints = |urls: &[String]| -> Vec<(String, HttpClient)> {
            urls.iter()
                .map(|url| (url.clone(), HttpClient::new(client.clone(), url.as_str())))
                .collect()
        };
        let config = |service: &str| {
            let mut config = config(service);
            config.cache = match (config.cache.take(), cache_bytes) {
                // With the weigher below, the most bytes kept.
                (Some(cache), Some(bytes)) => Some(cache.max_entries(bytes)),
                _ => None,
            };
            config
        };
        let stack = |service: &str| {
            ResilienceLayer::builder(config(service))
                .http()
                .classify(UpstreamClassifier::default())
                .cache_key(cache_key)
                .cache_weigher(|key: &String, response: &UpstreamResponse| weight(key, response))
                // A 404 (or any answer but a 2xx) is not kept.
                .cache_if(|response: &UpstreamResponse| response.status().is_success())
                .events(events)
        };
        let users_layer = stack("users")
            .fallback(service_fn(users_fallback))
            .build()?;
        let orders_layer = stack("orders").build()?;
        let breaker = |layer: &UpstreamLayer| {
            layer
                .circuit_breaker()
                .ok_or_else(|| BoxError::from("the gateway's stacks have a breaker"))
        };
        Ok(Gateway {
            users_breaker: breaker(&users_layer)?,
            orders_breaker: breaker(&orders_layer)?,
            users: users_layer.balance(endpoints(users))?,
            orders: orders_layer.balance(endpoints(orders))?,
            layers: Arc::new([users_layer, orders_layer]),
        })
    }

    /// The concurrency limits learned now for the users and the orders.
    pub fn concurrency_limits(&self) -> [usize; 2] {
        self.layers
            .each_ref()
            .map(|layer| layer.concurrency_limit().unwrap_or(usize::MAX))
    }

    /// The gateway's routes.
    pub fn router(self) -> Router {
        routes(self.users, self.orders)
    }
}

/// The routes of the bare proxy: the same as the gateway's, to the same
/// instances in turn, with no layer at all. What the load test compares
/// the gateway with.
pub fn bare_router(users: &[String], orders: &[String], client: reqwest::Client) -> Router {
    let endpoints = |urls: &[String]| RoundRobin {
        endpoints: urls
            .iter()
            .map(|url| HttpClient::new(client.clone(), url.as_str()))
            .collect(),
        next: Arc::default(),
    };
    routes(endpoints(users), endpoints(orders))
}

/// Each instance in turn.
#[derive(Clone)]
pub struct RoundRobin {
    endpoints: Arc<[HttpClient]>,
    next: Arc<AtomicUsize>,
}

impl Service<Request> for RoundRobin {
    type Response = UpstreamResponse;
    type Error = BoxError;
    type Future = <HttpClient as Service<Request>>::Future;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len().max(1);
        match self.endpoints.get(n) {
            Some(endpoint) => endpoint.clone().call(request),
            None => Box::pin(async { Err(BoxError::from("no instance")) }),
        }
    }
}

/// A service the gateway's routes send requests to: the stack, or the bare
/// proxy's round robin.
pub trait Proxied:
    Service<Request, Response = UpstreamResponse, Error = BoxError, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<U> Proxied for U where
    U: Service<Request, Response = UpstreamResponse, Error = BoxError, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// `/users…` to `users` and `/orders…` to `orders`.
fn routes<U: Proxied>(users: U, orders: U) -> Router {
    let to = |prefix: &str, upstream: U| {
        Router::new()
            .route(prefix, axum::routing::any(to::<U>))
            .route(&format!("{prefix}/{{*rest}}"), axum::routing::any(to::<U>))
            .with_state(upstream)
    };
    to("/users", users)
        .merge(to("/orders", orders))
        .layer(axum::middleware::from_fn(refuse_dot_segments))
}

async fn to<U: Proxied>(State(upstream): State<U>, request: axum::extract::Request) -> Response {
    proxy(upstream, request).await
}

/// Sends `request` through `upstream`, and turns its answer or error into
/// a response.
async fn proxy<U>(mut upstream: U, request: axum::extract::Request) -> Response
where
    U: Service<Request, Response = UpstreamResponse, Error = BoxError>,
{
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(body) => body,
        Err(error) => return body_error(&error),
    };
    let mut outbound = http::Request::new(body);
    *outbound.method_mut() = parts.method;
    *outbound.uri_mut() = match parts.uri.path_and_query() {
        Some(path) => match path.as_str().parse() {
            Ok(uri) => uri,
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        },
        None => http::Uri::from_static("/"),
    };
    let idempotency_key = http::HeaderName::from_static(tower_bulwark::request::IDEMPOTENCY_KEY);
    for name in [
        http::header::CONTENT_TYPE,
        http::header::ACCEPT,
        idempotency_key,
    ] {
        if let Some(value) = parts.headers.get(&name) {
            outbound.headers_mut().insert(name, value.clone());
        }
    }
    let answer = match upstream.ready().await {
        Ok(upstream) => upstream.call(outbound).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(response) => {
            let cache = response.extensions().get::<CacheStatus>().copied();
            let (parts, body) = response.into_parts();
            let mut response = Response::from_parts(parts, Body::from(body));
            if let Some(status) = cache {
                response
                    .headers_mut()
                    .insert(CACHE_HEADER, HeaderValue::from_static(status.as_str()));
            }
            response
        }
        Err(error) => error_response(&error),
    }
}

/// A body that could not be read: 413 when it is too large, 408 when it
/// did not arrive in time, 400 otherwise.
fn body_error(error: &axum::Error) -> Response {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return (StatusCode::PAYLOAD_TOO_LARGE, "a body of 1 MiB at most").into_response();
        }
        if error.is::<tower_http::timeout::TimeoutError>() {
            return (
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            )
                .into_response();
        }
        source = error.source();
    }
    (StatusCode::BAD_REQUEST, "the body could not be read").into_response()
}

/// Refuses paths with dot segments (`.`, `..`, or their percent-encoded
/// forms, in any case) before anything is routed or proxied: a service
/// behind the gateway normalizing `/users/%2e%2e/admin` would reach a path
/// the gateway never meant to proxy.
pub async fn refuse_dot_segments(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let dotted = request.uri().path().split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    });
    if dotted {
        return (
            StatusCode::BAD_REQUEST,
            "dot segments are not allowed in paths",
        )
            .into_response();
    }
    next.run(request).await
}

/// The crate's errors as the crate maps them (`CircuitOpen`: 503 with
/// `Retry-After`; `Elapsed`: 504; no endpoint: 503; `Overloaded`: 503,
/// with [`SHED_HEADER`]); anything else a 502 that names no upstream
/// address.
pub fn error_response(error: &BoxError) -> Response {
    let Some(kind) = ErrorKind::of(&**error) else {
        return (StatusCode::BAD_GATEWAY, "bad gateway").into_response();
    };
    let mut response = kind.http_response::<Body>();
    if let ErrorKind::Overloaded { .. } = kind {
        response
            .headers_mut()
            .insert(SHED_HEADER, HeaderValue::from_static("overloaded"));
    }
    response
}
