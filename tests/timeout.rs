//! Timeout on tokio's paused clock: exact deadlines, fallbacks, errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
#![cfg(feature = "timeout")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio_test::{assert_pending, assert_ready, assert_ready_err, assert_ready_ok};
use tower::{BoxError, Service, ServiceExt, service_fn};
use tower_bulwark::timeout::{Timeout, TimeoutLayer, error::Elapsed};
use tower_test::mock;

const DEADLINE: Duration = Duration::from_millis(100);

#[tokio::test(start_paused = true)]
async fn answer_before_the_deadline_passes_through() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<&str, &str, _>(TimeoutLayer::new(DEADLINE).unwrap());
    assert_ready_ok!(svc.poll_ready());
    let mut response = tokio_test::task::spawn(svc.call("hello"));
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request, "hello");
    tokio::time::advance(DEADLINE - Duration::from_millis(1)).await;
    assert_pending!(response.poll());
    send.send_response("world");
    assert_eq!(assert_ready_ok!(response.poll()), "world");
}

#[tokio::test(start_paused = true)]
async fn fails_with_towers_elapsed_exactly_at_the_deadline() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<(), (), _>(TimeoutLayer::new(DEADLINE).unwrap());
    assert_ready_ok!(svc.poll_ready());
    let mut response = tokio_test::task::spawn(svc.call(()));
    let _pending = handle.next_request().await.unwrap();
    // The deadline runs from the first poll that has to wait.
    assert_pending!(response.poll());

    tokio::time::advance(DEADLINE - Duration::from_nanos(1)).await;
    assert_pending!(response.poll());
    tokio::time::advance(Duration::from_nanos(1)).await;
    let err = assert_ready_err!(response.poll());
    assert!(err.is::<Elapsed>(), "{err}");
    assert_eq!(err.to_string(), "request timed out");
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_boxed() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<(), (), _>(TimeoutLayer::new(DEADLINE).unwrap());
    assert_ready_ok!(svc.poll_ready());
    let mut response = tokio_test::task::spawn(svc.call(()));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error("boom");
    let err = assert_ready_err!(response.poll());
    assert!(!err.is::<Elapsed>());
    assert_eq!(err.to_string(), "boom");
}

#[tokio::test(start_paused = true)]
async fn readiness_is_the_inner_services() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<(), (), _>(TimeoutLayer::new(DEADLINE).unwrap());
    handle.allow(0);
    assert_pending!(svc.poll_ready());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
    handle.send_error("closed");
    drop(svc.call(()));
    assert_ready_err!(svc.poll_ready());
}

/// A service that answers after `delay` and counts the futures it dropped
/// before they finished.
fn delayed(
    delay: Duration,
    label: &'static str,
    dropped: Arc<AtomicUsize>,
) -> impl Service<u32, Response = String, Error = BoxError, Future: Send> + Clone {
    service_fn(move |req: u32| {
        let guard = DropCounter(dropped.clone(), false);
        async move {
            let mut guard = guard;
            tokio::time::sleep(delay).await;
            guard.1 = true;
            Ok::<_, BoxError>(format!("{label} {req}"))
        }
    })
}

struct DropCounter(Arc<AtomicUsize>, bool);

impl Drop for DropCounter {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn fallback_answers_with_a_clone_of_the_request_and_the_slow_call_is_dropped() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let layer = TimeoutLayer::new(DEADLINE).unwrap().fallback(delayed(
        Duration::from_millis(5),
        "backup",
        Arc::default(),
    ));
    let mut svc = tower::Layer::layer(
        &layer,
        delayed(Duration::from_secs(5), "primary", dropped.clone()),
    );

