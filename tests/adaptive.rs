//! `AdaptiveConcurrency` on tokio's paused clock: the limit learned from a
//! backend that queues what it cannot serve at once, growth while latency
//! holds, AIMD's back-off on failures and on calls cut off by a deadline,
//! and no place leaked however calls end.
#![cfg(all(feature = "adaptive", feature = "timeout"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use proptest::prelude::*;
use tokio::sync::{Semaphore, oneshot};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::adaptive::{AdaptiveConcurrencyLayer, AdaptiveConfig, Algorithm};
use tower_bulwark::admission::AdmissionEvent;
use tower_bulwark::error::Overloaded;
use tower_bulwark::event::{Event, Events};
use tower_bulwark::timeout::TimeoutLayer;

/// A backend that serves `capacity` calls at once, each in `latency`; the
/// others wait their turn in its queue.
fn queueing(
    capacity: usize,
    latency: Duration,
) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone {
    let workers = Arc::new(Semaphore::new(capacity));
    service_fn(move |x: u32| {
        let workers = workers.clone();
        async move {
            let _worker = workers.acquire().await?;
            tokio::time::sleep(latency).await;
            Ok::<_, BoxError>(x)
        }
    })
}

/// `clients` callers, each calling again as soon as it has its answer (and
/// 1 ms after an `Overloaded`), for `duration`. Returns the answers and the
/// rejections.
async fn closed_loop<S>(service: S, clients: usize, duration: Duration) -> (usize, usize)
where
    S: Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send + 'static,
{
    let answered = Arc::new(AtomicUsize::new(0));
    let rejected = Arc::new(AtomicUsize::new(0));
    let end = tokio::time::Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut service = service.clone();
        let (answered, rejected) = (answered.clone(), rejected.clone());
        tasks.push(tokio::spawn(async move {
            while tokio::time::Instant::now() < end {
                match service.ready().await.unwrap().call(1).await {
                    Ok(_) => answered.fetch_add(1, Relaxed),
                    Err(e) if e.is::<Overloaded>() => {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        rejected.fetch_add(1, Relaxed)
                    }
                    Err(e) => panic!("unexpected error: {e}"),
                };
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (answered.load(Relaxed), rejected.load(Relaxed))
}

#[tokio::test(start_paused = true)]
async fn gradient2_learns_a_limit_near_what_the_backend_serves_and_sheds_the_rest() {
    let changes = Arc::new(AtomicUsize::new(0));
    let seen = changes.clone();
    let hub = Events::new();
    hub.subscribe(move |event| {
        if let Event::Admission(AdmissionEvent::LimitChanged { service, .. }) = event {
            assert_eq!(&**service, "users");
            seen.fetch_add(1, Relaxed);
        }
    });
    let layer =
        AdaptiveConcurrencyLayer::new(AdaptiveConfig::default().service("users").events(&hub))
            .unwrap();
    assert_eq!(layer.limit(), 20, "the initial limit");
    // 8 at once in 10 ms: 800 calls a second at most; 100 callers.
    let service = layer.layer(queueing(8, Duration::from_millis(10)));
    let (answered, rejected) = closed_loop(service, 100, Duration::from_secs(30)).await;

    // Gradient2 settles near 8 + 4 places (a little over, as its long-term
    // average follows the latency between probes).
    let limit = layer.limit();
    assert!((10..=18).contains(&limit), "limit {limit}");
    assert!(changes.load(Relaxed) > 0, "limit changes are events");
    // The backend stays busy: at least 90 % of its 24,000 calls in 30 s.
    assert!(answered >= 21_600, "answered {answered}");
    assert!(rejected > 0, "the callers over the limit were turned away");
    assert_eq!(layer.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn gradient2_grows_the_limit_while_latency_holds() {
    let layer = AdaptiveConcurrencyLayer::new(AdaptiveConfig::default()).unwrap();
    // Serves 1000 at once: latency never moves.
    let service = layer.layer(queueing(1000, Duration::from_millis(10)));
    closed_loop(service, 200, Duration::from_secs(10)).await;
    assert!(layer.limit() > 60, "limit {}", layer.limit());
}

#[tokio::test(start_paused = true)]
async fn a_limit_nobody_reaches_stays_where_it_is() {
    let layer = AdaptiveConcurrencyLayer::new(AdaptiveConfig::default()).unwrap();
    let service = layer.layer(queueing(1000, Duration::from_millis(10)));
    closed_loop(service, 5, Duration::from_secs(10)).await;
    assert_eq!(layer.limit(), 20);
}

#[tokio::test(start_paused = true)]
async fn aimd_backs_off_when_calls_fail_and_when_the_timeout_cuts_them_off() {
    let config = AdaptiveConfig::default()
        .algorithm(Algorithm::Aimd)
        .aimd(0.5, Duration::from_secs(1));
    // Failures.
    let layer = AdaptiveConcurrencyLayer::new(config.clone()).unwrap();
    let failing = layer.layer(service_fn(|_: u32| async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Err::<u32, BoxError>("boom".into())
    }));
    for _ in 0..100 {
        let _ = failing.clone().oneshot(1).await;
    }
    assert!(layer.limit() < 20, "limit {}", layer.limit());

    // Calls the timeout beneath cuts off: the backend hangs.
    let layer = AdaptiveConcurrencyLayer::new(config).unwrap();
    let timeout = TimeoutLayer::new(Duration::from_millis(50)).unwrap();
    let hung = layer.layer(timeout.layer(service_fn(|x: u32| async move {
        std::future::pending::<()>().await;
        Ok::<_, BoxError>(x)
    })));
    for _ in 0..100 {
        assert!(hung.clone().oneshot(1).await.is_err());
    }
    assert_eq!(layer.limit(), 1, "halved down to the lowest limit");
    assert_eq!(layer.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_caller_dropping_its_call_teaches_nothing_and_frees_the_place() {
    let layer = AdaptiveConcurrencyLayer::new(
        AdaptiveConfig::default()
            .algorithm(Algorithm::Aimd)
            .windows(Duration::from_millis(100), Duration::from_millis(100), 1),
    )
    .unwrap();
    let service = layer.layer(service_fn(|x: u32| async move {
        std::future::pending::<()>().await;
        Ok::<_, BoxError>(x)
    }));
    for _ in 0..50 {
        let call = service.clone().oneshot(1);
        let _ = tokio::time::timeout(Duration::from_millis(10), call).await;
    }
    assert_eq!(layer.limit(), 20);
    assert_eq!(layer.in_flight(), 0);
}

#[test]
fn invalid_settings_are_named() {
    let error =
        AdaptiveConcurrencyLayer::new(AdaptiveConfig::default().limits(10, 5, 100)).unwrap_err();
    assert_eq!(error.layer(), "adaptive_concurrency");
    assert_eq!(error.field(), "initial_limit");
    let error =
        AdaptiveConcurrencyLayer::new(AdaptiveConfig::default().gradient(0.5, 0.2)).unwrap_err();
    assert_eq!(error.field(), "tolerance");
    let error =
        AdaptiveConcurrencyLayer::new(AdaptiveConfig::default().aimd(1.0, Duration::from_secs(1)))
            .unwrap_err();
    assert_eq!(error.field(), "backoff");
    let error = AdaptiveConcurrencyLayer::new(AdaptiveConfig::default().windows(
        Duration::from_secs(2),
        Duration::from_secs(1),
        10,
    ))
    .unwrap_err();
    assert_eq!(error.field(), "max_window");
}

/// What a step of the property test does.
#[derive(Debug, Clone)]
enum Step {
    /// Start a call (it waits for its answer).
    Start,
    /// Answer the oldest call under way, well or with an error.
    Answer { ok: bool },
    /// Drop the oldest call under way.
    Drop,
    /// Take a place with `poll_ready`, then drop the service unused.
    ReadyThenDrop,
    /// Let time pass.
    Wait { millis: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Start),
        3 => any::<bool>().prop_map(|ok| Step::Answer { ok }),
        1 => Just(Step::Drop),
        1 => Just(Step::ReadyThenDrop),
        2 => (1u64..300).prop_map(|millis| Step::Wait { millis }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// However calls end, the places held are the calls under way, and the
    /// limit stays within its bounds.
    #[test]
    fn no_sequence_of_calls_leaks_a_place_or_breaks_the_bounds(
        algorithm in prop_oneof![Just(Algorithm::Gradient2), Just(Algorithm::Aimd), Just(Algorithm::Vegas)],
        steps in proptest::collection::vec(step(), 1..200),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (min, max) = (2, 8);
            let layer = AdaptiveConcurrencyLayer::new(
                AdaptiveConfig::default()
                    .algorithm(algorithm)
                    .limits(min, 4, max)
                    .windows(Duration::from_millis(10), Duration::from_millis(50), 2),
            )
            .unwrap();
            let service = layer.layer(service_fn(|answer: oneshot::Receiver<bool>| async move {
                match answer.await {
                    Ok(true) => Ok(1u32),
                    _ => Err::<u32, BoxError>("failed".into()),
                }
            }));
            let mut running = std::collections::VecDeque::new();
            for step in steps {
                match step {
                    Step::Start => {
                        let (tx, rx) = oneshot::channel();
                        let mut service = service.clone();
                        let call = tokio::spawn(async move {
                            service.ready().await.unwrap().call(rx).await
                        });
                        tokio::task::yield_now().await;
                        running.push_back((tx, call));
                    }
                    Step::Answer { ok } => {
                        if let Some((tx, call)) = running.pop_front() {
                            let _ = tx.send(ok);
                            let _ = call.await.unwrap();
                        }
                    }
                    Step::Drop => {
                        if let Some((_tx, call)) = running.pop_front() {
                            call.abort();
                            let _ = call.await;
                        }
                    }
                    Step::ReadyThenDrop => {
                        let mut service = service.clone();
                        let _ = service.ready().await.unwrap();
                    }
                    Step::Wait { millis } => {
                        tokio::time::sleep(Duration::from_millis(millis)).await;
                    }
                }
                // Calls turned away have finished; the rest hold a place.
                let mut holding = 0;
                let mut kept = std::collections::VecDeque::new();
                for (tx, call) in running.drain(..) {
                    if call.is_finished() {
                        let result = call.await.unwrap();
                        assert!(result.unwrap_err().is::<Overloaded>());
                    } else {
                        holding += 1;
                        kept.push_back((tx, call));
                    }
                }
                running = kept;
                assert_eq!(layer.in_flight(), holding);
                assert!((min..=max).contains(&layer.limit()), "limit {}", layer.limit());
            }
        });
    }
}
