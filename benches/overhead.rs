//! Per-call overhead of each layer over a bare `service_fn`, on the success
//! path and on the fail-fast path of an open breaker.
//!
//! Calls are driven by hand with a no-op waker: every future here is ready
//! on its first poll, so what is measured is the layers, not an executor.
//! Run with `cargo bench --bench overhead`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

mod support;

use std::convert::Infallible;
use std::task::{Context, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use support::{bench, call};
use tower::{BoxError, Layer, Service, ServiceBuilder, service_fn};
use tower_bulwark::balance::{BalanceConfig, Strategy};
use tower_bulwark::cache::{CacheConfig, CacheLayer};
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
use tower_bulwark::hedge::{HedgeConfig, HedgeLayer};
use tower_bulwark::metrics::MetricsLayer;
use tower_bulwark::retry::{RetryConfig, RetryLayer};
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};
use tower_bulwark::timeout::TimeoutLayer;

fn echo() -> impl Service<u64, Response = u64, Error = BoxError> + Clone {
    service_fn(|x: u64| async move { Ok::<_, BoxError>(x) })
}

fn overhead(c: &mut Criterion) {
    // Timers need a runtime context; nothing is spawned on it.
    let rt = support::runtime();
    let _guard = rt.enter();
    // A no-op recorder, as the Metrics layer's target is stated with one.
    let _ = metrics::set_global_recorder(metrics::NoopRecorder);
    let breaker = || CircuitBreakerLayer::new(CircuitBreakerConfig::default()).unwrap();
    let timeout = || TimeoutLayer::new(Duration::from_secs(1)).unwrap();

    bench(c, "bare service_fn", echo());
    // Reference: the `Arc` clone and drop that a response future holding
    // shared state costs, as in tower's own ConcurrencyLimit.
    let shared = std::sync::Arc::new(0u64);
    bench(
        c,
        "reference: service_fn + Arc clone per call",
        service_fn(move |x: u64| {
            let shared = shared.clone();
            async move { Ok::<_, BoxError>(x + *shared) }
        }),
    );
    // Floors that every figure below stands on, measured on this machine:
    // one read of the monotonic clock (a timed layer needs at least one,
    // a measured duration two), and boxing a small error into a `BoxError`
    // (what any layer failing with a `BoxError` that carries data costs).
    c.bench_function("reference: tokio::time::Instant::now", |b| {
        b.iter(|| std::hint::black_box(tokio::time::Instant::now()))
    });
    c.bench_function(
        "reference: box a CircuitOpen-sized error as BoxError",
        |b| {
            b.iter(|| {
                let e: BoxError = Box::new(SmallError(std::hint::black_box(Some(
                    Duration::from_secs(1),
                ))));
                std::hint::black_box(e)
            })
        },
    );
    bench(c, "timeout", timeout().layer(echo()));
    // Reference: tower's own timeout, the same timer per call.
    bench(
        c,
        "reference: tower::timeout::Timeout",
        tower::timeout::TimeoutLayer::new(Duration::from_secs(1)).layer(echo()),
    );
    bench(c, "circuit breaker closed", breaker().layer(echo()));
    #[cfg(feature = "bulkhead")]
    {
        use tower_bulwark::bulkhead::{BulkheadConfig, BulkheadLayer};
        let bulkhead = BulkheadLayer::new(BulkheadConfig::default()).unwrap();
        bench(c, "bulkhead with a free place", bulkhead.layer(echo()));
        // Reference: tower's own cap on concurrent calls.
        bench(
            c,
            "reference: tower::limit::ConcurrencyLimit",
            tower::limit::ConcurrencyLimitLayer::new(64).layer(echo()),
        );
    }
    #[cfg(feature = "adaptive")]
    {
        use tower_bulwark::adaptive::{AdaptiveConcurrencyLayer, AdaptiveConfig};
        let adaptive = AdaptiveConcurrencyLayer::new(AdaptiveConfig::default()).unwrap();
        bench(
            c,
            "adaptive concurrency (gradient2)",
            adaptive.layer(echo()),
        );
    }
    #[cfg(feature = "rate-limit")]
    {
        use tower_bulwark::rate_limit::{RateLimitConfig, RateLimitLayer};
        // A rate no call reaches: the cost of letting a call through.
        let config = RateLimitConfig::default().rate(1_000_000_000, Duration::from_secs(1));
        let global = RateLimitLayer::new(config.clone()).unwrap();
        bench(
            c,
            "rate limit (global, under the rate)",
            global.layer(echo()),
        );
        let keyed = RateLimitLayer::keyed(config, |req: &u64| *req % 64).unwrap();
        bench(
            c,
            "rate limit (64 keys, under the rate)",
            keyed.layer(echo()),
        );
    }

    let open = breaker();
    open.handle().force_open();
    bench(c, "circuit breaker open (fail fast)", open.layer(echo()));

    let open = breaker().fallback(service_fn(|x: u64| async move { Ok::<_, Infallible>(x) }));
    open.handle().force_open();
    bench(c, "circuit breaker open (fallback)", open.layer(echo()));

    // An open breaker that reads the clock on every rejection (a breaker
    // tripped by failures, not forced).
    let tripped = CircuitBreakerLayer::new(
        CircuitBreakerConfig::default()
            .consecutive_failures(1)
            .open_duration(tower_bulwark::circuit_breaker::OpenDuration::fixed(
                Duration::from_secs(3600),
            )),
    )
    .unwrap();
    let mut failing = tripped.layer(service_fn(|_: u64| async {
        Err::<u64, BoxError>("down".into())
    }));
    let mut cx = Context::from_waker(Waker::noop());
    let _ = call(&mut failing, &mut cx, 0);
    bench(c, "circuit breaker open (timed)", tripped.layer(echo()));

    // A hit: every call asks for the same key, stored by the first.
    let same_key = |_: &u64| Some(0u64);
    bench(
        c,
        "cache hit",
        CacheLayer::new(CacheConfig::default(), same_key)
            .unwrap()
            .layer(echo()),
    );
    // A miss: every call a new key (stored, evicting once full).
    let own_key = |req: &u64| Some(*req);
    bench(
        c,
        "cache miss (stored)",
        CacheLayer::new(CacheConfig::default(), own_key)
            .unwrap()
            .layer(echo()),
    );

    bench(
        c,
        "metrics (no-op recorder)",
        MetricsLayer::new("bench").layer(echo()),
    );

    bench(
        c,
        "hedge (no hedge sent)",
        HedgeLayer::new(HedgeConfig::default())
            .unwrap()
            .layer(echo()),
    );

    bench(
        c,
        "retry (no retry needed)",
        RetryLayer::new(RetryConfig::default())
            .unwrap()
            .layer(echo()),
    );

    bench(
        c,
        "circuit breaker + timeout",
        ServiceBuilder::new()
            .layer(breaker())
            .layer(timeout())
            .service(echo()),
    );
}

/// An error the size of `CircuitOpen` (an `Option<Duration>`), for the
/// boxing reference.
#[derive(Debug)]
struct SmallError(#[allow(dead_code)] Option<Duration>);

impl std::fmt::Display for SmallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("small error")
    }
}

impl std::error::Error for SmallError {}

/// The full stack of the recommended order on the success path, as one
/// `ResilienceLayer`: Metrics, CircuitBreaker, Timeout and LoadBalance
/// over four endpoints (retries, hedges and the cache are off by default).
fn full_stack(c: &mut Criterion) {
    let rt = support::runtime();
    let _guard = rt.enter();
    let _ = metrics::set_global_recorder(metrics::NoopRecorder);
    for strategy in [Strategy::peak_ewma(), Strategy::P2cLeastPending] {
        let layer = ResilienceLayer::new(
            ResilienceConfig::default().balance(BalanceConfig::default().strategy(strategy)),
        )
        .unwrap();
        let stack = layer.balance((0..4).map(|i| (i, echo()))).unwrap();
        bench(c, &format!("full stack, {} over 4", strategy), stack);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = overhead, full_stack
}
criterion_main!(benches);
