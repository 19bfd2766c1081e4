//! CircuitBreaker on tokio's paused clock, with tower-test mocks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
#![cfg(feature = "circuit-breaker")]

#[path = "support/events.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio_test::{assert_pending, assert_ready_err, assert_ready_ok};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::circuit_breaker::{
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer, CircuitEvent, CircuitState,
    OpenDuration, SlidingWindow, TransitionReason, error::CircuitOpen,
};
use tower_bulwark::classify::Outcome;
use tower_bulwark::event::{Event, Events};
use tower_test::mock;

const OPEN: Duration = Duration::from_secs(10);

fn config() -> CircuitBreakerConfig {
    CircuitBreakerConfig::default()
        .service("test")
        .open_duration(OpenDuration::fixed(OPEN))
}

type Mock = mock::Mock<&'static str, &'static str>;
type Handle = mock::Handle<&'static str, &'static str>;

/// A breaker over a mock, driven call by call.
struct Harness {
    svc: CircuitBreaker<Mock>,
    handle: Handle,
}

impl Harness {
    fn new(config: CircuitBreakerConfig) -> Self {
        let (inner, handle) = mock::pair();
        let svc = CircuitBreakerLayer::new(config).unwrap().layer(inner);
        Harness { svc, handle }
    }

    fn state(&self) -> CircuitState {
        self.svc.handle().state()
    }

    /// One call answered with `Ok` or `Err` by the mock; panics if the call
    /// was rejected instead of reaching the mock.
    async fn call(&mut self, ok: bool) -> Result<&'static str, BoxError> {
        let fut = self.svc.ready().await.unwrap().call("req");
        let (_, send) = self
            .handle
            .next_request()
            .await
            .expect("the call reached the inner service");
        if ok {
            send.send_response("ok");
        } else {
            send.send_error("fail");
        }
        fut.await
    }

    async fn succeed(&mut self, n: usize) {
        for _ in 0..n {
            self.call(true).await.unwrap();
        }
    }

    async fn fail(&mut self, n: usize) {
        for _ in 0..n {
            self.call(false).await.unwrap_err();
        }
    }

    /// A call that must be rejected without reaching the mock.
    async fn rejected(&mut self) -> CircuitOpen {
        let err = self
            .svc
            .ready()
            .await
            .unwrap()
            .call("req")
            .await
            .unwrap_err();
        assert!(
            matches!(self.handle.poll_request(), Poll::Pending),
            "inner service was called"
        );
        *err.downcast_ref::<CircuitOpen>().expect("CircuitOpen")
    }
}

/// A breaker over a mock that tripped on one failure and whose open period
/// has just ended: the next call is a probe.
async fn tripped_and_waited(
    config: CircuitBreakerConfig,
) -> (CircuitBreakerLayer, CircuitBreaker<Mock>, Handle) {
    let layer = CircuitBreakerLayer::new(config.consecutive_failures(1)).unwrap();
    let (inner, mut handle) = mock::pair::<&'static str, &'static str>();
    let mut svc = layer.layer(inner);
    let call = svc.ready().await.unwrap().call("x");
    handle.next_request().await.unwrap().1.send_error("fail");
    call.await.unwrap_err();
    assert_eq!(layer.handle().state(), CircuitState::Open);
    tokio::time::advance(OPEN).await;
    (layer, svc, handle)
}

#[tokio::test(start_paused = true)]
async fn trips_after_consecutive_failures_and_fails_fast() {
    let mut h = Harness::new(config().consecutive_failures(3));
    h.fail(2).await;
    h.succeed(1).await;
    h.fail(2).await;
    assert_eq!(
        h.state(),
        CircuitState::Closed,
        "a success resets the streak"
    );
    h.fail(1).await;
    assert_eq!(h.state(), CircuitState::Open);

    let open = h.rejected().await;
    assert_eq!(open.retry_after(), Some(OPEN));
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(
        h.rejected().await.retry_after(),
        Some(Duration::from_secs(6))
    );
    assert_eq!(open.to_string(), "circuit open");
}

