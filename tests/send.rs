//! Every layer's service and future can be held across an `.await` in a
//! `Send` future (what axum asks of a handler), also when layers that box
//! errors are stacked. A failure here is a compile error: the compiler
//! cannot prove `Send` for a future whose type needs a `Service` impl
//! re-proven with `BoxError` (rust-lang/rust#110338), so no future or
//! service type may read its inner service's associated types in its
//! fields.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
#![cfg(feature = "stack")]

use std::time::Duration;

use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::cache::{CacheConfig, CacheLayer};
use tower_bulwark::circuit_breaker::CircuitBreakerLayer;
use tower_bulwark::hedge::{HedgeConfig, HedgeLayer};
use tower_bulwark::metrics::MetricsLayer;
use tower_bulwark::retry::{RetryConfig, RetryLayer};
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};
use tower_bulwark::timeout::TimeoutLayer;

fn assert_send<T: Send>(_: &T) {}

/// A future that holds `svc` and its call across awaits, as a handler does.
macro_rules! assert_handler_is_send {
    ($svc:expr) => {{
        let svc = $svc;
        let handler = async move {
            let mut svc = svc;
            let ready = svc.ready().await.unwrap();
            ready.call(1).await
        };
        assert_send(&handler);
    }};
}

fn backend()
-> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send + Sync + 'static
{
    service_fn(|x: u32| async move { Ok::<_, BoxError>(x) })
}

fn breaker() -> CircuitBreakerLayer {
    CircuitBreakerLayer::new(Default::default()).unwrap()
}

fn timeout() -> TimeoutLayer {
    TimeoutLayer::new(Duration::from_secs(1)).unwrap()
}

#[test]
fn each_layer_over_a_layer_that_boxes_errors() {
    assert_handler_is_send!(breaker().layer(breaker().layer(backend())));
    assert_handler_is_send!(timeout().layer(timeout().layer(backend())));
    assert_handler_is_send!(breaker().layer(timeout().layer(backend())));
    assert_handler_is_send!(MetricsLayer::new("m").layer(breaker().layer(backend())));
    assert_handler_is_send!(
        RetryLayer::new(RetryConfig::default())
            .unwrap()
            .layer(breaker().layer(backend()))
    );
    assert_handler_is_send!(
        HedgeLayer::new(HedgeConfig::default())
            .unwrap()
            .layer(timeout().layer(backend()))
    );
    assert_handler_is_send!(
        CacheLayer::new(CacheConfig::default(), |x: &u32| Some(*x))
            .unwrap()
            .layer(breaker().layer(backend()))
    );
}

#[test]
fn the_whole_stack() {
    let everything = ResilienceLayer::builder(
        ResilienceConfig::default()
            .cache(CacheConfig::default())
            .retry(RetryConfig::default())
            .hedge(HedgeConfig::default()),
    )
    .cache_key(|x: &u32| Some(*x))
    .clone_requests()
    .fallback(backend())
    .build()
    .unwrap();
    assert_handler_is_send!(everything.layer(backend()));
    assert_handler_is_send!(
        everything
            .balance([("a", backend()), ("b", backend())])
            .unwrap()
    );
    let nothing = ResilienceLayer::new(
        ResilienceConfig::default()
            .metrics(false)
            .without_circuit_breaker()
            .without_timeout(),
    )
    .unwrap();
    assert_handler_is_send!(nothing.layer(backend()));
}
