//! Per-pick overhead of each strategy over 4 and 100 always-ready
//! endpoints: `poll_ready`, `call` and the response, driven by hand with a
//! no-op waker (every future is ready at once), so that what is measured is
//! the balancer. Run with `cargo bench --bench balance`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tower::{Service, service_fn};
use tower_bulwark::balance::{BalanceConfig, LoadBalance, Strategy};

#[inline]
fn call<S: Service<u64>>(
    svc: &mut S,
    cx: &mut Context<'_>,
    req: u64,
) -> Result<S::Response, S::Error> {
    match svc.poll_ready(cx) {
        Poll::Ready(Ok(())) => {}
        _ => unreachable!("always ready"),
    }
    match pin!(svc.call(req)).poll(cx) {
        Poll::Ready(result) => result,
        Poll::Pending => unreachable!("ready on the first poll"),
    }
}

fn picks(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut cx = Context::from_waker(Waker::noop());
    let mut group = c.benchmark_group("balance");
    let echo = service_fn(|x: u64| async move { Ok::<_, Infallible>(x) });
    group.bench_function("bare service_fn", |b| {
        let mut svc = echo;
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let _ = black_box(call(&mut svc, &mut cx, black_box(i)));
        })
    });
    let strategies = [
        Strategy::RoundRobin,
        Strategy::WeightedRoundRobin,
        Strategy::Random,
        Strategy::WeightedRandom,
        Strategy::P2cLeastPending,
        Strategy::peak_ewma(),
    ];
    for endpoints in [4usize, 100] {
        for strategy in strategies {
            let mut lb = LoadBalance::weighted(
                BalanceConfig::default()
                    .strategy(strategy)
                    .seed(1)
                    .no_outlier_detection(),
                (0..endpoints).map(|i| (i, echo, 1 + (i % 3) as u32)),
            )
            .unwrap();
            group.bench_with_input(
                BenchmarkId::new(strategy.name(), endpoints),
                &endpoints,
                |b, _| {
                    let mut i = 0u64;
                    b.iter(|| {
                        i += 1;
                        let _ = black_box(call(&mut lb, &mut cx, black_box(i)));
                    })
                },
            );
        }
    }
    // The default configuration: P2C peak EWMA with outlier detection on.
    let mut lb =
        LoadBalance::new(BalanceConfig::default().seed(1), (0..4).map(|i| (i, echo))).unwrap();
    group.bench_function("default (p2c peak ewma + outlier detection)/4", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let _ = black_box(call(&mut lb, &mut cx, black_box(i)));
        })
    });
    let mut lb = LoadBalance::new(
        BalanceConfig::default()
            .strategy(Strategy::P2cLeastPending)
            .seed(1),
        (0..4).map(|i| (i, echo)),
    )
    .unwrap();
    group.bench_function("p2c least pending + outlier detection/4", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let _ = black_box(call(&mut lb, &mut cx, black_box(i)));
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = picks
}
criterion_main!(benches);
