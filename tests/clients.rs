//! The whole stack over real clients and servers on 127.0.0.1: reqwest and
//! hyper-util's `Client` against axum, as users have them. Counts and
//! states only: no timing is asserted.
#![cfg(all(feature = "stack", feature = "reqwest"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use bulwark_examples::client;
use bytes::Bytes;
use http_body_util::Full;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt};
use tower_bulwark::balance::LoadBalance;
use tower_bulwark::balance::{BalanceConfig, BalanceEvent, OutlierDetection, Strategy};
use tower_bulwark::cache::CacheConfig;
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
use tower_bulwark::classify::{Classify, HttpClassifier};
use tower_bulwark::error::{ErrorKind, http_response};
use tower_bulwark::event::{Event, Events};
use tower_bulwark::hedge::{HedgeConfig, HedgeDelay, HedgeLayer};
use tower_bulwark::metrics::MetricsLayer;
use tower_bulwark::request::{CloneRequest, Idempotent};
use tower_bulwark::retry::{HttpRetryAfter, RetryAfter, RetryConfig, RetryLayer};
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};
use tower_bulwark::timeout::TimeoutLayer;
use tower_bulwark::timeout::error::Elapsed;

use client::HttpClient;

/// What reached a test server, by route.
#[derive(Clone, Default)]
struct Hits {
    greetings: Arc<AtomicU32>,
    orders: Arc<AtomicU32>,
    hung: Arc<AtomicU32>,
}

impl Hits {
    fn greetings(&self) -> u32 {
        self.greetings.load(Ordering::SeqCst)
    }
    fn orders(&self) -> u32 {
        self.orders.load(Ordering::SeqCst)
    }
    fn hung(&self) -> u32 {
        self.hung.load(Ordering::SeqCst)
    }
}

/// 503 on odd counts, `ok` on even ones.
fn half(count: &AtomicU32, ok: StatusCode) -> StatusCode {
    if count.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        ok
    }
}

/// A server on 127.0.0.1: `GET /greeting` and `POST /orders` answer 503 to
/// every other request, `GET /ok` 200; `GET /hang` (and, if `hangs`, every
/// route) never answers. Aborted when the returned handle is dropped.
async fn server(hangs: bool) -> (String, Hits, AbortOnDrop) {
    let hits = Hits::default();
    let (g, o, h) = (
        hits.greetings.clone(),
        hits.orders.clone(),
        hits.hung.clone(),
    );
    let hang = move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<StatusCode>().await
        }
    };
    let app = if hangs {
        Router::new().fallback(hang)
    } else {
        Router::new()
            .route(
                "/greeting",
                get(move || async move { half(&g, StatusCode::OK) }),
            )
            .route(
                "/orders",
                post(move || async move { half(&o, StatusCode::CREATED) }),
            )
            .route("/hang", get(hang))
            .route("/ok", get(|| async { StatusCode::OK }))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, hits, AbortOnDrop(task))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The full stack as far as a streaming response allows (no cache):
/// metrics, retries, breaker, hedge, timeout.
fn full_stack() -> ResilienceConfig {
    ResilienceConfig::default()
        .service("clients")
        .timeout(Duration::from_secs(5))
        .retry(RetryConfig::default().backoff(Duration::from_millis(1), Duration::from_millis(5)))
        .hedge(HedgeConfig::default().delay(HedgeDelay::Fixed(Duration::from_secs(2))))
        .circuit_breaker(CircuitBreakerConfig::default().failure_rate_threshold(0.9))
}

#[tokio::test]
async fn reqwest_through_the_full_stack_retries_a_503_and_sends_a_post_once() {
    let (url, hits, _server) = server(false).await;
    let layer = ResilienceLayer::builder(full_stack())
        .reqwest()
        .build()
        .unwrap();
    let mut client = layer.layer(reqwest::Client::new());
    let http = reqwest::Client::new();

    for _ in 0..20 {
        let get = http.get(format!("{url}/greeting")).build().unwrap();
        let response = client.ready().await.unwrap().call(get).await.unwrap();
        assert_eq!(response.status(), 200, "every GET ends in 200");
    }
    assert_eq!(hits.greetings(), 40, "each GET: a 503, retried once");

    let keyed = http
        .post(format!("{url}/orders"))
        .header("Idempotency-Key", "order-1")
        .body("{}")
        .build()
        .unwrap();
    let response = client.ready().await.unwrap().call(keyed).await.unwrap();
    assert_eq!(response.status(), 201, "a keyed POST is retried");
    assert_eq!(hits.orders(), 2);

    let post = http
        .post(format!("{url}/orders"))
        .body("{}")
        .build()
        .unwrap();
    let response = client.ready().await.unwrap().call(post).await.unwrap();
    assert_eq!(
        response.status(),
        503,
        "not retried: the caller sees the 503"
    );
    assert_eq!(
        hits.orders(),
        3,
        "a POST without Idempotency-Key is sent once"
    );
}