    let start = tokio::time::Instant::now();
    let answer = svc.ready().await.unwrap().call(7).await.unwrap();
    assert_eq!(answer, "backup 7");
    assert_eq!(start.elapsed(), DEADLINE + Duration::from_millis(5));
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the primary call is dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn fallback_is_not_used_when_the_inner_service_is_in_time() {
    let fallback_calls = Arc::new(AtomicUsize::new(0));
    let counted = fallback_calls.clone();
    let fallback = service_fn(move |_: u32| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>("backup".to_string()) }
    });
    let layer = TimeoutLayer::new(DEADLINE).unwrap().fallback(fallback);
    let mut svc = tower::Layer::layer(
        &layer,
        delayed(Duration::from_millis(99), "primary", Arc::default()),
    );
    assert_eq!(
        svc.ready().await.unwrap().call(1).await.unwrap(),
        "primary 1"
    );
    assert_eq!(fallback_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn inner_answer_wins_while_the_fallback_gets_ready() {
    // The fallback is not ready at the deadline; the inner answer that
    // arrives meanwhile is used.
    let (fallback, mut fallback_handle) = mock::pair::<u32, String>();
    fallback_handle.allow(0);
    let layer = TimeoutLayer::new(DEADLINE).unwrap().fallback(fallback);
    let (inner, mut inner_handle) = mock::pair::<u32, String>();
    let mut svc = tower::Layer::layer(&layer, inner);

    let mut response = tokio_test::task::spawn(async move { svc.ready().await?.call(3).await });
    assert_pending!(response.poll());
    let (_, send) = inner_handle.next_request().await.unwrap();
    tokio::time::advance(DEADLINE * 2).await;
    assert_pending!(response.poll());
    send.send_response("late but first".to_string());
    assert_eq!(assert_ready_ok!(response.poll()), "late but first");
    assert!(matches!(fallback_handle.poll_request(), Poll::Pending));
}

#[tokio::test(start_paused = true)]
async fn fallback_errors_are_returned() {
    let (fallback, mut fallback_handle) = mock::pair::<u32, String>();
    let layer = TimeoutLayer::new(DEADLINE).unwrap().fallback(fallback);
    let (inner, mut inner_handle) = mock::pair::<u32, String>();
    let mut svc = tower::Layer::layer(&layer, inner);

    let mut response = tokio_test::task::spawn(async move { svc.ready().await?.call(3).await });
    assert_pending!(response.poll());
    let _inner = inner_handle.next_request().await.unwrap();
    tokio::time::advance(DEADLINE).await;
    assert_pending!(response.poll());
    let (request, send) = fallback_handle.next_request().await.unwrap();
    assert_eq!(request, 3);
    send.send_error("backup down");
    let err = assert_ready!(response.poll()).unwrap_err();
    assert_eq!(err.to_string(), "backup down");
}

#[test]
fn zero_timeout_is_a_config_error_naming_the_field() {
    let err = TimeoutLayer::new(Duration::ZERO).unwrap_err();
    assert_eq!((err.layer(), err.field()), ("timeout", "timeout"));
    assert_eq!(
        err.to_string(),
        "invalid timeout config: timeout must be a duration greater than zero"
    );
    let err = Timeout::new((), Duration::ZERO).unwrap_err();
    assert_eq!(err.field(), "timeout");
}

#[tokio::test(start_paused = true)]
async fn a_clone_keeps_the_deadline() {
    let svc = Timeout::new(delayed(DEADLINE * 2, "slow", Arc::default()), DEADLINE).unwrap();
    let mut clone = svc.clone();
    assert_eq!(clone.timeout(), DEADLINE);
    let err = clone.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(err.is::<Elapsed>());
}

#[tokio::test(start_paused = true)]
async fn the_wait_for_readiness_is_bounded_by_the_deadline() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<u32, u32, _>(TimeoutLayer::new(DEADLINE).unwrap());
    handle.allow(0);
    assert_pending!(svc.poll_ready());
    tokio::time::advance(DEADLINE - Duration::from_millis(1)).await;
    assert_pending!(svc.poll_ready());
    tokio::time::advance(Duration::from_millis(1)).await;
    // Never ready within the deadline: ready, and the call fails at once
    // without reaching the inner service.
    assert_ready_ok!(svc.poll_ready());
    let mut response = tokio_test::task::spawn(svc.call(1));
    let err = assert_ready_err!(response.poll());
    assert!(err.is::<Elapsed>(), "{err}");
    assert!(matches!(handle.poll_request(), Poll::Pending), "not sent");

    // Expired and not called: once the inner service is ready, a call goes
    // through after all.
    assert_pending!(svc.poll_ready());
    tokio::time::advance(DEADLINE).await;
    assert_ready_ok!(svc.poll_ready());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
    let response = tokio_test::task::spawn(svc.call(9));
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request, 9);
    send.send_response(9);
    assert_eq!(response.await.unwrap(), 9);

    // The next wait has a deadline of its own.
    assert_pending!(svc.poll_ready());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
    let response = tokio_test::task::spawn(svc.call(2));
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request, 2);
    send.send_response(2);
    assert_eq!(response.await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_service_never_ready_is_answered_by_the_fallback() {
    let (inner, mut handle) = mock::pair::<u32, String>();
    handle.allow(0);
    let layer = TimeoutLayer::new(DEADLINE).unwrap().fallback(delayed(
        Duration::ZERO,
        "backup",
        Arc::default(),
    ));
    let mut svc = tower::Layer::layer(&layer, inner);
    let start = tokio::time::Instant::now();
    let answer = svc.ready().await.unwrap().call(4).await.unwrap();
    assert_eq!(answer, "backup 4");
    assert_eq!(start.elapsed(), DEADLINE);
}

#[cfg(all(feature = "balance", feature = "circuit-breaker"))]
mod beneath {
    //! What the recording layers beneath a timeout learn of the calls it
    //! cuts off, and of calls their callers drop.
    use super::*;
    use tower_bulwark::balance::{BalanceConfig, LoadBalance, OutlierDetection, Strategy};
    use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer, CircuitState};

    /// Two endpoints: `ok` answers at once, `hung` after an hour.
    fn balancer() -> LoadBalance<
        &'static str,
        impl Service<u32, Response = String, Error = BoxError, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static,
    > {
        let endpoint = |name: &'static str, delay: Duration| {
            service_fn(move |id: u32| async move {
                tokio::time::sleep(delay).await;
                Ok::<_, BoxError>(format!("{name} {id}"))
            })
        };
        let config = BalanceConfig::default()
            .strategy(Strategy::RoundRobin)
            .outlier_detection(
                OutlierDetection::default()
                    .consecutive_failures(Some(2))
                    .ejection_time(Duration::from_secs(60), Duration::from_secs(60)),
            );
        LoadBalance::new(
            config,
            [
                ("ok", endpoint("ok", Duration::ZERO)),
                ("hung", endpoint("hung", Duration::from_secs(3600))),
            ],
        )
        .unwrap()
    }

    fn ejected(lb: &LoadBalance<&'static str, impl Sized>) -> Vec<&'static str> {
        lb.endpoints()
            .into_iter()
            .filter(|e| e.ejected)
            .map(|e| e.key)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_that_hangs_is_ejected() {
        let lb = balancer();
        let mut svc = Timeout::new(lb.clone(), DEADLINE).unwrap();
        let mut timeouts = 0;
        for id in 0..10 {
            match svc.ready().await.unwrap().call(id).await {
                Ok(answer) => assert!(answer.starts_with("ok")),
                Err(e) => {
                    assert!(e.is::<Elapsed>());
                    timeouts += 1;
                }
            }
        }
        assert_eq!(timeouts, 2, "two calls cut off, then the endpoint is out");
        assert_eq!(ejected(&lb), vec!["hung"]);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_their_callers_drop_count_nothing() {
        let lb = balancer();
        let mut svc = Timeout::new(lb.clone(), DEADLINE).unwrap();
        for id in 0..10 {
            let call = svc.ready().await.unwrap().call(id);
            // The caller gives up before the deadline.
            let _ = tokio::time::timeout(DEADLINE / 2, call).await;
        }
        assert!(ejected(&lb).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_breaker_beneath_counts_a_cut_off_call_as_a_failure() {
        let breaker =
            CircuitBreakerLayer::new(CircuitBreakerConfig::default().consecutive_failures(2))
                .unwrap();
        let handle = breaker.handle();
        let hangs = service_fn(|_: u32| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, BoxError>(())
        });
        let mut svc = Timeout::new(tower::Layer::layer(&breaker, hangs), DEADLINE).unwrap();
        for id in 0..2 {
            let _ = tokio::time::timeout(DEADLINE / 2, svc.ready().await.unwrap().call(id)).await;
        }
        assert_eq!(
            handle.state(),
            CircuitState::Closed,
            "dropped calls: nothing"
        );
        for id in 0..2 {
            let err = svc.ready().await.unwrap().call(id).await.unwrap_err();
            assert!(err.is::<Elapsed>());
        }
        assert_eq!(handle.state(), CircuitState::Open, "cut off twice: open");
    }
}
