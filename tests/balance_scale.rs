//! Fleet scale: a balancer over 10 000 endpoints from a discovery stream,
//! a hundred of them (1 %) replaced after every 10 000 requests (a second
//! at 10 000 requests a second), a million requests from 32 callers with
//! requests in flight across the changes. No request may fail because of
//! the churn, and the memory in use may not grow with the requests.
//!
//! One test in this binary on purpose: the counting allocator sees every
//! thread of the process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
#![cfg(feature = "balance")]

use std::alloc::System;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::channel::mpsc;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::discover::Change;
use tower::{Service, ServiceExt, service_fn};
use tower_bulwark::balance::{BalanceConfig, LoadBalance};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ENDPOINTS: u64 = 10_000;
const REQUESTS: u64 = 1_000_000;
/// Requests between two rounds of churn.
const ROUND: u64 = 10_000;
/// Endpoints replaced in a round.
const REPLACED: u64 = ENDPOINTS / 100;
const CALLERS: u64 = 32;

/// An endpoint: answers with its key after yielding once, so that requests
/// are in flight while the set changes.
fn endpoint(
    key: u64,
) -> impl Service<u64, Response = u64, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
    service_fn(move |_request: u64| async move {
        tokio::task::yield_now().await;
        Ok::<_, Infallible>(key)
    })
}

/// Live bytes since `region` began (a reallocation counts in the bytes
/// allocated or deallocated already).
fn live(region: &Region<'static, System>) -> i64 {
    let change = region.change();
    change.bytes_allocated as i64 - change.bytes_deallocated as i64
}

#[tokio::test(flavor = "current_thread")]
async fn ten_thousand_endpoints_one_percent_replaced_every_second() {
    let (changes, stream) = mpsc::unbounded();
    for key in 0..ENDPOINTS {
        changes
            .unbounded_send(Ok::<_, Infallible>(Change::Insert(key, endpoint(key))))
            .unwrap();
    }
    let lb = LoadBalance::discover(
        BalanceConfig::default()
            .service("fleet")
            .seed(7)
            .no_outlier_detection(),
        stream,
    )
    .unwrap();

    // Which keys are in the set: the oldest ones go first.
    let live_keys = Arc::new(std::sync::Mutex::new(
        (0..ENDPOINTS).collect::<std::collections::VecDeque<u64>>(),
    ));
    let next_key = Arc::new(AtomicU64::new(ENDPOINTS));
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let region = Arc::new(Region::new(GLOBAL));
    let at_tenth = Arc::new(AtomicU64::new(0));

    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let mut lb = lb.clone();
            let (changes, live_keys, next_key, sent, failed, at_tenth, region) = (
                changes.clone(),
                live_keys.clone(),
                next_key.clone(),
                sent.clone(),
                failed.clone(),
                at_tenth.clone(),
                region.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let n = sent.fetch_add(1, Ordering::Relaxed);
                    if n >= REQUESTS {
                        return;
                    }
                    if n == REQUESTS / 10 {
                        at_tenth.store(live(&region) as u64, Ordering::Relaxed);
                    }
                    if n > 0 && n % ROUND == 0 {
                        // A round of churn: the oldest 1 % leave, as many
                        // new ones come.
                        let mut keys = live_keys.lock().unwrap();
                        for _ in 0..REPLACED {
                            let old = keys.pop_front().unwrap();
                            let new = next_key.fetch_add(1, Ordering::Relaxed);
                            keys.push_back(new);
                            changes.unbounded_send(Ok(Change::Remove(old))).unwrap();
                            changes
                                .unbounded_send(Ok(Change::Insert(new, endpoint(new))))
                                .unwrap();
                        }
                    }
                    let answer = match lb.ready().await {
                        Ok(lb) => lb.call(n).await,
                        Err(error) => Err(error),
                    };
                    if answer.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let grown = live(&region) - at_tenth.load(Ordering::Relaxed) as i64;

    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed");
    // The set is what discovery said, once its last changes are applied.
    let mut lb = lb;
    let _ = lb.ready().await;
    let mut keys: Vec<u64> = lb.endpoints().into_iter().map(|e| e.key).collect();
    keys.sort_unstable();
    let mut expected: Vec<u64> = live_keys.lock().unwrap().iter().copied().collect();
    expected.sort_unstable();
    assert_eq!(keys, expected, "the set follows discovery");
    let replaced = next_key.load(Ordering::Relaxed) - ENDPOINTS;
    assert_eq!(replaced, (REQUESTS / ROUND - 1) * REPLACED);
    println!(
        "{replaced} endpoints replaced; memory in use grew {grown} bytes from 100 000 to 1 000 000 requests"
    );
    assert!(
        grown.abs() < 256 << 10,
        "memory in use grew {grown} bytes over 900 000 requests"
    );
}
