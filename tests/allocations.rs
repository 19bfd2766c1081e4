//! Allocations per call on the success path, counted by a global allocator.
//!
//! One test in this binary on purpose: the counting allocator sees every
//! thread of the process, so nothing else may run beside it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
#![cfg(all(
    feature = "circuit-breaker",
    feature = "timeout",
    feature = "balance",
    feature = "retry",
    feature = "hedge",
    feature = "metrics",
    feature = "stack"
))]

use std::alloc::System;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{BoxError, Layer, Service, ServiceBuilder, service_fn};
use tower_bulwark::balance::{BalanceConfig, LoadBalance, Strategy};
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
use tower_bulwark::hedge::{HedgeConfig, HedgeLayer};
use tower_bulwark::metrics::MetricsLayer;
use tower_bulwark::retry::{RetryConfig, RetryLayer};
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};
use tower_bulwark::timeout::TimeoutLayer;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const CALLS: usize = 10_000;

/// One call driven by hand: `poll_ready`, `call`, one poll. Every service
/// here answers on the first poll, so the runtime never parks between
/// calls and only the layers' own allocations are counted (not those its
/// timer driver makes now and then while parked).
fn call_now<S: Service<u64>>(svc: &mut S, req: u64) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => return Err(e),
        Poll::Pending => panic!("always ready"),
    }
    match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(result) => result,
        Poll::Pending => panic!("answered on the first poll"),
    }
}

/// Allocations per call of `svc` after a warm-up, with its answers checked.
async fn allocations_per_call<S>(mut svc: S) -> f64
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    for i in 0..100 {
        assert_eq!(call_now(&mut svc, i).unwrap(), i);
    }
    fewest(|| {
        for i in 0..CALLS as u64 {
            assert_eq!(call_now(&mut svc, i).unwrap(), i);
        }
    })
}

/// Allocations per rejected call of `svc`, whose breaker is forced open.
async fn allocations_per_rejection<S>(mut svc: S) -> f64
where
    S: Service<u64>,
{
    for i in 0..100 {
        let _ = call_now(&mut svc, i);
    }
    fewest(|| {
        for i in 0..CALLS as u64 {
            let _ = call_now(&mut svc, i);
        }
    })
}

/// Allocations per call in `calls` (`CALLS` of them), the fewest of three
/// runs: the counter sees every thread of the process, and now and then a
/// few allocations from elsewhere land in a run (4 in one run in three,
/// with no layer involved: the test harness's threads, as far as we can
/// tell). An allocation of the layers shows in every run.
fn fewest(mut calls: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let region = Region::new(GLOBAL);
            calls();
            region.change().allocations
        })
        .min()
        .unwrap_or(0) as f64
        / CALLS as f64
}

fn echo() -> impl Service<u64, Response = u64, Error = BoxError, Future: Send> + Clone {
    service_fn(|x: u64| async move { Ok::<_, BoxError>(x) })
}

