//! `Bulkhead` on tokio's paused clock: the cap, the bounded queue and its
//! longest wait, places given back however a call ends, and `Overloaded`'s
//! answers.
#![cfg(feature = "bulkhead")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use proptest::prelude::*;
use tokio::sync::oneshot;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::bulkhead::{BulkheadConfig, BulkheadLayer};
use tower_bulwark::error::{ErrorKind, Overloaded};

/// A service whose calls answer when told (or fail if the sender is
/// dropped), or panic on request 666.
fn held()
-> impl Service<oneshot::Receiver<u32>, Response = u32, Error = BoxError, Future: Send> + Clone {
    service_fn(|answer: oneshot::Receiver<u32>| async move {
        let value = answer.await?;
        assert_ne!(value, 666, "the handler panics");
        Ok::<_, BoxError>(value)
    })
}

/// One place, and a queue of one call that waits at most `wait`.
fn one_place(wait: Duration) -> BulkheadLayer {
    let config = BulkheadConfig::default()
        .max_concurrent_calls(1)
        .queue(1, wait);
    BulkheadLayer::new(config).unwrap()
}

/// A runtime on a paused clock, for tests that are not async themselves.
fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

fn overloaded(result: Result<u32, BoxError>) -> Overloaded {
    *result
        .unwrap_err()
        .downcast_ref::<Overloaded>()
        .expect("an Overloaded")
}

#[tokio::test(start_paused = true)]
async fn past_the_cap_a_call_fails_at_once_and_a_freed_place_is_taken_again() {
    let layer = BulkheadLayer::new(BulkheadConfig::default().max_concurrent_calls(2)).unwrap();
    let svc = layer.layer(held());
    let (a, ra) = oneshot::channel();
    let (b, rb) = oneshot::channel();
    let first = tokio::spawn(svc.clone().oneshot(ra));
    let second = tokio::spawn(svc.clone().oneshot(rb));
    tokio::task::yield_now().await;
    assert_eq!(layer.in_flight(), 2);

    let (_c, rc) = oneshot::channel();
    let error = overloaded(svc.clone().oneshot(rc).await);
    assert_eq!(error.retry_after(), None, "no queue: no wait to suggest");
    assert_eq!(error.layer(), "bulkhead");

    a.send(1).unwrap();
    assert_eq!(first.await.unwrap().unwrap(), 1);
    assert_eq!(layer.in_flight(), 1);
    let (d, rd) = oneshot::channel();
    d.send(4).unwrap();
    assert_eq!(svc.clone().oneshot(rd).await.unwrap(), 4);
    b.send(2).unwrap();
    assert_eq!(second.await.unwrap().unwrap(), 2);
    assert_eq!(layer.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_call_waits_in_the_bounded_queue_for_at_most_the_longest_wait() {
    let wait = Duration::from_millis(100);
    let layer = one_place(wait);
    let svc = layer.layer(held());
    let (a, ra) = oneshot::channel();
    let first = tokio::spawn(svc.clone().oneshot(ra));
    tokio::task::yield_now().await;

    // Queued, and a place frees within the wait: it runs.
    let (b, rb) = oneshot::channel();
    let queued = tokio::spawn(svc.clone().oneshot(rb));
    tokio::task::yield_now().await;
    // The queue is full: the next one fails at once, with the wait as hint.
    let (_c, rc) = oneshot::channel();
    let started = tokio::time::Instant::now();
    let error = overloaded(svc.clone().oneshot(rc).await);
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(error.retry_after(), Some(wait));
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.send(1).unwrap();
    b.send(2).unwrap();
    assert_eq!(first.await.unwrap().unwrap(), 1);
    assert_eq!(queued.await.unwrap().unwrap(), 2);

    // Queued, and nothing frees: it fails when the wait is over.
    let (_d, rd) = oneshot::channel();
    let running = tokio::spawn(svc.clone().oneshot(rd));
    tokio::task::yield_now().await;
    let (_e, re) = oneshot::channel();
    let started = tokio::time::Instant::now();
    let error = overloaded(svc.clone().oneshot(re).await);
    assert_eq!(started.elapsed(), wait);
    assert_eq!(error.retry_after(), Some(wait));
    running.abort();
}

#[tokio::test(start_paused = true)]
async fn a_place_comes_back_when_the_future_is_dropped_or_the_call_panics() {
    let layer = BulkheadLayer::new(BulkheadConfig::default().max_concurrent_calls(1)).unwrap();
    let svc = layer.layer(held());

    // Dropped before the answer.
    let (_a, ra) = oneshot::channel();
    let call = svc.clone().oneshot(ra);
    drop(call);
    assert_eq!(layer.in_flight(), 0);
    let (_b, rb) = oneshot::channel();
    let pending = tokio::spawn(svc.clone().oneshot(rb));
    tokio::task::yield_now().await;
    assert_eq!(layer.in_flight(), 1);
    pending.abort();
    assert!(pending.await.unwrap_err().is_cancelled());
    assert_eq!(layer.in_flight(), 0);

    // A handler that panics.
    let (c, rc) = oneshot::channel();
    c.send(666).unwrap();
    let panicked = tokio::spawn(svc.clone().oneshot(rc)).await;
    assert!(panicked.unwrap_err().is_panic());
    assert_eq!(layer.in_flight(), 0);

    // A service that took a place and was dropped before calling.
    let mut ready = svc.clone();
    ServiceExt::<oneshot::Receiver<u32>>::ready(&mut ready)
        .await
        .unwrap();
    assert_eq!(layer.in_flight(), 1);
    drop(ready);
    assert_eq!(layer.in_flight(), 0);
}

#[test]
fn bad_settings_are_refused_with_the_field_named() {
    let error = BulkheadLayer::new(BulkheadConfig::default().max_concurrent_calls(0)).unwrap_err();
    assert_eq!(error.field(), "max_concurrent_calls");
    let error =
        BulkheadLayer::new(BulkheadConfig::default().queue(10, Duration::ZERO)).unwrap_err();
    assert_eq!(error.field(), "max_wait");
}

#[cfg(feature = "http")]
#[test]
fn an_overload_is_answered_503_with_retry_after() {
    let error: BoxError = Box::new(overloaded_with(Some(Duration::from_millis(1_500))));
    assert_eq!(
        ErrorKind::of(&*error),
        Some(ErrorKind::Overloaded {
            retry_after: Some(Duration::from_millis(1_500))
        })
    );
    let response: http::Response<String> = tower_bulwark::error::http_response(&*error).unwrap();
    assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[http::header::RETRY_AFTER], "2");
    assert_eq!(response.body(), "overloaded");
}

#[cfg(feature = "grpc")]
#[test]
fn an_overload_is_resource_exhausted_in_grpc() {
    let error: BoxError = Box::new(overloaded_with(Some(Duration::from_millis(250))));
    let status = tower_bulwark::error::grpc_status(error);
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "250"
    );
}

