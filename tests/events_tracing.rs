//! With the `tracing` feature, the layers' events as `tracing` events.
//!
//! A test binary of its own: `tracing` caches per callsite whether any
//! subscriber wants its events, and a test on another thread of the same
//! process that reaches a callsite (as the hub tests in `events.rs` reach
//! the same events) while this test installs its thread's subscriber can
//! leave that callsite cached as unwanted: the event is then never written
//! (seen under `cargo test`, which runs a binary's tests on threads of one
//! process).
#![cfg(all(
    feature = "tracing",
    feature = "rate-limit",
    feature = "circuit-breaker",
    feature = "balance",
    feature = "retry"
))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};

use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::balance::{BalanceConfig, LoadBalance};
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
use tower_bulwark::retry::{RetryConfig, RetryLayer};

/// With the `tracing` feature, every layer's events are `tracing` events
/// with the layer's `service`, with no hub set.
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
