//! Goodput under overload: a simulated backend offered 1x, 2x and 4x what it
//! can serve, with no admission control, a fixed `Bulkhead`, and
//! `AdaptiveConcurrency` (each algorithm) in front of it.
//!
//! The backend serves `CAPACITY` calls at once, each in 5 to 15 ms
//! (uniform, 10 ms on average); a call over that waits its turn in the backend's queue, and a
//! call whose caller gave up is still served when its turn comes (as a
//! server that does not notice a client going away). Callers arrive at
//! random (Poisson) at the offered rate, each with a deadline of 250 ms.
//! Goodput is the calls answered within their deadline, per second, as a
//! share of the backend's capacity (`CAPACITY` / 10 ms); the p99 is that of
//! the calls admitted and answered in time, beside the p99 of the same
//! backend offered half its capacity.
//!
//! Everything runs on tokio's paused clock: 60 simulated seconds per run,
//! the same every time on any machine. Run with
//! `cargo bench --bench goodput --features adaptive,bulkhead`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};
use tokio::time::{Instant, sleep, timeout};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::adaptive::{AdaptiveConcurrencyLayer, AdaptiveConfig, Algorithm};
use tower_bulwark::bulkhead::{BulkheadConfig, BulkheadLayer};

/// Calls the backend serves at once.
const CAPACITY: usize = 16;
/// A call's time in the backend, on average.
const SERVICE: Duration = Duration::from_millis(10);
/// How long a caller waits for its answer.
const DEADLINE: Duration = Duration::from_millis(250);
/// The length of each run.
const RUN: Duration = Duration::from_secs(60);
/// The length of the runs under sustained overload.
const LONG_RUN: Duration = Duration::from_secs(600);
/// The first seconds of a run are not counted: the adaptive limit learns.
const WARMUP: Duration = Duration::from_secs(5);

/// A small deterministic random source (xorshift64*).
struct Random(u64);

impl Random {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The simulated backend: `CAPACITY` workers, a queue without end, the
/// work done whether or not its caller still waits.
fn backend(
    seed: u64,
) -> impl Service<(), Response = (), Error = BoxError, Future: Send> + Clone + Send + 'static {
    let workers = Arc::new(Semaphore::new(CAPACITY));
    let random = Arc::new(Mutex::new(Random(seed)));
    service_fn(move |()| {
        let workers = workers.clone();
        // Whole milliseconds, 5 to 15: tokio's timer rounds a sleep up to
        // the next millisecond, which would make the backend slower than
        // it says.
        let work = Duration::from_millis(5 + (random.lock().unwrap().unit() * 11.0) as u64);
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let _worker = workers.acquire().await.unwrap();
            sleep(work).await;
            let _ = tx.send(());
        });
        async move { rx.await.map_err(BoxError::from) }
    })
}

#[derive(Default)]
struct Tally {
    good: usize,
    late: usize,
    rejected: usize,
    latencies: Vec<Duration>,
}

/// Offers `load` × capacity to `service` for a run; what came of it.
async fn run<S>(service: S, load: f64, seed: u64) -> Tally
where
    S: Service<(), Response = (), Error = BoxError, Future: Send> + Clone + Send + 'static,
{
    run_for(service, load, seed, RUN).await
}

