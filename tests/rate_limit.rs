//! `RateLimiter` on tokio's paused clock: the rate and its burst, the
//! bounded wait for a turn, a limit per key with a bound on the keys, and
//! `Overloaded`'s hint.
#![cfg(feature = "rate-limit")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::admission::AdmissionEvent;
use tower_bulwark::error::{ErrorKind, Overloaded};
use tower_bulwark::event::{Event, Events};
use tower_bulwark::rate_limit::{RateLimitConfig, RateLimitLayer};

fn echo() -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send {
    service_fn(|x: u32| async move { Ok::<_, BoxError>(x) })
}

fn overloaded(result: Result<u32, BoxError>) -> Overloaded {
    *result
        .unwrap_err()
        .downcast_ref::<Overloaded>()
        .expect("an Overloaded")
}

#[tokio::test(start_paused = true)]
async fn a_burst_goes_through_then_calls_are_spaced_at_the_rate() {
    let rejections = Arc::new(AtomicUsize::new(0));
    let seen = rejections.clone();
    let hub = Events::new();
    hub.subscribe(move |event| {
        if let Event::Admission(AdmissionEvent::Rejected { layer, .. }) = event {
            assert_eq!(*layer, "rate_limit");
            seen.fetch_add(1, Relaxed);
        }
    });
    let layer = RateLimitLayer::new(
        RateLimitConfig::default()
            .service("users")
            .rate(10, Duration::from_secs(1))
            .burst(3)
            .events(&hub),
    )
    .unwrap();
    let mut service = layer.layer(echo());
    for i in 0..3 {
        assert_eq!(service.ready().await.unwrap().call(i).await.unwrap(), i);
    }
    let error = overloaded(service.ready().await.unwrap().call(4).await);
    assert_eq!(error.layer(), "rate_limit");
    assert_eq!(error.retry_after(), Some(Duration::from_millis(100)));
    assert_eq!(
        ErrorKind::of(&error),
        Some(ErrorKind::Overloaded {
            retry_after: Some(Duration::from_millis(100))
        })
    );
    assert_eq!(rejections.load(Relaxed), 1);

    // Then one every 100 ms, from 100 ms: 99 more before the 10 s mark,
    // not one more.
    let mut answered = 0;
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        match service.ready().await.unwrap().call(1).await {
            Ok(_) => answered += 1,
            Err(e) => {
                let wait = e
                    .downcast_ref::<Overloaded>()
                    .unwrap()
                    .retry_after()
                    .unwrap();
                tokio::time::sleep(wait).await;
            }
        }
    }
    assert_eq!(answered, 99);
}

#[tokio::test(start_paused = true)]
async fn a_call_waits_for_its_turn_if_it_comes_within_the_longest_wait() {
    let layer = RateLimitLayer::new(
        RateLimitConfig::default()
            .rate(10, Duration::from_secs(1))
            .burst(1)
            .max_wait(Duration::from_millis(250)),
    )
    .unwrap();
    let service = layer.layer(echo());
    let start = Instant::now();
    // Turns at 0, 100, 200 ms: all within the wait.
    let calls = (0..3).map(|i| tokio::spawn(service.clone().oneshot(i)));
    let answers: Vec<u32> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(answers, [0, 1, 2]);
    assert_eq!(start.elapsed(), Duration::from_millis(200));

    // Four calls now (200 ms): turns at 300 and 400 ms are within the
    // 250 ms wait, the next two (500, 600 ms) are not.
    let calls: Vec<_> = (0..4)
        .map(|i| tokio::spawn(service.clone().oneshot(i)))
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 2);
    assert_eq!(start.elapsed(), Duration::from_millis(400));
}

#[tokio::test(start_paused = true)]
async fn each_key_has_its_own_limit_and_the_keys_are_bounded() {
    let layer = RateLimitLayer::keyed(
        RateLimitConfig::default()
            .rate(1, Duration::from_secs(60))
            .max_keys(100),
        |req: &u32| *req % 1000,
    )
    .unwrap();
    let mut service = layer.layer(echo());
    // 1000 keys, one call each: all go through; a second call of a key
    // still held is turned away.
    for key in 0..1000 {
        assert!(service.ready().await.unwrap().call(key).await.is_ok());
    }
    assert!(layer.keys() <= 100, "{} keys held", layer.keys());
    assert!(service.ready().await.unwrap().call(999).await.is_err());
    assert!(
        service.ready().await.unwrap().call(1999).await.is_err(),
        "the same key"
    );
}

#[test]
fn invalid_settings_are_named() {
    let error = RateLimitLayer::new(RateLimitConfig::default().rate(0, Duration::from_secs(1)))
        .unwrap_err();
    assert_eq!((error.layer(), error.field()), ("rate_limit", "calls"));
    let error =
        RateLimitLayer::new(RateLimitConfig::default().rate(10, Duration::ZERO)).unwrap_err();
    assert_eq!(error.field(), "period");
    let error =
        RateLimitLayer::new(RateLimitConfig::default().rate(u32::MAX, Duration::from_nanos(10)))
            .unwrap_err();
    assert_eq!(error.field(), "calls");
}
