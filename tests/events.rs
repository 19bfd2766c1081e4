//! One hub receives the events of every stateful layer.
#![cfg(all(feature = "circuit-breaker", feature = "balance", feature = "retry"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};

use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::balance::{BalanceConfig, BalanceEvent, LoadBalance};
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer, CircuitEvent};
use tower_bulwark::event::{Event, Events};
use tower_bulwark::retry::{RetryConfig, RetryEvent, RetryLayer};

#[tokio::test(start_paused = true)]
async fn breakers_balancers_and_retries_report_to_one_hub() {
    let hub = Events::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    hub.subscribe(move |event| log.lock().unwrap().push(event.clone()));

    let breaker =
        CircuitBreakerLayer::new(CircuitBreakerConfig::default().service("b").events(&hub))
            .unwrap();
    breaker.handle().force_open();

    let down = || service_fn(|_: u32| async { Err::<u32, BoxError>("down".into()) });
    let _lb = LoadBalance::new(
        BalanceConfig::default().service("lb").events(&hub),
        [("e1", down())],
    )
    .unwrap();

    let mut retry = RetryLayer::new(
        RetryConfig::default()
            .service("r")
            .budget(0.0, 0, 1)
            .events(&hub),
    )
    .unwrap()
    .layer(down());
    for _ in 0..2 {
        retry.ready().await.unwrap().call(1).await.unwrap_err();
    }

    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::Circuit(CircuitEvent::StateTransition { .. }))),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::Balance(BalanceEvent::EndpointAdded { .. }))),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::Retry(RetryEvent::BudgetExhausted { .. }))),
        "{seen:?}"
    );
}

/// A hub's subscriber hears a breaker's events while a subscriber is
/// added from inside a callback, and each hears each event once.
#[tokio::test]
async fn a_subscriber_may_subscribe_more() {
    let hub = Events::new();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let (inner_hub, log) = (hub.clone(), heard.clone());
    hub.subscribe(move |_| {
        let mut heard = log.lock().unwrap();
        heard.push("first");
        if heard.len() == 1 {
            let log = log.clone();
            inner_hub.subscribe(move |_| log.lock().unwrap().push("second"));
        }
    });
    let breaker =
        CircuitBreakerLayer::new(CircuitBreakerConfig::default().service("b").events(&hub))
            .unwrap();
    breaker.handle().force_open();
    breaker.handle().force_closed();
    assert_eq!(*heard.lock().unwrap(), ["first", "first", "second"]);
}

/// With the `tracing` feature, every layer's events are `tracing` events
/// with the layer's `service`, with no hub set.
#[cfg(all(feature = "tracing", feature = "rate-limit"))]
#[tokio::test(start_paused = true)]
async fn every_layer_reports_to_tracing_with_its_service() {
    use std::io::Write;
    use std::time::Duration;

    use tower_bulwark::rate_limit::{RateLimitConfig, RateLimitLayer};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .without_time()
        .with_writer(lines.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let breaker = CircuitBreakerLayer::new(CircuitBreakerConfig::default().service("cb")).unwrap();
    breaker.handle().force_open();
    let down = || service_fn(|_: u32| async { Err::<u32, BoxError>("down".into()) });
    let _lb = LoadBalance::new(BalanceConfig::default().service("lb"), [("e1", down())]).unwrap();
    let mut retry = RetryLayer::new(RetryConfig::default().service("r").budget(0.0, 0, 1))
        .unwrap()
        .layer(down());
    for _ in 0..2 {
        retry.ready().await.unwrap().call(1).await.unwrap_err();
    }
    let mut limited = RateLimitLayer::new(
        RateLimitConfig::default()
            .service("rl")
            .rate(1, Duration::from_secs(60)),
    )
    .unwrap()
    .layer(service_fn(|x: u32| async move { Ok::<_, BoxError>(x) }));
    for _ in 0..2 {
        let _ = limited.ready().await.unwrap().call(1).await;
    }

    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    for expected in [
        "WARN tower_bulwark::circuit_breaker: circuit opened service=cb",
        "INFO tower_bulwark::balance: endpoint added service=lb endpoint=e1",
        "DEBUG tower_bulwark::retry: retry refused: budget exhausted service=r",
        "DEBUG tower_bulwark::admission: call rejected: overloaded service=rl layer=\"rate_limit\"",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
}
