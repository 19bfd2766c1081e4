//! Cache on tokio's paused clock: freshness, stale-if-error, single-flight,
//! the capacity bound, and what is never stored.
#![cfg(feature = "cache")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::cache::{CacheConfig, CacheLayer, CacheStatus, error::SharedError};
use tower_bulwark::classify::Outcome;

const TTL: Duration = Duration::from_secs(10);
const STALE: Duration = Duration::from_secs(30);

/// A backend answering `"v{n}"` (its n-th call), failing while `down`.
#[derive(Clone, Default)]
struct Backend {
    calls: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl Backend {
    fn service(
        &self,
    ) -> impl Service<u32, Response = String, Error = BoxError, Future: Send> + Clone + use<> {
        let (calls, down) = (self.calls.clone(), self.down.clone());
        service_fn(move |_: u32| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            let down = down.load(Ordering::SeqCst);
            async move {
                if down {
                    Err::<String, BoxError>("backend down".into())
                } else {
                    Ok(format!("v{n}"))
                }
            }
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// Requests are their own key.
type KeyFn = fn(&u32) -> Option<u32>;

fn layer() -> CacheLayer<u32, u32, KeyFn> {
    let key: KeyFn = |k| Some(*k);
    CacheLayer::new(CacheConfig::default().ttl(TTL).stale_if_error(STALE), key).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_fresh_entry_answers_without_the_service_and_expires_after_its_ttl() {
    let backend = Backend::default();
    let mut svc = layer().layer(backend.service());
    let first = svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(
        (first.status(), first.get_ref().as_str()),
        (CacheStatus::Miss, "v1")
    );
    tokio::time::advance(TTL - Duration::from_millis(1)).await;
    let hit = svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(
        (hit.status(), hit.into_inner()),
        (CacheStatus::Hit, "v1".to_string())
    );
    assert_eq!(backend.calls(), 1);
    // Another key is another entry.
    assert_eq!(
        svc.ready().await.unwrap().call(2).await.unwrap().status(),
        CacheStatus::Miss
    );

    tokio::time::advance(Duration::from_millis(1)).await;
    let refreshed = svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(
        (refreshed.status(), refreshed.get_ref().as_str()),
        (CacheStatus::Miss, "v3")
    );
}

#[tokio::test(start_paused = true)]
async fn a_stale_entry_answers_when_the_service_fails_within_the_window_only() {
    let backend = Backend::default();
    let mut svc = layer().layer(backend.service());
    svc.ready().await.unwrap().call(1).await.unwrap();
    backend.down.store(true, Ordering::SeqCst);

    tokio::time::advance(TTL + STALE - Duration::from_millis(1)).await;
    let stale = svc.ready().await.unwrap().call(1).await.unwrap();
    assert!(stale.is_stale());
    assert_eq!(stale.get_ref(), "v1");

    tokio::time::advance(Duration::from_millis(1)).await;
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "backend down",
        "past the stale window, the error comes through"
    );
}

#[tokio::test(start_paused = true)]
async fn failures_are_never_stored() {
    let backend = Backend::default();
    backend.down.store(true, Ordering::SeqCst);
    let mut svc = layer().layer(backend.service());
    svc.ready().await.unwrap().call(1).await.unwrap_err();
    svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(backend.calls(), 2);

    // A response the classifier calls a failure is passed on, not stored.
    let backend = Backend::default();
    let mut svc = layer()
        .classify(|r: Result<&String, &BoxError>| match r {
            Ok(body) if body == "v1" => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        })
        .layer(backend.service());
    assert_eq!(
        svc.ready().await.unwrap().call(1).await.unwrap().get_ref(),
        "v1"
    );
    assert_eq!(
        svc.ready().await.unwrap().call(1).await.unwrap().get_ref(),
        "v2"
    );
    assert_eq!(
        svc.ready().await.unwrap().call(1).await.unwrap().status(),
        CacheStatus::Hit
    );
    assert_eq!(backend.calls(), 2);
}

/// A backend that holds every call until released.
fn gated(
    calls: Arc<AtomicUsize>,
    gate: Arc<Notify>,
    fail: bool,
) -> impl Service<u32, Response = String, Error = BoxError, Future: Send> + Clone {
    service_fn(move |_: u32| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        let gate = gate.clone();
        async move {
            gate.notified().await;
            if fail {
                Err::<String, BoxError>("backend down".into())
            } else {
                Ok(format!("v{n}"))
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_hundred_concurrent_misses_make_one_call() {
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Notify::new());
    let svc = layer().layer(gated(calls.clone(), gate.clone(), false));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let mut svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            svc.ready().await.unwrap().call(1).await.unwrap()
        }));
    }
    tokio::task::yield_now().await;
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // Let every task reach the cache before the answer comes.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    gate.notify_waiters();
    let mut statuses = Vec::new();
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.get_ref(), "v1");
        statuses.push(answer.status());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        statuses.iter().filter(|s| **s == CacheStatus::Miss).count(),
        1
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == CacheStatus::Coalesced)
            .count(),
        99
    );
}