#[tokio::test(start_paused = true)]
async fn count_window_slides_and_trips_after_exactly_the_rate() {
    // Window of 10, rate 0.5: after 10 successes, 5 failures push out 5
    // successes and make 5/10 — it trips on the 5th failure, not after 10.
    let mut h = Harness::new(
        config()
            .sliding_window(SlidingWindow::count(10))
            .minimum_calls(10),
    );
    h.succeed(10).await;
    h.fail(4).await;
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(h.svc.handle().snapshot().failures, 4);
    h.fail(1).await;
    assert_eq!(h.state(), CircuitState::Open);
    let snapshot = h.svc.handle().snapshot();
    assert_eq!((snapshot.calls, snapshot.failures), (10, 5));
    assert_eq!(snapshot.failure_rate(), Some(0.5));
}

#[tokio::test(start_paused = true)]
async fn old_failures_leave_the_count_window() {
    let mut h = Harness::new(
        config()
            .sliding_window(SlidingWindow::count(4))
            .minimum_calls(4),
    );
    h.fail(1).await; // 1/1 but below the minimum
    h.succeed(3).await;
    // [F S S S]; one more failure pushes out the first failure: 1/4.
    h.fail(1).await;
    assert_eq!(h.svc.handle().snapshot().failures, 1);
    h.fail(1).await; // [S S F F] = 2/4
    assert_eq!(h.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn minimum_calls_hold_back_the_rate() {
    let mut h = Harness::new(config().minimum_calls(5));
    h.fail(4).await;
    assert_eq!(h.state(), CircuitState::Closed, "4 calls < minimum of 5");
    h.fail(1).await;
    assert_eq!(h.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_failures_older_than_the_window() {
    let mut h = Harness::new(
        config()
            .sliding_window(SlidingWindow::time_buckets(Duration::from_secs(10), 10))
            .minimum_calls(4)
            .failure_rate_threshold(0.5),
    );
    h.fail(3).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    // The three failures have left the window: 1 failure of 4 calls.
    h.succeed(3).await;
    h.fail(1).await;
    assert_eq!(h.state(), CircuitState::Closed);
    let snapshot = h.svc.handle().snapshot();
    assert_eq!((snapshot.calls, snapshot.failures), (4, 1));
    h.fail(1).await; // 2 of 5
    assert_eq!(h.state(), CircuitState::Closed);
    h.fail(1).await; // 3 of 6
    assert_eq!(h.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_the_slow_call_rate() {
    let mut h = Harness::new(
        config()
            .minimum_calls(4)
            .slow_call_duration(Duration::from_millis(100))
            .slow_call_rate_threshold(0.5),
    );
    h.succeed(2).await;
    for expected in [CircuitState::Closed, CircuitState::Open] {
        let fut = h.svc.ready().await.unwrap().call("slow");
        let (_, send) = h.handle.next_request().await.unwrap();
        tokio::time::advance(Duration::from_millis(101)).await;
        send.send_response("late");
        fut.await.unwrap();
        assert_eq!(h.state(), expected);
    }
    assert_eq!(h.svc.handle().snapshot().slow_calls, 2);
}

#[tokio::test(start_paused = true)]
async fn a_call_at_the_slow_threshold_is_not_slow() {
    let mut h = Harness::new(
        config()
            .minimum_calls(1)
            .slow_call_duration(Duration::from_millis(100))
            .slow_call_rate_threshold(0.1),
    );
    let fut = h.svc.ready().await.unwrap().call("on time");
    let (_, send) = h.handle.next_request().await.unwrap();
    tokio::time::advance(Duration::from_millis(100)).await;
    send.send_response("ok");
    fut.await.unwrap();
    assert_eq!(h.state(), CircuitState::Closed);
    assert_eq!(h.svc.handle().snapshot().slow_calls, 0);
}

#[tokio::test(start_paused = true)]
async fn half_open_probe_success_closes_and_failure_reopens() {
    let mut h = Harness::new(config().consecutive_failures(1));
    h.fail(1).await;
    assert_eq!(h.state(), CircuitState::Open);
    tokio::time::advance(OPEN).await;
    // The first call after the open period is a probe; it fails: open again.
    h.fail(1).await;
    assert_eq!(h.state(), CircuitState::Open);
    assert_eq!(h.rejected().await.retry_after(), Some(OPEN));
    tokio::time::advance(OPEN).await;
    h.succeed(1).await;
    assert_eq!(h.state(), CircuitState::Closed);
    let snapshot = h.svc.handle().snapshot();
    assert_eq!(
        (snapshot.calls, snapshot.consecutive_failures),
        (0, 0),
        "closing clears the window"
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_at_most_n_probes_and_needs_n_successes() {
    let layer =
        CircuitBreakerLayer::new(config().consecutive_failures(1).half_open_probes(2)).unwrap();
    let (inner, mut handle) = mock::pair::<&'static str, &'static str>();
    let mut svc = layer.layer(inner);
    let call = svc.ready().await.unwrap().call("x");
    handle.next_request().await.unwrap().1.send_error("fail");
    call.await.unwrap_err();
    tokio::time::advance(OPEN).await;

    let mut probes = Vec::new();
    for _ in 0..2 {
        let mut clone = svc.clone();
        probes.push(clone.ready().await.unwrap().call("probe"));
    }
    assert_eq!(layer.handle().state(), CircuitState::HalfOpen);
    // A third call while two probes are in flight is rejected.
    let err = svc.ready().await.unwrap().call("third").await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<CircuitOpen>().unwrap().retry_after(),
        None
    );

    let (_, first) = handle.next_request().await.unwrap();
    let (_, second) = handle.next_request().await.unwrap();
    first.send_response("ok");
    let mut probes = probes.into_iter();
    probes.next().unwrap().await.unwrap();
    assert_eq!(
        layer.handle().state(),
        CircuitState::HalfOpen,
        "1 of 2 successes"
    );
    second.send_response("ok");
    probes.next().unwrap().await.unwrap();
    assert_eq!(layer.handle().state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn dropped_probe_gives_back_its_permit() {
    let (layer, mut svc, mut handle) = tripped_and_waited(config()).await;

    let probe = svc.ready().await.unwrap().call("probe");
    let _request = handle.next_request().await.unwrap();
    // The only probe slot is taken...
    let mut other = svc.clone();
    let rejected = other
        .ready()
        .await
        .unwrap()
        .call("other")
        .await
        .unwrap_err();
    assert!(rejected.is::<CircuitOpen>());
    // ...until the probe's future is dropped (a cancelled call).
    drop(probe);
    let next = other.ready().await.unwrap().call("next probe");
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response("ok");
    next.await.unwrap();
    assert_eq!(layer.handle().state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_service_dropped_after_poll_ready_gives_back_its_probe_slot() {
    let (layer, mut svc, mut handle) = tripped_and_waited(config()).await;

    let mut reserving = svc.clone();
    reserving.ready().await.unwrap(); // takes the probe slot
    let err = svc.ready().await.unwrap().call("x").await.unwrap_err();
    assert!(err.is::<CircuitOpen>());
    drop(reserving);
    let probe = svc.ready().await.unwrap().call("probe");
    handle.next_request().await.unwrap().1.send_response("ok");
    probe.await.unwrap();
    assert_eq!(layer.handle().state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn ready_while_open_even_if_the_inner_service_is_not() {
    let (mut svc, mut handle) = mock::spawn_layer::<&str, &str, _>(
        CircuitBreakerLayer::new(config().consecutive_failures(1)).unwrap(),
    );
    assert_ready_ok!(svc.poll_ready());
    let mut call = tokio_test::task::spawn(svc.call("x"));
    handle.next_request().await.unwrap().1.send_error("fail");
    assert_ready_err!(call.poll());

    handle.allow(0);
    // Open: the inner service is not polled, the breaker is ready.
    assert_ready_ok!(svc.poll_ready());
    let mut call = tokio_test::task::spawn(svc.call("x"));
    assert!(assert_ready_err!(call.poll()).is::<CircuitOpen>());
    tokio::time::advance(OPEN).await;
    // Half-open: the probe waits for the inner service.
    assert_pending!(svc.poll_ready());
}

#[tokio::test(start_paused = true)]
async fn fallback_answers_while_open_and_the_inner_service_is_not_called() {
    let fallback = service_fn(|req: &'static str| async move {
        Ok::<_, BoxError>(if req == "x" { "fallback" } else { "?" })
    });
    let layer = CircuitBreakerLayer::new(config().consecutive_failures(1))
        .unwrap()
        .fallback(fallback);
    let (inner, mut handle) = mock::pair::<&'static str, &'static str>();
    let mut svc = layer.layer(inner);
    let call = svc.ready().await.unwrap().call("x");
    handle.next_request().await.unwrap().1.send_error("fail");
    call.await.unwrap_err();

    for _ in 0..3 {
        assert_eq!(
            svc.ready().await.unwrap().call("x").await.unwrap(),
            "fallback"
        );
    }
    assert!(matches!(handle.poll_request(), Poll::Pending));
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_breaker() {
    let (inner, mut handle) = mock::pair::<&'static str, &'static str>();
    let svc = CircuitBreakerLayer::new(config().consecutive_failures(2))
        .unwrap()
        .layer(inner);
    let mut a = svc.clone();
    let mut b = svc.clone();
    for s in [&mut a, &mut b] {
        let call = s.ready().await.unwrap().call("x");
        handle.next_request().await.unwrap().1.send_error("fail");
        call.await.unwrap_err();
    }
    assert_eq!(svc.handle().state(), CircuitState::Open);
    let mut c = svc.clone();
    assert!(
        c.ready()
            .await
            .unwrap()
            .call("x")
            .await
            .unwrap_err()
            .is::<CircuitOpen>()
    );
}

#[tokio::test(start_paused = true)]
async fn exponential_open_periods_grow_per_failed_probe_and_restart_after_closing() {
    let base = Duration::from_secs(1);
    let mut h = Harness::new(
        config()
            .consecutive_failures(1)
            .open_duration(OpenDuration::exponential(base, Duration::from_secs(5)).jitter(0.0)),
    );
    h.fail(1).await;
    for expected in [1, 2, 4, 5, 5] {
        assert_eq!(
            h.rejected().await.retry_after(),
            Some(Duration::from_secs(expected))
        );
        tokio::time::advance(Duration::from_secs(expected)).await;
        h.fail(1).await; // the probe fails
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    h.succeed(1).await;
    h.fail(1).await;
    assert_eq!(h.rejected().await.retry_after(), Some(base));
}

#[tokio::test(start_paused = true)]
async fn jitter_only_shortens_the_open_period() {
    let mut h = Harness::new(config().consecutive_failures(1).open_duration(
        OpenDuration::exponential(Duration::from_secs(10), Duration::from_secs(10)).jitter(0.5),
    ));
    h.fail(1).await;
    let retry_after = h.rejected().await.retry_after().unwrap();
    assert!(
        retry_after <= Duration::from_secs(10) && retry_after > Duration::from_secs(5),
        "{retry_after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn ignored_outcomes_are_not_counted_and_do_not_break_a_streak() {
    let layer = CircuitBreakerLayer::new(config().consecutive_failures(2).minimum_calls(10))
        .unwrap()
        .classify(|result: Result<&&'static str, &BoxError>| match result {
            Err(e) if e.to_string() == "not found" => Outcome::Ignored,
            Err(_) => Outcome::Failure,
            Ok(_) => Outcome::Success,
        });
    let (inner, mut handle) = mock::pair::<&'static str, &'static str>();
    let mut svc = layer.layer(inner);
    for error in ["boom", "not found", "not found", "boom"] {
        let call = svc.ready().await.unwrap().call("x");
        handle.next_request().await.unwrap().1.send_error(error);
        call.await.unwrap_err();
    }
    let snapshot = svc.handle().snapshot();
    assert_eq!((snapshot.calls, snapshot.failures), (2, 2));
    assert_eq!(
        snapshot.state,
        CircuitState::Open,
        "two failures in a row, ignoring the rest"
    );
}

#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn http_classifier_counts_5xx_and_chosen_statuses() {
    use http::{Response, StatusCode};
    use tower_bulwark::classify::HttpClassifier;

    let layer = CircuitBreakerLayer::new(config().consecutive_failures(2))
        .unwrap()
        .classify(HttpClassifier::new().failure_status(StatusCode::TOO_MANY_REQUESTS));
    let mut svc = layer.layer(service_fn(|status: u16| async move {
        Ok::<_, BoxError>(Response::builder().status(status).body(()).unwrap())
    }));
    for status in [503, 404, 429] {
        let response = svc.ready().await.unwrap().call(status).await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            status,
            "failing responses are still returned"
        );
    }
    assert_eq!(
        layer.handle().state(),
        CircuitState::Closed,
        "404 broke the streak"
    );
    svc.ready().await.unwrap().call(500).await.unwrap();
    assert_eq!(layer.handle().state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn handle_forces_disables_and_resets() {
    let mut h = Harness::new(config().consecutive_failures(1));
    let handle = h.svc.handle();

    handle.force_open();
    assert_eq!(h.rejected().await.retry_after(), None);
    tokio::time::advance(OPEN * 10).await;
    assert_eq!(h.state(), CircuitState::ForcedOpen, "no automatic way out");

    handle.force_closed();
    h.fail(3).await;
    assert_eq!(h.state(), CircuitState::ForcedClosed, "never trips");
    assert_eq!(handle.snapshot().failures, 3, "but keeps counting");

    handle.disable();
    h.fail(3).await;
    assert_eq!(h.state(), CircuitState::Disabled);

    handle.reset();
    assert_eq!(handle.snapshot().calls, 0);
    h.fail(1).await;
    assert_eq!(h.state(), CircuitState::Open);
    handle.reset();
    h.succeed(1).await;
    assert_eq!(h.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn events_report_transitions_with_reasons_and_rejections() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let mut h = Harness::new(
        config()
            .consecutive_failures(1)
            .events(&support::record_circuit(seen)),
    );
    h.fail(1).await;
    h.rejected().await;
    tokio::time::advance(OPEN).await;
    h.succeed(1).await;
    let service: Arc<str> = Arc::from("test");
    let transition = |from, to, reason| CircuitEvent::StateTransition {
        service: service.clone(),
        key: None,
        from,
        to,
        reason,
    };
    assert_eq!(
        *events.lock().unwrap(),
        vec![
            transition(
                CircuitState::Closed,
                CircuitState::Open,
                TransitionReason::ConsecutiveFailures
            ),
            CircuitEvent::CallRejected {
                service: service.clone(),
                key: None,
                retry_after: Some(OPEN)
            },
            transition(
                CircuitState::Open,
                CircuitState::HalfOpen,
                TransitionReason::OpenElapsed
            ),
            transition(
                CircuitState::HalfOpen,
                CircuitState::Closed,
                TransitionReason::ProbesSucceeded
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_event_callback_may_steer_the_breaker() {
    // The callback runs with no lock held: calling the handle from it must
    // not deadlock.
    let slot: Arc<Mutex<Option<tower_bulwark::circuit_breaker::CircuitBreakerHandle>>> =
        Arc::default();
    let from_callback = slot.clone();
    let hub = Events::new();
    hub.subscribe(move |e| {
        if let Event::Circuit(CircuitEvent::StateTransition {
            to: CircuitState::Open,
            ..
        }) = e
        {
            if let Some(handle) = from_callback.lock().unwrap().as_ref() {
                handle.force_open();
            }
        }
    });
    let layer = CircuitBreakerLayer::new(config().consecutive_failures(1).events(&hub)).unwrap();
    *slot.lock().unwrap() = Some(layer.handle());
    let mut svc = layer.layer(service_fn(|_: ()| async {
        Err::<(), BoxError>("down".into())
    }));
    svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(layer.handle().state(), CircuitState::ForcedOpen);
}

#[test]
fn every_bad_value_is_a_typed_error_naming_its_field() {
    let d = Duration::from_secs(1);
    let cases: Vec<(CircuitBreakerConfig, &str)> = vec![
        (
            config().failure_rate_threshold(0.0),
            "failure_rate_threshold",
        ),
        (
            config().failure_rate_threshold(1.01),
            "failure_rate_threshold",
        ),
        (
            config().failure_rate_threshold(f64::NAN),
            "failure_rate_threshold",
        ),
        (
            config().slow_call_rate_threshold(-0.5),
            "slow_call_rate_threshold",
        ),
        (
            config().sliding_window(SlidingWindow::count(0)),
            "sliding_window.size",
        ),
        (
            config().sliding_window(SlidingWindow::count(2_000_000)),
            "sliding_window.size",
        ),
        (
            config().sliding_window(SlidingWindow::time(Duration::ZERO)),
            "sliding_window.size",
        ),
        (
            config().sliding_window(SlidingWindow::time_buckets(d, 0)),
            "sliding_window.buckets",
        ),
        (
            config().sliding_window(SlidingWindow::time_buckets(d, 5_000)),
            "sliding_window.buckets",
        ),
        (config().minimum_calls(0), "minimum_calls"),
        (
            config()
                .sliding_window(SlidingWindow::count(10))
                .minimum_calls(11),
            "minimum_calls",
        ),
        (
            config().slow_call_duration(Duration::ZERO),
            "slow_call_duration",
        ),
        (config().consecutive_failures(0), "consecutive_failures"),
        (
            config().open_duration(OpenDuration::fixed(Duration::ZERO)),
            "open_duration",
        ),
        (
            config().open_duration(OpenDuration::exponential(Duration::ZERO, d)),
            "open_duration.base",
        ),
        (
            config().open_duration(OpenDuration::exponential(d * 2, d)),
            "open_duration.max",
        ),
        (
            config().open_duration(OpenDuration::exponential(d, d).multiplier(0.5)),
            "open_duration.multiplier",
        ),
        (
            config().open_duration(OpenDuration::exponential(d, d).multiplier(f64::NAN)),
            "open_duration.multiplier",
        ),
        (
            config().open_duration(OpenDuration::exponential(d, d).jitter(1.5)),
            "open_duration.jitter",
        ),
        (config().half_open_probes(0), "half_open_probes"),
        (config().half_open_probes(70_000), "half_open_probes"),
    ];
    for (config, field) in cases {
        let err = CircuitBreakerLayer::new(config).unwrap_err();
        assert_eq!(
            (err.layer(), err.field()),
            ("circuit breaker", field),
            "{err}"
        );
        assert!(err.to_string().contains(field), "{err}");
    }
    let err = CircuitBreakerLayer::new(config().failure_rate_threshold(1.5)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid circuit breaker config: failure_rate_threshold must be in (0, 1], got 1.5"
    );
}

#[test]
fn extreme_but_valid_values_build_and_do_not_panic() {
    let layer = CircuitBreakerLayer::new(
        config()
            .sliding_window(SlidingWindow::count(1))
            .minimum_calls(1)
            .open_duration(
                OpenDuration::exponential(Duration::from_nanos(1), Duration::MAX)
                    .multiplier(1e300)
                    .jitter(1.0),
            ),
    );
    assert!(layer.is_ok());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let layer = layer.unwrap();
        let mut svc = layer.layer(service_fn(|_: ()| async {
            Err::<(), BoxError>("down".into())
        }));
        for _ in 0..5 {
            let _ = svc.ready().await.unwrap().call(()).await;
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_ne!(layer.handle().state(), CircuitState::Closed);
    });
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn metrics_follow_the_scheme() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || {
        CircuitBreakerLayer::new(config().service("orders").consecutive_failures(1)).unwrap()
    });
    let mut svc = layer.layer(service_fn(|fail: bool| async move {
        if fail {
            Err::<(), BoxError>("down".into())
        } else {
            Ok(())
        }
    }));
    svc.ready().await.unwrap().call(false).await.unwrap();
    svc.ready().await.unwrap().call(true).await.unwrap_err();
    svc.ready().await.unwrap().call(false).await.unwrap_err(); // rejected
    // A transition made by hand registers its series when it happens, with
    // the recorder installed then.
    metrics::with_local_recorder(&recorder, || layer.handle().reset());

    type Series = (String, Vec<(String, String)>, DebugValue);
    let mut seen: Vec<Series> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            (key.name().to_owned(), labels, value)
        })
        .collect();
    // The series of the four transitions a breaker makes by itself exist
    // from the start; one made by hand (the reset) appears when it
    // happens; none for transitions that cannot happen.
    let mut transitions: Vec<(String, String)> = seen
        .iter()
        .filter(|(name, ..)| name == "bulwark_circuit_transitions_total")
        .map(|(_, labels, _)| {
            let get = |k: &str| labels.iter().find(|(l, _)| l == k).unwrap().1.clone();
            (get("from"), get("to"))
        })
        .collect();
    transitions.sort();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect()
    };
    assert_eq!(
        transitions,
        pairs(&[
            ("closed", "open"),
            ("half_open", "closed"),
            ("half_open", "open"),
            ("open", "closed"),
            ("open", "half_open"),
        ])
    );
    seen.retain(|(name, _, value)| {
        name != "bulwark_circuit_transitions_total" || *value != DebugValue::Counter(0)
    });
    seen.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let labels = |extra: &[(&str, &str)]| {
        let mut l: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.push(("service".into(), "orders".into()));
        l.sort();
        l
    };
    let expect = vec![
        (
            "bulwark_circuit_calls_total".to_owned(),
            labels(&[("outcome", "failure")]),
            DebugValue::Counter(1),
        ),
        (
            "bulwark_circuit_calls_total".to_owned(),
            labels(&[("outcome", "ignored")]),
            DebugValue::Counter(0),
        ),
        (
            "bulwark_circuit_calls_total".to_owned(),
            labels(&[("outcome", "success")]),
            DebugValue::Counter(1),
        ),
        (
            "bulwark_circuit_rejected_total".to_owned(),
            labels(&[]),
            DebugValue::Counter(1),
        ),
        (
            "bulwark_circuit_slow_calls_total".to_owned(),
            labels(&[]),
            DebugValue::Counter(0),
        ),
        (
            "bulwark_circuit_state".to_owned(),
            labels(&[]),
            DebugValue::Gauge(0.0.into()),
        ),
        (
            "bulwark_circuit_transitions_total".to_owned(),
            labels(&[("from", "closed"), ("to", "open")]),
            DebugValue::Counter(1),
        ),
        (
            "bulwark_circuit_transitions_total".to_owned(),
            labels(&[("from", "open"), ("to", "closed")]),
            DebugValue::Counter(1),
        ),
    ];
    assert_eq!(seen, expect);
}
