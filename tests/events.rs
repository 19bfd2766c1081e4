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
