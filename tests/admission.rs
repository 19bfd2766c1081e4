//! Admission control meeting the rest of the crate: a local rejection is
//! not the backend's fault (the breaker and outlier detection do not count
//! it, retries do not resend it), the stack's configuration (files
//! included) turns it on in its place, and a server answers it 503 with
//! `Retry-After` over a real socket.
#![cfg(all(
    feature = "stack",
    feature = "axum",
    feature = "toml",
    feature = "yaml"
))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::adaptive::AdaptiveConfig;
use tower_bulwark::balance::{BalanceConfig, LoadBalance, OutlierDetection};
use tower_bulwark::bulkhead::{BulkheadConfig, BulkheadLayer};
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer, CircuitState};
use tower_bulwark::error::Overloaded;
use tower_bulwark::rate_limit::RateLimitConfig;
use tower_bulwark::retry::{RetryConfig, RetryLayer};
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};

/// A service whose calls answer when told.
fn held()
-> impl Service<oneshot::Receiver<u32>, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|answer: oneshot::Receiver<u32>| async move { Ok::<_, BoxError>(answer.await?) })
}

fn one_place() -> BulkheadLayer {
    BulkheadLayer::new(BulkheadConfig::default().max_concurrent_calls(1)).unwrap()
}

#[tokio::test]
async fn a_breaker_above_a_full_bulkhead_does_not_open() {
    let breaker =
        CircuitBreakerLayer::new(CircuitBreakerConfig::default().consecutive_failures(1)).unwrap();
    let svc = breaker.layer(one_place().layer(held()));
    let (tx, rx) = oneshot::channel();
    let running = tokio::spawn(svc.clone().oneshot(rx));
    tokio::task::yield_now().await;
    for _ in 0..5 {
        let (_tx, rx) = oneshot::channel();
        let error = svc.clone().oneshot(rx).await.unwrap_err();
        assert!(error.is::<Overloaded>());
    }
    assert_eq!(breaker.handle().state(), CircuitState::Closed);
    tx.send(1).unwrap();
    assert_eq!(running.await.unwrap().unwrap(), 1);
}