#[tokio::test]
async fn hyper_through_the_full_stack_retries_a_503_and_sends_a_post_once() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let (url, hits, _server) = server(false).await;
    let layer = ResilienceLayer::builder(full_stack())
        .http()
        .build()
        .unwrap();
    let hyper = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut client = layer.layer(hyper);

    for _ in 0..20 {
        let get = http::Request::get(format!("{url}/greeting"))
            .body(Full::default())
            .unwrap();
        let response = client.ready().await.unwrap().call(get).await.unwrap();
        assert_eq!(response.status(), 200, "every GET ends in 200");
    }
    assert_eq!(hits.greetings(), 40, "each GET: a 503, retried once");

    let post = http::Request::post(format!("{url}/orders"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let response = client.ready().await.unwrap().call(post).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        hits.orders(),
        1,
        "a POST without Idempotency-Key is sent once"
    );
}

/// The statuses of two rounds of calls of `request()` through each layer
/// alone over `client`, judged by the HTTP classifier: timeout, breaker,
/// metrics, hedge, balancer, and retry (which retries a 503).
async fn through_each_layer_alone<S, Req, Res>(
    client: S,
    request: impl Fn() -> Req,
    status: fn(&Res) -> u16,
) -> Vec<u16>
where
    S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError> + std::fmt::Debug + 'static,
    HttpClassifier: Classify<Res, S::Error>,
    Idempotent: CloneRequest<Req>,
    HttpRetryAfter: RetryAfter<Res>,
{
    let http = HttpClassifier::default();
    let mut timeout = TimeoutLayer::new(Duration::from_secs(5))
        .unwrap()
        .layer(client.clone());
    let mut breaker = CircuitBreakerLayer::new(CircuitBreakerConfig::default())
        .unwrap()
        .classify(http)
        .layer(client.clone());
    let mut metrics = MetricsLayer::new("alone")
        .classify(http)
        .layer(client.clone());
    let mut hedge = HedgeLayer::new(HedgeConfig::default())
        .unwrap()
        .clone_requests_with(Idempotent)
        .classify(http)
        .layer(client.clone());
    let mut balance = LoadBalance::new(BalanceConfig::default(), [("one", client.clone())])
        .unwrap()
        .classify(http);
    let mut retry = RetryLayer::new(RetryConfig::default())
        .unwrap()
        .classify(http)
        .clone_requests_with(Idempotent)
        .respect_retry_after()
        .layer(client);

    let mut statuses = Vec::new();
    for _ in 0..2 {
        let answer = timeout.ready().await.unwrap().call(request()).await;
        statuses.push(status(&answer.unwrap()));
        let answer = breaker.ready().await.unwrap().call(request()).await;
        statuses.push(status(&answer.unwrap()));
        let answer = metrics.ready().await.unwrap().call(request()).await;
        statuses.push(status(&answer.unwrap()));
        let answer = hedge.ready().await.unwrap().call(request()).await;
        statuses.push(status(&answer.unwrap()));
        let answer = balance.ready().await.unwrap().call(request()).await;
        statuses.push(status(&answer.unwrap()));
        let answer = retry.ready().await.unwrap().call(request()).await;
        statuses.push(status(&answer.unwrap()));
    }
    statuses
}

/// Each layer alone wraps a `reqwest::Client` as it is, and judges its
/// responses with the same classifier.
#[tokio::test]
async fn each_layer_alone_wraps_a_reqwest_client() {
    let (url, _, _server) = server(false).await;
    let http = reqwest::Client::new();
    let get = || http.get(format!("{url}/greeting")).build().unwrap();
    let statuses = through_each_layer_alone(http.clone(), get, |r: &reqwest::Response| {
        r.status().as_u16()
    })
    .await;
    // Without retries, the server's 503s reach the caller; the retry layer
    // (the last of each round) retries them.
    assert!(statuses.contains(&503), "{statuses:?}");
    assert_eq!((statuses[5], statuses[11]), (200, 200), "{statuses:?}");
}

/// Each layer alone wraps hyper-util's `Client` as it is.
#[tokio::test]
async fn each_layer_alone_wraps_a_hyper_client() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let (url, _, _server) = server(false).await;
    let hyper = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let get = || {
        http::Request::get(format!("{url}/greeting"))
            .body(Full::default())
            .unwrap()
    };
    let statuses =
        through_each_layer_alone(hyper, get, |r: &http::Response<_>| r.status().as_u16()).await;
    assert!(statuses.contains(&503), "{statuses:?}");
    assert_eq!((statuses[5], statuses[11]), (200, 200), "{statuses:?}");
}

