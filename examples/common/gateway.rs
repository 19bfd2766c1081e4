//! The gateway: `/users…` and `/orders…` to several instances of each
//! service, each through a `ResilienceLayer` (balancing with outlier
//! ejection, a circuit breaker, a timeout per attempt, budgeted retries of
//! idempotent requests, and a cache for reads that answers with the last
//! good answer while the service fails).
//!
//! The users stack has a fallback: while its breaker is open, a read of a
//! user nobody has cached gets a degraded answer (`"degraded": true`,
//! header `x-bulwark-fallback`). The orders stack has none: while its
//! breaker is open, callers get a 503 with `Retry-After`. A timeout is a
//! 504; no endpoint available, a 503.

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
use tower_bulwark::balance::{BalanceConfig, OutlierDetection};
use tower_bulwark::cache::{CacheConfig, CacheStatus};
use tower_bulwark::circuit_breaker::{
    CircuitBreakerConfig, CircuitBreakerHandle, OpenDuration, SlidingWindow,
};
use tower_bulwark::event::Events;
use tower_bulwark::retry::RetryConfig;
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};

use super::client::{HttpClient, Request, Response as UpstreamResponse};
use super::orders::{UserClient, read_key};

/// The header that says a response is a fallback's.
pub(crate) const FALLBACK_HEADER: &str = "x-bulwark-fallback";
/// The header that says where a response came from in the cache: `hit`,
/// `miss`, `stale` or `coalesced`.
pub(crate) const CACHE_HEADER: &str = "x-bulwark-cache";

/// One upstream service as the gateway sees it (the same stack type as the
/// order service's view of the users).
pub(crate) type Upstream = UserClient;

/// The gateway's two upstreams, and their breakers for whoever watches.
#[derive(Clone)]
pub(crate) struct Gateway {
    pub(crate) users: Upstream,
    pub(crate) orders: Upstream,
    pub(crate) users_breaker: CircuitBreakerHandle,
    pub(crate) orders_breaker: CircuitBreakerHandle,
}

/// The stack configuration both upstreams use; `service` names it.
pub(crate) fn config(service: &str) -> ResilienceConfig {
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
            BalanceConfig::default().outlier_detection(
                OutlierDetection::default()
                    .consecutive_failures(Some(3))
                    .failure_rate(0.5, 20, 10)
                    .ejection_time(Duration::from_secs(3), Duration::from_secs(30)),
            ),
        )
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
    /// `orders`.
    pub(crate) fn new(
        users: &[String],
        orders: &[String],
        client: reqwest::Client,
        events: &Events,
    ) -> Result<Self, BoxError> {
        Self::with_cache(users, orders, client, events, true)
    }

    /// As [`new`](Self::new), with or without the cache of reads.
    pub(crate) fn with_cache(
        users: &[String],
        orders: &[String],
        client: reqwest::Client,
        events: &Events,
        cache: bool,
    ) -> Result<Self, BoxError> {
        let config = |service: &str| {
            let mut config = config(service);
            if !cache {
                config.cache = None;
            }
            config
        };
        let endpoints = |urls: &[String]| -> Vec<(String, HttpClient)> {
            urls.iter()
                .map(|url| (url.clone(), HttpClient::new(client.clone(), url.as_str())))
                .collect()
        };
        let users_layer = ResilienceLayer::builder(config("users"))
            .http()
            .cache_key(read_key)
            .fallback(service_fn(users_fallback))
            .events(events)
            .build()?;
        let orders_layer = ResilienceLayer::builder(config("orders"))
            .http()
            .cache_key(read_key)
            .events(events)
            .build()?;
        let breaker = |layer: &ResilienceLayer<_, _, _, _, _>| {
            layer
                .circuit_breaker()
                .ok_or_else(|| BoxError::from("the gateway's stacks have a breaker"))
        };
        Ok(Gateway {
            users_breaker: breaker(&users_layer)?,
            orders_breaker: breaker(&orders_layer)?,
            users: users_layer.balance(endpoints(users))?,
            orders: orders_layer.balance(endpoints(orders))?,
        })
    }

    /// The gateway's routes.
    pub(crate) fn router(self) -> Router {
        routes(self.users, self.orders)
    }
}

/// The routes of the bare proxy: the same as the gateway's, to the same
/// instances in turn, with no layer at all. What the load test compares
/// the gateway with.
pub(crate) fn bare_router(users: &[String], orders: &[String], client: reqwest::Client) -> Router {
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
pub(crate) struct RoundRobin {
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
pub(crate) trait Proxied:
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
    to("/users", users).merge(to("/orders", orders))
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
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
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
    for name in [http::header::CONTENT_TYPE, http::header::ACCEPT] {
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

/// The crate's errors as the crate maps them (`CircuitOpen`: 503 with
/// `Retry-After`; `Elapsed`: 504; no endpoint: 503); anything else a 502
/// that names no upstream address.
pub(crate) fn error_response(error: &BoxError) -> Response {
    tower_bulwark::error::http_response::<Body>(&**error)
        .unwrap_or_else(|| (StatusCode::BAD_GATEWAY, "bad gateway").into_response())
}
