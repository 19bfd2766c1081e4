//! Hedge on tokio's paused clock: when the second attempt goes, who wins,
//! the budget, and the tail latency it buys.
#![cfg(feature = "hedge")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::hedge::{HedgeConfig, HedgeDelay, HedgeLayer};

#[derive(Clone, Default)]
struct Counts {
    calls: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

struct OnDrop(Arc<AtomicUsize>, bool);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A backend whose n-th call (from 0) takes `latency(n)`.
fn backend(
    counts: Counts,
    latency: impl Fn(usize) -> Duration + Send + Sync + Clone + 'static,
) -> impl Service<u32, Response = usize, Error = BoxError, Future: Send> + Clone {
    service_fn(move |_: u32| {
        let n = counts.calls.fetch_add(1, Ordering::SeqCst);
        let (delay, guard) = (latency(n), OnDrop(counts.dropped.clone(), false));
        async move {
            // Rebound so that the whole guard moves in, not just its flag.
            let mut guard = guard;
            tokio::time::sleep(delay).await;
            guard.1 = true;
            Ok::<_, BoxError>(n)
        }
    })
}

fn fixed(ms: u64) -> HedgeConfig {
    HedgeConfig::default().delay(HedgeDelay::Fixed(Duration::from_millis(ms)))
}

#[tokio::test(start_paused = true)]
async fn a_slow_call_is_hedged_at_the_delay_and_the_loser_is_dropped() {
    let counts = Counts::default();
    let slow_first = |n: usize| Duration::from_millis(if n == 0 { 500 } else { 20 });
    let mut svc = HedgeLayer::new(fixed(100))
        .unwrap()
        .layer(backend(counts.clone(), slow_first));
    let start = Instant::now();
    let answer = svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(answer, 1, "the hedge (call 1) answered");
    assert_eq!(start.elapsed(), Duration::from_millis(120));
    assert_eq!(counts.calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        counts.dropped.load(Ordering::SeqCst),
        1,
        "the slow first attempt was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fast_call_is_not_hedged_and_the_first_answer_wins_over_a_slow_hedge() {
    let counts = Counts::default();
    let mut svc = HedgeLayer::new(fixed(100))
        .unwrap()
        .layer(backend(counts.clone(), |_| Duration::from_millis(99)));
    svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(counts.calls.load(Ordering::SeqCst), 1);

    // First attempt 150 ms, hedge 500 ms: the first still wins at 150 ms.
    let counts = Counts::default();
    let latency = |n: usize| Duration::from_millis(if n == 0 { 150 } else { 500 });
    let mut svc = HedgeLayer::new(fixed(100))
        .unwrap()
        .layer(backend(counts.clone(), latency));
    let start = Instant::now();
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 0);
    assert_eq!(start.elapsed(), Duration::from_millis(150));
    assert_eq!(
        counts.dropped.load(Ordering::SeqCst),
        1,
        "the hedge was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn no_percentile_hedge_before_enough_samples() {
    let counts = Counts::default();
    let mut svc = HedgeLayer::new(HedgeConfig::default().minimum_samples(1_000))
        .unwrap()
        .layer(backend(counts.clone(), |n| {
            Duration::from_millis(if n % 10 == 0 { 100 } else { 1 })
        }));
    for _ in 0..500 {
        svc.ready().await.unwrap().call(1).await.unwrap();
    }
    assert_eq!(counts.calls.load(Ordering::SeqCst), 500);
}

#[tokio::test(start_paused = true)]
async fn the_budget_caps_the_extra_load() {
    // Every call is slow, so every call would be hedged without a budget.
    let counts = Counts::default();
    let svc = HedgeLayer::new(fixed(10).budget(0.05, 0, 10))
        .unwrap()
        .layer(backend(counts.clone(), |_| Duration::from_millis(50)));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                svc.ready().await.unwrap().call(1).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let extra = counts.calls.load(Ordering::SeqCst) - 2_000;
    assert!(extra <= 100 + 10, "{extra} hedges for 2000 requests");
    assert!(extra >= 90, "hedges within the budget are sent: {extra}");
}

/// Latencies of `requests` calls from 20 clients to a backend taking 1 ms
/// for 99 % of calls and 100 ms for 1 %, and the calls it saw.
async fn heavy_tail(hedge: Option<HedgeConfig>, requests: usize) -> (Vec<Duration>, usize) {
    let counts = Counts::default();
    // Every 100th call is slow; the pattern is fixed, so runs compare.
    let backend = backend(counts.clone(), |n| {
        Duration::from_millis(if n % 100 == 37 { 100 } else { 1 })
    });
    let per_client = requests / 20;
    let mut tasks = Vec::new();
    let hedged = hedge.map(|config| HedgeLayer::new(config).unwrap());
    for _ in 0..20 {
        let backend = backend.clone();
        let hedged = hedged.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            let mut svc: tower::util::BoxService<u32, usize, BoxError> = match hedged {
                Some(layer) => tower::util::BoxService::new(layer.layer(backend)),
                None => tower::util::BoxService::new(backend),
            };
            for _ in 0..per_client {
                let start = Instant::now();
                svc.ready().await.unwrap().call(1).await.unwrap();
                latencies.push(start.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    latencies.sort();
    (latencies, counts.calls.load(Ordering::SeqCst))
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

#[tokio::test(start_paused = true)]
async fn hedging_cuts_the_tail_at_least_five_times_for_at_most_five_percent_more_calls() {
    let requests = 20_000;
    let (plain, _) = heavy_tail(None, requests).await;
    let (hedged, calls) = heavy_tail(Some(HedgeConfig::default()), requests).await;
    let extra = (calls - requests) as f64 / requests as f64;
    let (p999_plain, p999_hedged) = (quantile(&plain, 0.999), quantile(&hedged, 0.999));
    println!(
        "p99 {:?} -> {:?}, p99.9 {:?} -> {:?}, extra {:.2}%",
        quantile(&plain, 0.99),
        quantile(&hedged, 0.99),
        p999_plain,
        p999_hedged,
        extra * 100.0
    );
    assert!(
        p999_plain >= p999_hedged * 5,
        "{p999_plain:?} vs {p999_hedged:?}"
    );
    assert!(extra <= 0.05, "{:.2}% extra calls", extra * 100.0);
}

#[test]
fn bad_configuration_is_a_typed_error_naming_the_field() {
    let cases = [
        (
            HedgeConfig::default().delay(HedgeDelay::Percentile(0.0)),
            "delay.percentile",
        ),
        (
            HedgeConfig::default().delay(HedgeDelay::Percentile(1.5)),
            "delay.percentile",
        ),
        (
            HedgeConfig::default().delay(HedgeDelay::Fixed(Duration::ZERO)),
            "delay.fixed",
        ),
        (HedgeConfig::default().minimum_samples(0), "minimum_samples"),
        (HedgeConfig::default().budget(2.0, 1, 10), "budget.ratio"),
        (HedgeConfig::default().budget(0.05, 1, 0), "budget.max"),
    ];
    for (config, field) in cases {
        let err = HedgeLayer::new(config).unwrap_err();
        assert_eq!((err.layer(), err.field()), ("hedge", field), "{err}");
    }
}

/// A backend whose n-th call (from 0) answers after `latency(n)` with
/// `outcome(n)`.
fn mixed(
    calls: Arc<AtomicUsize>,
    latency: impl Fn(usize) -> Duration + Send + Sync + Clone + 'static,
    fails: impl Fn(usize) -> bool + Send + Sync + Clone + 'static,
) -> impl Service<u32, Response = usize, Error = BoxError, Future: Send> + Clone {
    service_fn(move |_: u32| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        let (delay, fail) = (latency(n), fails(n));
        async move {
            tokio::time::sleep(delay).await;
            if fail {
                Err::<usize, BoxError>(format!("attempt {n} failed").into())
            } else {
                Ok(n)
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_hedge_that_fails_fast_does_not_beat_a_first_attempt_that_answers() {
    // The first attempt answers at 100 ms; the hedge goes at 20 ms and
    // fails at once. 5 calls, each answered by its first attempt.
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = HedgeLayer::new(fixed(20)).unwrap().layer(mixed(
        calls.clone(),
        |n| Duration::from_millis(if n % 2 == 0 { 100 } else { 0 }),
        |n| n % 2 == 1,
    ));
    for call in 0..5 {
        let start = Instant::now();
        let answer = svc.ready().await.unwrap().call(1).await;
        assert_eq!(answer.unwrap(), call * 2, "the first attempt's answer");
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 10, "every call was hedged");
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_returned_once_every_attempt_has_failed() {
    // Both fail: the first at 50 ms, the hedge (sent at 20 ms) at 80 ms.
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = HedgeLayer::new(fixed(20)).unwrap().layer(mixed(
        calls.clone(),
        |n| Duration::from_millis(if n == 0 { 50 } else { 60 }),
        |_| true,
    ));
    let start = Instant::now();
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(80),
        "waited for the hedge"
    );
    assert_eq!(err.to_string(), "attempt 1 failed", "the last failure");

    // A first attempt that fails before the hedge is due: nothing else was
    // sent, so its failure is the answer at once.
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = HedgeLayer::new(fixed(20)).unwrap().layer(mixed(
        calls.clone(),
        |_| Duration::from_millis(5),
        |_| true,
    ));
    let start = Instant::now();
    assert!(svc.ready().await.unwrap().call(1).await.is_err());
    assert_eq!(start.elapsed(), Duration::from_millis(5));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no hedge after the answer");
}

#[tokio::test(start_paused = true)]
async fn what_a_failure_is_comes_from_the_classifier() {
    use tower_bulwark::classify::Outcome;
    // The first attempt answers 0 ("an error page") at 100 ms; the hedge
    // answers 1 at 30 ms. With a classifier that calls 1 a failure, the
    // first attempt's answer wins; the default takes the hedge's.
    let make = || {
        let calls = Arc::new(AtomicUsize::new(0));
        mixed(
            calls,
            |n| Duration::from_millis(if n == 0 { 100 } else { 10 }),
            |_| false,
        )
    };
    let mut default = HedgeLayer::new(fixed(20)).unwrap().layer(make());
    assert_eq!(default.ready().await.unwrap().call(1).await.unwrap(), 1);
    let mut judged = HedgeLayer::new(fixed(20))
        .unwrap()
        .classify(|r: Result<&usize, &BoxError>| match r {
            Ok(1) | Err(_) => Outcome::Failure,
            Ok(_) => Outcome::Success,
        })
        .layer(make());
    assert_eq!(judged.ready().await.unwrap().call(1).await.unwrap(), 0);
}