/// Endpoints of a balancer: one answers, one hangs on every request.
#[tokio::test]
async fn a_hung_endpoint_is_ejected() {
    let (ok_url, _, _ok) = server(false).await;
    let (hung_url, hung, _hung) = server(true).await;
    let events = Events::new();
    let ejected = Arc::new(Mutex::new(Vec::new()));
    let seen = ejected.clone();
    events.subscribe(move |event: &Event| {
        if let Event::Balance(BalanceEvent::EndpointEjected { endpoint, .. }) = event {
            seen.lock().unwrap().push(endpoint.to_string());
        }
    });
    let config = ResilienceConfig::default()
        .service("hung")
        .timeout(Duration::from_millis(300))
        .retry(RetryConfig::default().max_attempts(2))
        .circuit_breaker(CircuitBreakerConfig::default().failure_rate_threshold(0.9))
        .balance(
            BalanceConfig::default()
                .strategy(Strategy::RoundRobin)
                .outlier_detection(
                    OutlierDetection::default()
                        .consecutive_failures(Some(3))
                        .ejection_time(Duration::from_secs(60), Duration::from_secs(60)),
                ),
        );
    let layer = ResilienceLayer::builder(config)
        .http()
        .events(&events)
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let mut users = layer
        .balance([
            (
                ok_url.clone(),
                HttpClient::new(client.clone(), ok_url.as_str()),
            ),
            (hung_url.clone(), HttpClient::new(client, hung_url.as_str())),
        ])
        .unwrap();

    for i in 0..100 {
        let request = http::Request::get("/ok").body(Bytes::new()).unwrap();
        let answer = users.ready().await.unwrap().call(request).await;
        // The first attempt may hang; its retry goes to the other endpoint.
        assert!(
            answer.is_ok(),
            "call {i}: {:?} {}",
            answer.err(),
            hung.hung()
        );
    }
    assert_eq!(
        hung.hung(),
        3,
        "three attempts cut off by the timeout, then ejected"
    );
    assert_eq!(*ejected.lock().unwrap(), vec![hung_url]);
}

/// Two identical calls that share one call in the cache, and both time
/// out: each gets an `Elapsed` of its own, and the 504 that means.
#[tokio::test]
async fn a_shared_calls_timeout_is_still_elapsed() {
    let (url, hits, _server) = server(false).await;
    let config = ResilienceConfig::default()
        .service("shared")
        .timeout(Duration::from_millis(200))
        .cache(CacheConfig::default());
    let layer = ResilienceLayer::builder(config)
        .http()
        .cache_key(|request: &http::Request<Bytes>| Some(request.uri().to_string()))
        .build()
        .unwrap();
    let users = layer
        .balance([(
            url.clone(),
            HttpClient::new(reqwest::Client::new(), url.as_str()),
        )])
        .unwrap();
    let (first, second) = tokio::join!(hang(users.clone()), hang(users.clone()));
    for error in [first.unwrap_err(), second.unwrap_err()] {
        assert!(error.is::<Elapsed>(), "{error}");
        assert_eq!(ErrorKind::of(&*error), Some(ErrorKind::Elapsed));
        let response: http::Response<String> = http_response(&*error).unwrap();
        assert_eq!(response.status(), 504);
    }
    assert_eq!(hits.hung(), 1, "one call reached the server for both");
}

async fn hang<S>(mut svc: S) -> Result<S::Response, BoxError>
where
    S: Service<http::Request<Bytes>, Error = BoxError>,
{
    let request = http::Request::get("/hang").body(Bytes::new()).unwrap();
    svc.ready().await?.call(request).await
}

/// The stack over a service made of tower's own pieces (a client behind
/// `ServiceBuilder`) is still a stack over a real client.
#[tokio::test]
async fn the_stack_wraps_a_client_behind_tower_layers() {
    let (url, _, _server) = server(false).await;
    let layer = ResilienceLayer::builder(full_stack())
        .reqwest()
        .build()
        .unwrap();
    let inner = ServiceBuilder::new()
        .concurrency_limit(4)
        .service(reqwest::Client::new());
    let mut client = layer.layer(inner);
    let get = reqwest::Client::new()
        .get(format!("{url}/greeting"))
        .build()
        .unwrap();
    let response = client.ready().await.unwrap().call(get).await.unwrap();
    assert_eq!(response.status(), 200);
}
