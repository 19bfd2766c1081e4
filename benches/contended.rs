//! Contention: 8 tasks on 2 worker threads call one shared breaker, and
//! one shared stack (one breaker, one balancer over 4 endpoints, one set
//! of metrics handles), as fast as they can; criterion reports calls per
//! second, against the same tasks calling a bare service. Nothing on the
//! success path takes a lock, so the stack should keep most of the bare
//! throughput.
//!
//! Run with `cargo bench --bench contended`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::balance::{BalanceConfig, Strategy};
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};

const TASKS: u64 = 8;

fn echo()
-> impl Service<u64, Response = u64, Error = BoxError, Future: Send> + Clone + Send + Sync + 'static
{
    service_fn(|x: u64| async move { Ok::<_, BoxError>(x) })
}

/// Time for `iters` calls of clones of `svc`, spread over the tasks.
async fn run<S>(svc: S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    let per_task = iters.div_ceil(TASKS);
    let start = std::time::Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let answer = svc.ready().await.unwrap().call(t + i).await.unwrap();
                    std::hint::black_box(answer);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Per call as criterion counts them.
    start
        .elapsed()
        .mul_f64(iters as f64 / (per_task * TASKS) as f64)
}

fn contended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let _ = metrics::set_global_recorder(metrics::NoopRecorder);
    let mut group = c.benchmark_group("contended, 8 tasks on 2 threads");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare service_fn", |b| {
        b.iter_custom(|iters| rt.block_on(run(echo(), iters)))
    });
    // One breaker shared by every task: its window and state word are
    // what the tasks contend on.
    let breaker = {
        let _guard = rt.enter();
        CircuitBreakerLayer::new(CircuitBreakerConfig::default())
            .unwrap()
            .layer(echo())
    };
    group.bench_function("circuit breaker closed", |b| {
        b.iter_custom(|iters| rt.block_on(run(breaker.clone(), iters)))
    });
    for strategy in [Strategy::peak_ewma(), Strategy::P2cLeastPending] {
        let stack = {
            let _guard = rt.enter();
            ResilienceLayer::new(
                ResilienceConfig::default().balance(BalanceConfig::default().strategy(strategy)),
            )
            .unwrap()
            .balance((0..4).map(|i| (i, echo())))
            .unwrap()
        };
        group.bench_function(format!("full stack, {} over 4", strategy), |b| {
            b.iter_custom(|iters| rt.block_on(run(stack.clone(), iters)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = contended
}
criterion_main!(benches);