/// An `Overloaded` as a full queue gives it.
fn overloaded_with(retry_after: Option<Duration>) -> Overloaded {
    paused().block_on(async {
        let wait = retry_after.unwrap();
        let layer = one_place(wait);
        let svc = layer.layer(held());
        let (_a, ra) = oneshot::channel();
        let _running = tokio::spawn(svc.clone().oneshot(ra));
        tokio::task::yield_now().await;
        let (_b, rb) = oneshot::channel();
        overloaded(svc.clone().oneshot(rb).await)
    })
}

/// What a caller does with one call.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Call, and let it answer.
    Answer,
    /// Call, and drop the response future before the answer.
    Drop,
    /// Take a place (`ready`) and drop the service without calling.
    Abandon,
    /// Call, and keep it running until the end.
    Keep,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// No sequence of calls, drops and abandoned reservations leaks a place
    /// or runs more than the cap at once.
    #[test]
    fn no_place_leaks(
        cap in 1usize..4,
        steps in prop::collection::vec(
            prop_oneof![Just(Step::Answer), Just(Step::Drop), Just(Step::Abandon), Just(Step::Keep)],
            0..40,
        ),
    ) {
        paused().block_on(async {
            let layer = BulkheadLayer::new(BulkheadConfig::default().max_concurrent_calls(cap)).unwrap();
            let svc = layer.layer(held());
            let mut kept = Vec::new();
            for step in steps {
                let (tx, rx) = oneshot::channel();
                match step {
                    Step::Answer => {
                        tx.send(7).unwrap();
                        let result = svc.clone().oneshot(rx).await;
                        prop_assert!(result.is_ok() || result.unwrap_err().is::<Overloaded>());
                    }
                    Step::Drop => drop(svc.clone().oneshot(rx)),
                    Step::Abandon => {
                        let mut ready = svc.clone();
                        let _ = ServiceExt::<oneshot::Receiver<u32>>::ready(&mut ready).await;
                    }
                    Step::Keep => {
                        kept.push((tx, tokio::spawn(svc.clone().oneshot(rx))));
                        tokio::task::yield_now().await;
                    }
                }
                prop_assert!(layer.in_flight() <= cap);
            }
            let mut admitted = 0;
            for (tx, call) in kept {
                let _ = tx.send(1);
                if call.await.unwrap().is_ok() {
                    admitted += 1;
                }
            }
            prop_assert!(admitted <= cap);
            prop_assert_eq!(layer.in_flight(), 0);
            Ok(())
        })?;
    }
}

/// Many tasks on many threads through two places and a queue as long as
/// there are tasks: none is turned away (a lost wake-up would leave one
/// waiting until its wait is over), and no more than two run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_calls_are_woken_under_contention() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let service = {
        let (running, most) = (running.clone(), most.clone());
        service_fn(move |()| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(())
            }
        })
    };
    let layer = BulkheadLayer::new(
        BulkheadConfig::default()
            .max_concurrent_calls(2)
            // Long enough for a slow machine: a call that arrives as a
            // place frees may take it before a waiting one.
            .queue(16, Duration::from_secs(30)),
    )
    .unwrap();
    let svc = layer.layer(service);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                for _ in 0..200 {
                    svc.clone().oneshot(()).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(most.load(Ordering::SeqCst) <= 2);
    assert_eq!(layer.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn unwrapping_a_ready_bulkhead_gives_its_place_back() {
    let layer = one_place(Duration::from_millis(1));
    let mut first = layer.layer(held());
    let mut second = first.clone();
    first.ready().await.unwrap();
    let _inner = first.into_inner();
    let (tx, rx) = oneshot::channel();
    tx.send(7).unwrap();
    assert_eq!(second.ready().await.unwrap().call(rx).await.unwrap(), 7);
}