#[tokio::test(start_paused = true)]
async fn waiters_share_the_error_of_the_call_they_waited_for() {
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Notify::new());
    let svc = layer().layer(gated(calls.clone(), gate.clone(), true));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let mut svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            svc.ready().await.unwrap().call(1).await.unwrap_err()
        }));
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    gate.notify_waiters();
    for task in tasks {
        let err = task.await.unwrap();
        assert!(err.to_string().contains("backend down"), "{err}");
        let shared = err
            .downcast_ref::<SharedError<BoxError>>()
            .expect("an error not the crate's is shared as it is");
        assert_eq!(shared.get_ref().to_string(), "backend down");
        let source = std::error::Error::source(shared).expect("the original is its source");
        assert_eq!(source.to_string(), "backend down");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// The crate's own errors reach every caller that shared a call as errors
/// of their own type, so that `is::<Elapsed>()` and the HTTP and gRPC
/// mappings work for each.
#[cfg(all(feature = "timeout", feature = "circuit-breaker", feature = "balance"))]
#[tokio::test(start_paused = true)]
async fn the_crates_errors_keep_their_type_for_every_caller_that_shared_the_call() {
    use std::time::Duration;
    use tower_bulwark::balance::error::NoEndpointAvailable;
    use tower_bulwark::balance::{BalanceConfig, LoadBalance};
    use tower_bulwark::circuit_breaker::error::CircuitOpen;
    use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
    use tower_bulwark::error::ErrorKind;
    use tower_bulwark::timeout::TimeoutLayer;

    use tower_bulwark::timeout::error::Elapsed;

    /// The errors of three callers that share one call of `inner` (which
    /// fails after 10 ms), and how many calls reached it.
    async fn shared_errors<S>(inner: S) -> (Vec<BoxError>, usize)
    where
        S: Service<u32, Response = String, Error = BoxError> + Clone + Send + 'static,
        S::Future: Send,
    {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let delayed = service_fn(move |req: u32| {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut inner = inner.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                inner.ready().await?.call(req).await
            }
        });
        let svc = layer().layer(delayed);
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let mut svc = svc.clone();
            tasks.push(tokio::spawn(async move {
                svc.ready().await.unwrap().call(1).await.unwrap_err()
            }));
        }
        let mut errors = Vec::new();
        for task in tasks {
            errors.push(task.await.unwrap());
        }
        (errors, calls.load(Ordering::SeqCst))
    }

    let hangs = service_fn(|_: u32| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<String, BoxError>("late".into())
    });
    let timed = TimeoutLayer::new(Duration::from_millis(100))
        .unwrap()
        .layer(hangs);
    let (errors, calls) = shared_errors(timed).await;
    assert_eq!(calls, 1, "one call, shared");
    for err in errors {
        assert!(err.is::<Elapsed>(), "{err}");
    }

    let breaker = CircuitBreakerLayer::new(CircuitBreakerConfig::default()).unwrap();
    breaker.handle().force_open();
    let (errors, calls) = shared_errors(breaker.layer(Backend::default().service())).await;
    assert_eq!(calls, 1, "one call, shared");
    for err in errors {
        assert!(err.is::<CircuitOpen>(), "{err}");
        assert!(matches!(
            ErrorKind::of(&*err),
            Some(ErrorKind::CircuitOpen { .. })
        ));
    }

    let mut endpoints = vec![(0u32, Backend::default().service())];
    endpoints.clear();
    let empty = LoadBalance::new(BalanceConfig::default(), endpoints).unwrap();
    let (errors, calls) = shared_errors(empty).await;
    assert_eq!(calls, 1, "one call, shared");
    for err in errors {
        assert!(err.is::<NoEndpointAvailable>(), "{err}");
    }
}

#[tokio::test(start_paused = true)]
async fn waiters_make_their_own_call_when_the_one_they_waited_for_is_cancelled() {
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Notify::new());
    let svc = layer().layer(gated(calls.clone(), gate.clone(), false));
    let mut leader_svc = svc.clone();
    let leader = tokio::spawn(async move { leader_svc.ready().await.unwrap().call(1).await });
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let mut waiter_svc = svc.clone();
    let waiter =
        tokio::spawn(async move { waiter_svc.ready().await.unwrap().call(1).await.unwrap() });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    leader.abort();
    while calls.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    gate.notify_waiters();
    let answer = tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(
        (answer.status(), answer.get_ref().as_str()),
        (CacheStatus::Miss, "v2")
    );
}

