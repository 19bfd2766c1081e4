//! A simulated fleet on tokio's paused clock, for balancing quality: ten
//! endpoints answering in about 2 ms and one in about 50 ms, driven by 32
//! closed-loop clients. Times are simulated, exact and reproducible; a run
//! takes a fraction of a second of real time.
//!
//! Shared by `tests/balance_quality.rs` (which asserts the targets) and
//! `benches/balance_quality.rs` (which prints every strategy's figures).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
#![allow(dead_code)] // each user reads what it needs

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Service, ServiceExt, service_fn};
use tower_bulwark::balance::{BalanceConfig, LoadBalance, Strategy};

pub(crate) const FAST: Duration = Duration::from_millis(2);
pub(crate) const SLOW: Duration = Duration::from_millis(50);
pub(crate) const CLIENTS: usize = 32;
pub(crate) const REQUESTS: usize = 20_000;
const ENDPOINTS: usize = 11;

#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) p999: Duration,
    /// Share of the requests sent to the slow endpoint.
    pub(crate) slow_share: f64,
    /// After the slow endpoint turns fast: how long until it gets at least
    /// 80 % of its fair share in a 250 ms window, and in every later window.
    pub(crate) recovered_after: Option<Duration>,
}

/// Deterministic jitter: ±10 % around `base`, from a counter.
fn jittered(base: Duration, counter: &AtomicU64) -> Duration {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    let unit = (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64 / (1u64 << 53) as f64;
    base.mul_f64(0.9 + 0.2 * unit)
}

/// Runs the scenario with `strategy`. Must run on a current-thread runtime
/// with the clock paused.
pub(crate) async fn run(strategy: Strategy) -> Report {
    let hits: Arc<Vec<AtomicU64>> = Arc::new((0..ENDPOINTS).map(|_| AtomicU64::new(0)).collect());
    // Microseconds per endpoint; the last one is the slow one.
    let latency: Arc<Vec<AtomicU64>> = Arc::new(
        (0..ENDPOINTS)
            .map(
                |i| AtomicU64::new(if i + 1 == ENDPOINTS { SLOW } else { FAST }.as_micros() as u64),
            )
            .collect(),
    );
    let counter = Arc::new(AtomicU64::new(0));
    let endpoints = (0..ENDPOINTS).map(|i| {
        let (hits, latency, counter) = (hits.clone(), latency.clone(), counter.clone());
        let svc = service_fn(move |()| {
            hits[i].fetch_add(1, Ordering::Relaxed);
            let delay = jittered(
                Duration::from_micros(latency[i].load(Ordering::Relaxed)),
                &counter,
            );
            async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Infallible>(())
            }
        });
        (i, svc)
    });
    let lb = LoadBalance::new(
        BalanceConfig::default()
            .service("sim")
            .strategy(strategy)
            .seed(42)
            .no_outlier_detection(),
        endpoints,
    )
    .expect("valid config");

    // Closed-loop clients calling until `more` says stop, each returning
    // its latencies.
    let clients = |more: Arc<dyn Fn() -> bool + Send + Sync>| {
        (0..CLIENTS)
            .map(|_| {
                let (mut lb, more) = (lb.clone(), more.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while more() {
                        let start = Instant::now();
                        lb.ready()
                            .await
                            .expect("ready")
                            .call(())
                            .await
                            .expect("answered");
                        latencies.push(start.elapsed());
                    }
                    latencies
                })
            })
            .collect::<Vec<_>>()
    };

    // Phase 1: REQUESTS requests from CLIENTS closed-loop clients.
    let issued = Arc::new(AtomicU64::new(0));
    let clients_1 = clients(Arc::new(move || {
        issued.fetch_add(1, Ordering::Relaxed) < REQUESTS as u64
    }));
    let mut latencies = Vec::with_capacity(REQUESTS);
    for client in clients_1 {
        latencies.extend(client.await.expect("client"));
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let total: u64 = hits.iter().map(|h| h.load(Ordering::Relaxed)).sum();
    let slow_share = hits[ENDPOINTS - 1].load(Ordering::Relaxed) as f64 / total as f64;

    // Phase 2: the slow endpoint turns fast; watch its share per window.
    latency[ENDPOINTS - 1].store(FAST.as_micros() as u64, Ordering::Relaxed);
    let window = Duration::from_millis(250);
    let windows = 24; // six seconds
    let stop = Instant::now() + window * windows;
    let clients_2 = clients(Arc::new(move || Instant::now() < stop));
    let mut shares = Vec::new();
    let mut before: Vec<u64> = hits.iter().map(|h| h.load(Ordering::Relaxed)).collect();
    for _ in 0..windows {
        tokio::time::sleep(window).await;
        let now: Vec<u64> = hits.iter().map(|h| h.load(Ordering::Relaxed)).collect();
        let delta: Vec<u64> = now.iter().zip(&before).map(|(a, b)| a - b).collect();
        let sum: u64 = delta.iter().sum();
        shares.push(delta[ENDPOINTS - 1] as f64 / sum.max(1) as f64);
        before = now;
    }
    for client in clients_2 {
        client.await.expect("client");
    }
    let fair = 1.0 / ENDPOINTS as f64;
    let recovered_after = (0..windows as usize)
        .find(|&i| shares[i..].iter().all(|&s| s >= fair * 0.8))
        .map(|i| window * i as u32);

    Report {
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
        slow_share,
        recovered_after,
    }
}

/// Every strategy, for the table.
pub(crate) fn strategies() -> Vec<Strategy> {
    vec![
        Strategy::RoundRobin,
        Strategy::Random,
        Strategy::P2cLeastPending,
        Strategy::peak_ewma(),
    ]
}

pub(crate) fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}