#[tokio::test]
async fn outlier_detection_does_not_eject_an_endpoint_for_its_full_bulkhead() {
    let lb = LoadBalance::new(
        BalanceConfig::default()
            .outlier_detection(OutlierDetection::default().consecutive_failures(Some(1))),
        [("a", one_place().layer(held()))],
    )
    .unwrap();
    let (tx, rx) = oneshot::channel();
    let running = tokio::spawn(lb.clone().oneshot(rx));
    tokio::task::yield_now().await;
    for _ in 0..5 {
        let (_tx, rx) = oneshot::channel();
        let error = lb.clone().oneshot(rx).await.unwrap_err();
        assert!(error.is::<Overloaded>(), "{error}");
    }
    tx.send(1).unwrap();
    assert_eq!(running.await.unwrap().unwrap(), 1);
    assert!(!lb.endpoints()[0].ejected, "never ejected");
    let (tx, rx) = oneshot::channel();
    tx.send(2).unwrap();
    assert_eq!(lb.clone().oneshot(rx).await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn retries_do_not_resend_a_local_rejection() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    let bulkhead = one_place();
    let gate = Arc::new(Notify::new());
    let opened = gate.clone();
    let inner = bulkhead.layer(service_fn(move |x: u32| {
        counted.fetch_add(1, Relaxed);
        let gate = opened.clone();
        async move {
            gate.notified().await;
            Ok::<_, BoxError>(x)
        }
    }));
    let retry = RetryLayer::new(RetryConfig::default().max_attempts(3)).unwrap();
    let svc = retry.layer(inner);
    let running = tokio::spawn(svc.clone().oneshot(1));
    tokio::task::yield_now().await;
    let error = svc.clone().oneshot(2).await.unwrap_err();
    assert!(error.is::<Overloaded>());
    assert_eq!(
        attempts.load(Relaxed),
        1,
        "the turned-away call was not sent again"
    );
    gate.notify_one();
    assert_eq!(running.await.unwrap().unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_stack_turns_calls_away_past_its_adaptive_limit_and_its_rate() {
    let layer = ResilienceLayer::new(
        ResilienceConfig::default()
            .service("users")
            .adaptive_concurrency(AdaptiveConfig::default().limits(1, 2, 10)),
    )
    .unwrap();
    assert_eq!(layer.concurrency_limit(), Some(2));
    let svc = layer.layer(held());
    let (a, ra) = oneshot::channel();
    let (b, rb) = oneshot::channel();
    let first = tokio::spawn(svc.clone().oneshot(ra));
    let second = tokio::spawn(svc.clone().oneshot(rb));
    tokio::task::yield_now().await;
    assert_eq!(layer.in_flight(), Some(2));
    for _ in 0..5 {
        let (_c, rc) = oneshot::channel();
        assert!(
            svc.clone()
                .oneshot(rc)
                .await
                .unwrap_err()
                .is::<Overloaded>()
        );
    }
    assert_eq!(
        layer.circuit_breaker().unwrap().state(),
        CircuitState::Closed,
        "the stack's breaker counted none of them"
    );
    a.send(1).unwrap();
    b.send(2).unwrap();
    assert_eq!(first.await.unwrap().unwrap(), 1);
    assert_eq!(second.await.unwrap().unwrap(), 2);
    assert_eq!(layer.in_flight(), Some(0));

    // A rate limit: 2 a second, no wait.
    let layer = ResilienceLayer::new(
        ResilienceConfig::default()
            .rate_limit(RateLimitConfig::default().rate(2, Duration::from_secs(1))),
    )
    .unwrap();
    assert_eq!(layer.concurrency_limit(), None);
    let svc = layer.layer(service_fn(|x: u32| async move { Ok::<_, BoxError>(x) }));
    assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);
    assert_eq!(svc.clone().oneshot(2).await.unwrap(), 2);
    let error = svc.clone().oneshot(3).await.unwrap_err();
    let overloaded = error.downcast_ref::<Overloaded>().unwrap();
    assert_eq!(overloaded.layer(), "rate_limit");
    assert_eq!(overloaded.retry_after(), Some(Duration::from_millis(500)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(svc.clone().oneshot(4).await.unwrap(), 4);
}

#[test]
fn admission_control_is_read_from_a_file_and_checked() {
    let config = ResilienceConfig::from_toml(
        r#"
        service = "users"
        [rate_limit]
        calls = 100
        period = "1s"
        max_wait = "50ms"
        [adaptive_concurrency]
        algorithm = "vegas"
        max_limit = 200
        "#,
    )
    .unwrap();
    let layer = ResilienceLayer::<u32, u32>::new(config).unwrap();
    assert_eq!(layer.concurrency_limit(), Some(20));

    // Both caps at once: refused, naming the field and its line.
    let error = ResilienceConfig::from_yaml(
        "bulkhead:\n  max_concurrent_calls: 8\nadaptive_concurrency: {}\n",
    )
    .unwrap_err();
    assert_eq!(
        (error.field(), error.line()),
        ("adaptive_concurrency", Some(3))
    );
    let error = ResilienceConfig::from_toml("[bulkhead]\nmax_concurrent_calls = 0\n").unwrap_err();
    assert_eq!(error.field(), "bulkhead.max_concurrent_calls");
}

#[tokio::test]
async fn a_server_full_of_calls_answers_503_with_retry_after_over_a_real_socket() {
    use axum::Router;
    use axum::routing::get;

    let layer = ResilienceLayer::server(
        ResilienceConfig::default().service("api").bulkhead(
            BulkheadConfig::default()
                .max_concurrent_calls(1)
                .queue(1, Duration::from_millis(300)),
        ),
    )
    .build()
    .unwrap();
    let release = Arc::new(Notify::new());
    let started = Arc::new(Notify::new());
    let (held, start) = (release.clone(), started.clone());
    let app = Router::new()
        .route(
            "/work",
            get(move || {
                let (held, start) = (held.clone(), start.clone());
                async move {
                    start.notify_one();
                    held.notified().await;
                    "done"
                }
            }),
        )
        .layer(layer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/work", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = reqwest::Client::new();
    let first = tokio::spawn(client.get(&url).send());
    // The first call holds the one place; the second waits its 300 ms in
    // the queue, then is answered 503 with the wait as Retry-After.
    started.notified().await;
    let second = client.get(&url).send().await.unwrap();
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    release.notify_one();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.text().await.unwrap(), "done");
    server.abort();
}