#[test]
fn success_path_allocates_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let breaker = || CircuitBreakerLayer::new(CircuitBreakerConfig::default()).unwrap();
        let timeout = || TimeoutLayer::new(Duration::from_secs(1)).unwrap();

        assert_eq!(allocations_per_call(echo()).await, 0.0, "bare service");
        assert_eq!(
            allocations_per_call(timeout().layer(echo())).await,
            0.0,
            "timeout"
        );
        assert_eq!(
            allocations_per_call(breaker().layer(echo())).await,
            0.0,
            "breaker closed"
        );
        #[cfg(feature = "bulkhead")]
        {
            use tower_bulwark::bulkhead::{BulkheadConfig, BulkheadLayer};
            let bulkhead = BulkheadLayer::new(BulkheadConfig::default()).unwrap();
            assert_eq!(
                allocations_per_call(bulkhead.layer(echo())).await,
                0.0,
                "bulkhead with a free place"
            );
        }
        #[cfg(feature = "adaptive")]
        {
            use tower_bulwark::adaptive::{AdaptiveConcurrencyLayer, AdaptiveConfig};
            let adaptive = AdaptiveConcurrencyLayer::new(AdaptiveConfig::default()).unwrap();
            assert_eq!(
                allocations_per_call(adaptive.layer(echo())).await,
                0.0,
                "adaptive concurrency with a free place"
            );
        }
        #[cfg(feature = "rate-limit")]
        {
            use tower_bulwark::rate_limit::{RateLimitConfig, RateLimitLayer};
            let config = RateLimitConfig::default().rate(1_000_000_000, Duration::from_secs(1));
            let global = RateLimitLayer::new(config).unwrap();
            assert_eq!(
                allocations_per_call(global.layer(echo())).await,
                0.0,
                "global rate limit under the rate"
            );
        }
        let stacked = ServiceBuilder::new()
            .layer(breaker())
            .layer(timeout())
            .service(echo());
        assert_eq!(
            allocations_per_call(stacked).await,
            0.0,
            "breaker over timeout"
        );

        // Retry when no retry is needed: the request copy of a `u64` and
        // the service clone allocate nothing.
        let retry = RetryLayer::new(RetryConfig::default()).unwrap();
        assert_eq!(
            allocations_per_call(retry.layer(echo())).await,
            0.0,
            "retry"
        );

        // Metrics: handles resolved at build, nothing formatted per call.
        let metrics = MetricsLayer::new("test");
        assert_eq!(
            allocations_per_call(metrics.layer(echo())).await,
            0.0,
            "metrics"
        );

        // Hedge when no hedge is sent: the warm-up gives it a percentile,
        // so every call arms its timer, and none fires.
        let hedge = HedgeLayer::new(HedgeConfig::default()).unwrap();
        assert_eq!(
            allocations_per_call(hedge.layer(echo())).await,
            0.0,
            "hedge"
        );

        // Every balancing strategy over four endpoints, with outlier
        // detection on (the default).
        for strategy in [
            Strategy::RoundRobin,
            Strategy::WeightedRoundRobin,
            Strategy::Random,
            Strategy::WeightedRandom,
            Strategy::P2cLeastPending,
            Strategy::peak_ewma(),
        ] {
            let lb = LoadBalance::new(
                BalanceConfig::default().strategy(strategy),
                (0..4).map(|i| (i, echo())),
            )
            .unwrap();
            assert_eq!(allocations_per_call(lb).await, 0.0, "{}", strategy);
        }

        // The full stack of the recommended order: Metrics, CircuitBreaker,
        // Timeout and LoadBalance over four endpoints, from one config; and
        // with retries, hedges and a fallback as well (none used): the
        // layers above the breaker clone it per call, and a clone shares
        // the boxed fallback rather than copying it.
        let stack = ResilienceLayer::new(ResilienceConfig::default()).unwrap();
        assert_eq!(
            allocations_per_call(stack.balance((0..4).map(|i| (i, echo()))).unwrap()).await,
            0.0,
            "full stack"
        );
        let stack = ResilienceLayer::builder(
            ResilienceConfig::default()
                .retry(RetryConfig::default())
                .hedge(HedgeConfig::default()),
        )
        .clone_requests()
        // (A fallback with state: a boxed copy of it would allocate.)
        .fallback({
            let offset = std::hint::black_box(0u64);
            service_fn(move |x: u64| async move { Ok::<_, Infallible>(x + offset) })
        })
        .build()
        .unwrap();
        assert_eq!(
            allocations_per_call(stack.balance((0..4).map(|i| (i, echo()))).unwrap()).await,
            0.0,
            "full stack with retries, hedges and a fallback"
        );

        // Open with a fallback: the fallback answers, nothing is boxed.
        let layer = breaker().fallback(service_fn(|x: u64| async move { Ok::<_, Infallible>(x) }));
        layer.handle().force_open();
        assert_eq!(
            allocations_per_call(layer.layer(echo())).await,
            0.0,
            "open, fallback"
        );

        // Open with a fallback, and every rejection an event to a hub with
        // a subscriber: delivering the event allocates nothing.
        let hub = tower_bulwark::event::Events::new();
        let rejections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = rejections.clone();
        hub.subscribe(move |_| {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        let layer = CircuitBreakerLayer::new(CircuitBreakerConfig::default().events(&hub))
            .unwrap()
            .fallback(service_fn(|x: u64| async move { Ok::<_, Infallible>(x) }));
        layer.handle().force_open();
        assert_eq!(
            allocations_per_call(layer.layer(echo())).await,
            0.0,
            "open, fallback, events to a hub"
        );
        assert!(rejections.load(std::sync::atomic::Ordering::Relaxed) > 3 * CALLS);

        // Open without a fallback: the one allocation is the boxed
        // `CircuitOpen` that the `BoxError` contract requires.
        let layer = breaker();
        layer.handle().force_open();
        assert_eq!(
            allocations_per_rejection(layer.layer(echo())).await,
            1.0,
            "open, fail fast"
        );
    });
}
