//! Retry on tokio's paused clock: what is retried, backoff bounds, the
//! budget against retry storms, Retry-After, request copies, bad config.
#![cfg(feature = "retry")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::classify::Outcome;
use tower_bulwark::event::{Event, Events};
use tower_bulwark::retry::{RetryConfig, RetryEvent, RetryLayer};

/// A service failing its first `failures` calls; records when each call
/// came.
fn failing_first(
    failures: u32,
    calls: Arc<Mutex<Vec<Instant>>>,
) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    let count = Arc::new(AtomicU32::new(0));
    service_fn(move |req: u32| {
        calls.lock().unwrap().push(Instant::now());
        let n = count.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < failures {
                Err::<u32, BoxError>(format!("failure {n}").into())
            } else {
                Ok(req)
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn retries_a_failure_until_it_succeeds() {
    let calls = Arc::default();
    let mut svc = RetryLayer::new(RetryConfig::default().max_attempts(3))
        .unwrap()
        .layer(failing_first(2, Arc::clone(&calls)));
    assert_eq!(svc.ready().await.unwrap().call(5).await.unwrap(), 5);
    assert_eq!(calls.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let calls = Arc::default();
    let mut svc = RetryLayer::new(RetryConfig::default().max_attempts(3))
        .unwrap()
        .layer(failing_first(10, Arc::clone(&calls)));
    let err = svc.ready().await.unwrap().call(5).await.unwrap_err();
    assert_eq!(err.to_string(), "failure 2");
    assert_eq!(calls.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn successes_and_ignored_outcomes_are_not_retried() {
    let calls = Arc::default();
    let mut svc = RetryLayer::new(RetryConfig::default())
        .unwrap()
        .layer(failing_first(0, Arc::clone(&calls)));
    svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(calls.lock().unwrap().len(), 1);

    let calls = Arc::default();
    let mut svc = RetryLayer::new(RetryConfig::default())
        .unwrap()
        .classify(|_: Result<&u32, &BoxError>| Outcome::Ignored)
        .layer(failing_first(10, Arc::clone(&calls)));
    svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(calls.lock().unwrap().len(), 1);
}

#[cfg(feature = "circuit-breaker")]
#[tokio::test(start_paused = true)]
async fn an_open_circuit_is_not_retried() {
    use tower_bulwark::circuit_breaker::{
        CircuitBreakerConfig, CircuitBreakerLayer, error::CircuitOpen,
    };

    let breaker = CircuitBreakerLayer::new(CircuitBreakerConfig::default()).unwrap();
    breaker.handle().force_open();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    // Count calls into the breaker: the retry layer's attempts.
    let into_breaker = service_fn(move |req: u32| {
        counted.fetch_add(1, Ordering::SeqCst);
        let mut breaker = breaker.layer(service_fn(|r: u32| async move { Ok::<_, BoxError>(r) }));
        async move { breaker.ready().await?.call(req).await }
    });
    let mut svc = RetryLayer::new(RetryConfig::default().max_attempts(5))
        .unwrap()
        .layer(into_breaker);
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(err.is::<CircuitOpen>());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn waits_stay_within_their_jitter_bounds() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let base = Duration::from_millis(100);
    let max = Duration::from_millis(300);
    for _ in 0..20 {
        calls.lock().unwrap().clear();
        let mut svc = RetryLayer::new(RetryConfig::default().max_attempts(4).backoff(base, max))
            .unwrap()
            .layer(failing_first(10, Arc::clone(&calls)));
        svc.ready().await.unwrap().call(1).await.unwrap_err();
        let at = calls.lock().unwrap().clone();
        assert_eq!(at.len(), 4);
        for (retry, ceiling) in [(1, base), (2, base * 2), (3, max)] {
            let waited = at[retry] - at[retry - 1];
            assert!(
                waited <= ceiling,
                "retry {retry} waited {waited:?} > {ceiling:?}"
            );
        }
    }
}

/// Offers `per_client` requests from each of 50 clients to a service that
/// fails every call, through a retry layer allowing 3 attempts, after a
/// warm-up that drains the saved-up retries. Returns the calls the service
/// saw per request offered, and the simulated time it took.
async fn storm(config: RetryConfig, per_client: usize) -> (f64, Duration) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let down = service_fn(move |_: u32| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err::<u32, BoxError>("down".into()) }
    });
    let exhausted = Arc::new(AtomicUsize::new(0));
    let seen = exhausted.clone();
    let hub = Events::new();
    hub.subscribe(move |e| {
        assert!(matches!(
            e,
            Event::Retry(RetryEvent::BudgetExhausted { .. })
        ));
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let svc = RetryLayer::new(config.max_attempts(3).events(&hub))
        .unwrap()
        .layer(down);
    let run = |per_client: usize| {
        let svc = svc.clone();
        async move {
            let mut clients = Vec::new();
            for _ in 0..50 {
                let mut svc = svc.clone();
                clients.push(tokio::spawn(async move {
                    for i in 0..per_client {
                        svc.ready().await.unwrap().call(i as u32).await.unwrap_err();
                    }
                }));
            }
            for c in clients {
                c.await.unwrap();
            }
        }
    };
    run(20).await;
    assert!(exhausted.load(Ordering::SeqCst) > 0, "the budget ran out");
    let (before, start) = (calls.load(Ordering::SeqCst), Instant::now());
    run(per_client).await;
    let seen = calls.load(Ordering::SeqCst) - before;
    (seen as f64 / (50 * per_client) as f64, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn the_budget_keeps_a_failing_service_from_a_retry_storm() {
    // Without a budget the service would see 3 calls per request. With 20 %
    // and no floor it sees at most 1.2.
    let (ratio, _) = storm(RetryConfig::default().budget(0.2, 0, 100), 200).await;
    assert!(ratio <= 1.2, "{ratio:.4}");
    assert!(
        ratio >= 1.15,
        "retries still happen within the budget: {ratio:.4}"
    );

    // The default floor of 10 retries a second adds its share: for the
    // time measured, plus up to a second credited since the last refill
    // before the measurement began.
    let offered = 50.0 * 200.0;
    let (ratio, elapsed) = storm(RetryConfig::default(), 200).await;
    let bound = 1.2 + 10.0 * (elapsed.as_secs_f64() + 1.0) / offered;
    assert!(
        ratio <= bound + 1e-9,
        "{ratio:.4} > {bound:.4} after {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn requests_are_copied_only_when_a_retry_is_possible() {
    static COPIES: AtomicUsize = AtomicUsize::new(0);
    #[derive(Debug)]
    struct Req;
    impl Clone for Req {
        fn clone(&self) -> Self {
            COPIES.fetch_add(1, Ordering::SeqCst);
            Req
        }
    }
    let ok = || service_fn(|_: Req| async { Ok::<_, BoxError>(()) });
    let mut once = RetryLayer::new(RetryConfig::default().max_attempts(1))
        .unwrap()
        .layer(ok());
    once.ready().await.unwrap().call(Req).await.unwrap();
    assert_eq!(
        COPIES.load(Ordering::SeqCst),
        0,
        "no retry possible, no copy"
    );

    let mut thrice = RetryLayer::new(RetryConfig::default().max_attempts(3))
        .unwrap()
        .layer(ok());
    thrice.ready().await.unwrap().call(Req).await.unwrap();
    assert_eq!(
        COPIES.load(Ordering::SeqCst),
        1,
        "one copy for a possible retry"
    );

    // A request that must not be retried: the cloner says so.
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut svc = RetryLayer::new(RetryConfig::default())
        .unwrap()
        .clone_requests_with(|req: &u32| (*req != 13).then_some(*req))
        .layer(failing_first(10, Arc::clone(&calls)));
    svc.ready().await.unwrap().call(13).await.unwrap_err();
    assert_eq!(calls.lock().unwrap().len(), 1);
}

#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn retry_after_sets_the_wait_capped_at_the_longest_backoff() {
    use http::{Response, StatusCode};
    use tower_bulwark::classify::HttpClassifier;

    for (header, expected) in [
        ("2", Duration::from_secs(2)),
        ("100", Duration::from_secs(5)),
    ] {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        let busy = service_fn(move |_: ()| {
            let mut calls = seen.lock().unwrap();
            calls.push(Instant::now());
            let first = calls.len() == 1;
            async move {
                let response = if first {
                    Response::builder()
                        .status(StatusCode::SERVICE_UNAVAILABLE)
                        .header("retry-after", header)
                        .body(())
                        .unwrap()
                } else {
                    Response::new(())
                };
                Ok::<_, BoxError>(response)
            }
        });
        let mut svc = RetryLayer::new(
            RetryConfig::default().backoff(Duration::from_millis(10), Duration::from_secs(5)),
        )
        .unwrap()
        .classify(HttpClassifier::new())
        .respect_retry_after()
        .layer(busy);
        let response = svc.ready().await.unwrap().call(()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let at = calls.lock().unwrap().clone();
        assert_eq!(at[1] - at[0], expected, "Retry-After: {header}");
    }
}

#[test]
fn bad_configuration_is_a_typed_error_naming_the_field() {
    let d = Duration::from_millis(10);
    let cases = [
        (RetryConfig::default().max_attempts(0), "max_attempts"),
        (
            RetryConfig::default().backoff(Duration::ZERO, d),
            "backoff_base",
        ),
        (RetryConfig::default().backoff(d * 2, d), "backoff_max"),
        (RetryConfig::default().budget(1.5, 10, 100), "budget.ratio"),
        (RetryConfig::default().budget(-0.1, 10, 100), "budget.ratio"),
        (RetryConfig::default().budget(0.2, 10, 0), "budget.max"),
    ];
    for (config, field) in cases {
        let err = RetryLayer::new(config).unwrap_err();
        assert_eq!((err.layer(), err.field()), ("retry", field), "{err}");
    }
}
