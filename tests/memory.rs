//! Memory: a million requests through the full stack in process, with a
//! counting allocator. After a warm-up, the bytes alive stay flat: no
//! layer keeps anything per request, and the cache stays within its
//! capacity while it stores and evicts.
//!
//! One test in this binary on purpose: the counting allocator sees every
//! thread of the process.
#![cfg(feature = "stack")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::alloc::System;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{BoxError, Service, service_fn};
use tower_bulwark::cache::CacheConfig;
use tower_bulwark::hedge::{HedgeConfig, HedgeDelay};
use tower_bulwark::retry::RetryConfig;
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const REQUESTS: u64 = 1_000_000;
const WARM_UP: u64 = 100_000;
const CAPACITY: u64 = 1_000;

/// One call driven by hand: every service here answers on the first poll.
fn call<S: Service<u64, Response = u64, Error = BoxError>>(svc: &mut S, req: u64) -> u64 {
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        other => panic!(
            "not ready: {:?}",
            other.map(|r| r.map_err(|e| e.to_string()))
        ),
    }
    match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(answer) => answer.unwrap(),
        Poll::Pending => panic!("answered on the first poll"),
    }
}

/// Bytes allocated and not freed since `region` began.
fn live(region: &Region<'_, System>) -> i64 {
    let change = region.change();
    change.bytes_allocated as i64 - change.bytes_deallocated as i64
        + change.bytes_reallocated as i64
}

#[test]
fn a_million_requests_leave_memory_flat() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let layer = ResilienceLayer::builder(
        ResilienceConfig::default()
            .cache(
                CacheConfig::default()
                    .max_entries(CAPACITY)
                    .ttl(Duration::from_secs(600)),
            )
            .retry(RetryConfig::default())
            .hedge(HedgeConfig::default().delay(HedgeDelay::Fixed(Duration::from_secs(60)))),
    )
    // Nine requests in ten ask for one of 500 hot keys; the others for a
    // key never seen before, which the cache stores and, full, evicts.
    .cache_key(|req: &u64| Some(*req))
    .clone_requests()
    .fallback(service_fn(|x: u64| async move { Ok::<_, Infallible>(x) }))
    .build()
    .unwrap();
    let echo = || service_fn(|x: u64| async move { Ok::<_, BoxError>(x) });
    let mut svc = layer.balance((0..4).map(|i| (i, echo()))).unwrap();
    let key = |n: u64| if n % 10 == 0 { 1_000_000 + n } else { n % 500 };

    for n in 0..WARM_UP {
        assert_eq!(call(&mut svc, key(n)), key(n));
    }
    let region = Region::new(GLOBAL);
    let mut samples = Vec::new();
    for n in WARM_UP..REQUESTS {
        assert_eq!(call(&mut svc, key(n)), key(n));
        if n % 100_000 == 0 {
            samples.push(live(&region));
        }
    }
    let after = live(&region);
    println!(
        "bytes alive since the warm-up, every 100 000 requests: {samples:?}, at the end {after}; {} allocations",
        region.change().allocations
    );
    // Flat: what is alive at the end is no more than what was alive after
    // the first 100 000 requests past the warm-up, give or take the
    // cache's churn, and far below a byte per request.
    let first = samples[0];
    assert!(
        after - first < 64 * 1024,
        "grew by {} bytes over {} requests",
        after - first,
        REQUESTS - WARM_UP
    );
}