#[tokio::test(start_paused = true)]
async fn the_capacity_bound_holds_after_a_hundred_thousand_keys() {
    let backend = Backend::default();
    let key: fn(&u32) -> Option<u32> = |k| Some(*k);
    let mut svc = CacheLayer::new(CacheConfig::default().max_entries(1_000), key)
        .unwrap()
        .layer(backend.service());
    for k in 0..100_000 {
        svc.ready().await.unwrap().call(k).await.unwrap();
    }
    let entries = svc.entry_count();
    assert!(entries <= 1_000, "{entries} entries");
    assert!(entries >= 900, "the store is used: {entries}");
}

#[tokio::test(start_paused = true)]
async fn the_weight_bound_holds_with_a_weigher() {
    let backend = Backend::default();
    let key: KeyFn = |k| Some(*k);
    // Each answer weighs its length in bytes ("v1" .. "v20000"): at most
    // 2 000 bytes kept.
    let mut svc = CacheLayer::new(CacheConfig::default().max_entries(2_000), key)
        .unwrap()
        .weigh_with(|_: &u32, body: &String| body.len() as u32)
        .layer(backend.service());
    for k in 0..20_000 {
        svc.ready().await.unwrap().call(k).await.unwrap();
    }
    let weight = svc.weighted_size();
    assert!(weight <= 2_000, "{weight} bytes");
    assert!(
        svc.entry_count() < 2_000 / 2,
        "entries weigh more than one each"
    );
}

#[tokio::test(start_paused = true)]
async fn requests_without_a_key_are_not_cached() {
    let backend = Backend::default();
    let odd_only = |k: &u32| (k % 2 == 1).then_some(*k);
    let mut svc = CacheLayer::new(CacheConfig::default(), odd_only)
        .unwrap()
        .layer(backend.service());
    for _ in 0..3 {
        svc.ready().await.unwrap().call(2).await.unwrap();
    }
    assert_eq!(backend.calls(), 3);
}

#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn http_responses_carry_their_status_in_extensions() {
    let key = |req: &http::Request<()>| Some(req.uri().to_string());
    let backend =
        service_fn(|_: http::Request<()>| async { Ok::<_, BoxError>(http::Response::new("body")) });
    let mut svc = CacheLayer::new(CacheConfig::default(), key)
        .unwrap()
        .http_extension()
        .layer(backend);
    let request = || http::Request::get("/users/1").body(()).unwrap();
    let first = svc.ready().await.unwrap().call(request()).await.unwrap();
    assert_eq!(
        first.extensions().get::<CacheStatus>(),
        Some(&CacheStatus::Miss)
    );
    let second = svc.ready().await.unwrap().call(request()).await.unwrap();
    assert_eq!(
        second.extensions().get::<CacheStatus>(),
        Some(&CacheStatus::Hit)
    );
    assert_eq!(*second.body(), "body");
}

#[test]
fn bad_configuration_is_a_typed_error_naming_the_field() {
    let key = |k: &u32| Some(*k);
    let err = CacheLayer::new(CacheConfig::default().ttl(Duration::ZERO), key).unwrap_err();
    assert_eq!((err.layer(), err.field()), ("cache", "ttl"));
    let err = CacheLayer::new(CacheConfig::default().max_entries(0), key).unwrap_err();
    assert_eq!((err.layer(), err.field()), ("cache", "max_entries"));
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn metrics_count_hits_misses_and_stale_answers() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let backend = Backend::default();
    let mut svc = metrics::with_local_recorder(&recorder, || {
        let key: fn(&u32) -> Option<u32> = |k| Some(*k);
        CacheLayer::new(CacheConfig::default().service("users").ttl(TTL), key)
            .unwrap()
            .layer(backend.service())
    });
    svc.ready().await.unwrap().call(1).await.unwrap();
    svc.ready().await.unwrap().call(1).await.unwrap();
    backend.down.store(true, Ordering::SeqCst);
    tokio::time::advance(TTL).await;
    svc.ready().await.unwrap().call(1).await.unwrap();
    let mut counts = std::collections::HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        if key.name() == "bulwark_cache_requests_total" {
            let result = key
                .labels()
                .find(|l| l.key() == "result")
                .unwrap()
                .value()
                .to_owned();
            if let DebugValue::Counter(n) = value {
                counts.insert(result, n);
            }
        }
    }
    assert_eq!(
        (
            counts["hit"],
            counts["miss"],
            counts["stale"],
            counts["coalesced"]
        ),
        (1, 1, 1, 0)
    );
}