/// As [`run`], for `length`.
async fn run_for<S>(service: S, load: f64, seed: u64, length: Duration) -> Tally
where
    S: Service<(), Response = (), Error = BoxError, Future: Send> + Clone + Send + 'static,
{
    let rate = load * CAPACITY as f64 / SERVICE.as_secs_f64();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut random = Random(seed);
    let start = Instant::now();
    let mut calls = Vec::new();
    let mut arrival = start;
    while arrival - start < length {
        // Poisson arrivals; those that fall within the timer's millisecond
        // go out together.
        arrival += Duration::from_secs_f64(-random.unit().max(1e-12).ln() / rate);
        if arrival > Instant::now() {
            tokio::time::sleep_until(arrival).await;
        }
        let counted = arrival - start >= WARMUP;
        let service = service.clone();
        let tally = tally.clone();
        calls.push(tokio::spawn(async move {
            let sent = Instant::now();
            let result = timeout(DEADLINE, service.oneshot(())).await;
            if !counted {
                return;
            }
            let mut tally = tally.lock().unwrap();
            match result {
                Ok(Ok(())) => {
                    tally.good += 1;
                    tally.latencies.push(sent.elapsed());
                }
                Ok(Err(e)) if e.is::<tower_bulwark::error::Overloaded>() => tally.rejected += 1,
                Ok(Err(e)) => panic!("unexpected error: {e}"),
                Err(_) => tally.late += 1,
            }
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
    Arc::into_inner(tally).unwrap().into_inner().unwrap()
}

fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort_unstable();
    latencies
        .get(latencies.len() * 99 / 100)
        .copied()
        .unwrap_or_default()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut unloaded = run(backend(1), 0.5, 7).await;
        let unloaded_p99 = p99(&mut unloaded.latencies);
        println!(
            "backend: {CAPACITY} at once, {SERVICE:?} a call on average; deadline {DEADLINE:?}; \
             unloaded p99 (0.5x) {unloaded_p99:?}; {RUN:?} per run, the first {WARMUP:?} not counted; \
             limit: the adaptive limit at the end"
        );
        println!(
            "{:<28} {:>5} {:>8} {:>9} {:>8} {:>9} {:>9} {:>6}",
            "admission control", "load", "goodput", "rejected", "late", "p99", "p99/unl.", "limit"
        );
        let counted = (RUN - WARMUP).as_secs_f64();
        let capacity = CAPACITY as f64 / SERVICE.as_secs_f64() * counted;
        for load in [1.0, 2.0, 4.0] {
            let offered = load * capacity;
            for name in [
                "none",
                "bulkhead (16, the capacity)",
                "bulkhead (64)",
                "adaptive gradient2",
                "adaptive aimd",
                "adaptive vegas",
            ] {
                let backend = backend(11);
                let mut limit = None;
                let mut tally = match name {
                    "none" => run(backend, load, 3).await,
                    "bulkhead (16, the capacity)" | "bulkhead (64)" => {
                        let cap = if name.contains("64") { 64 } else { CAPACITY };
                        let layer = BulkheadLayer::new(
                            BulkheadConfig::default().max_concurrent_calls(cap),
                        )
                        .unwrap();
                        run(layer.layer(backend), load, 3).await
                    }
                    _ => {
                        let algorithm = match name {
                            "adaptive aimd" => Algorithm::Aimd,
                            "adaptive vegas" => Algorithm::Vegas,
                            _ => Algorithm::Gradient2,
                        };
                        let config = AdaptiveConfig::default()
                            .algorithm(algorithm)
                            .aimd(0.9, DEADLINE / 2);
                        let layer = AdaptiveConcurrencyLayer::new(config).unwrap();
                        let tally = run(layer.layer(backend), load, 3).await;
                        limit = Some(layer.limit());
                        tally
                    }
                };
                let p99 = p99(&mut tally.latencies);
                println!(
                    "{:<28} {:>4.0}x {:>7.1}% {:>8.1}% {:>7.1}% {:>9.1?} {:>8.2}x {:>6}",
                    name,
                    load,
                    100.0 * tally.good as f64 / capacity,
                    100.0 * tally.rejected as f64 / offered,
                    100.0 * tally.late as f64 / offered,
                    p99,
                    p99.as_secs_f64() / unloaded_p99.as_secs_f64(),
                    limit.map_or("-".to_owned(), |l: usize| l.to_string()),
                );
            }
        }
        // Ten minutes of twice the capacity: does the limit drift?
        let counted = (LONG_RUN - WARMUP).as_secs_f64();
        let capacity = CAPACITY as f64 / SERVICE.as_secs_f64() * counted;
        println!("\nsustained overload, {LONG_RUN:?} at 2x:");
        for algorithm in [Algorithm::Gradient2, Algorithm::Vegas] {
            let layer =
                AdaptiveConcurrencyLayer::new(AdaptiveConfig::default().algorithm(algorithm))
                    .unwrap();
            let mut tally = run_for(layer.layer(backend(11)), 2.0, 3, LONG_RUN).await;
            let p99 = p99(&mut tally.latencies);
            println!(
                "{:<28} {:>4.0}x {:>7.1}% {:>8.1}% {:>7.1}% {:>9.1?} {:>8.2}x {:>6}",
                format!("adaptive {algorithm:?}").to_lowercase(),
                2.0,
                100.0 * tally.good as f64 / capacity,
                100.0 * tally.rejected as f64 / (2.0 * capacity),
                100.0 * tally.late as f64 / (2.0 * capacity),
                p99,
                p99.as_secs_f64() / unloaded_p99.as_secs_f64(),
                layer.limit(),
            );
        }
    });
}
