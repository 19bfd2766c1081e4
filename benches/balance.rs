//! Per-pick overhead of each strategy over 4 to 10 000 always-ready
//! endpoints: `poll_ready`, `call` and the response, so that what is
//! measured is the balancer; and the cost of one discovery change to a set
//! of 10 000. Run with `cargo bench --bench balance`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::task::{Context, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use futures::channel::mpsc;
use support::bench;
use tower::discover::Change;
use tower::{Service, service_fn};
use tower_bulwark::balance::{BalanceConfig, LoadBalance, Strategy};

fn picks(c: &mut Criterion) {
    let rt = support::runtime();
    let _guard = rt.enter();
    let echo = service_fn(|x: u64| async move { Ok::<_, Infallible>(x) });
    bench(c, "balance/bare service_fn", echo);
    let strategies = [
        Strategy::RoundRobin,
        Strategy::WeightedRoundRobin,
        Strategy::Random,
        Strategy::WeightedRandom,
        Strategy::P2cLeastPending,
        Strategy::peak_ewma(),
    ];
    for endpoints in [10usize, 1_000, 10_000] {
        for strategy in strategies {
            let lb = LoadBalance::weighted(
                BalanceConfig::default()
                    .strategy(strategy)
                    .seed(1)
                    .no_outlier_detection(),
                (0..endpoints).map(|i| (i, echo, 1 + (i % 3) as u32)),
            )
            .unwrap();
            bench(c, &format!("balance/{}/{endpoints}", strategy), lb);
        }
    }
    // A clone, as the layers above a balancer make per call (retries,
    // hedges, a cache hit giving back its reservation).
    let lb = LoadBalance::new(BalanceConfig::default(), (0..4).map(|i| (i, echo))).unwrap();
    c.bench_function("balance/clone", |b| {
        b.iter(|| std::hint::black_box(lb.clone()))
    });

    // With outlier detection on, as by default.
    for strategy in [Strategy::P2cLeastPending, Strategy::peak_ewma()] {
        let lb = LoadBalance::new(
            BalanceConfig::default().strategy(strategy).seed(1),
            (0..4).map(|i| (i, echo)),
        )
        .unwrap();
        bench(
            c,
            &format!("balance/{} + outlier detection/4", strategy),
            lb,
        );
    }
}

/// One endpoint replaced (removed, and added again under its key) in a set
/// of `n`, as discovery reports churn, then one pick: what `poll_ready`
/// does when the stream has a change.
fn changes(c: &mut Criterion) {
    let rt = support::runtime();
    let _guard = rt.enter();
    let echo = service_fn(|x: u64| async move { Ok::<_, Infallible>(x) });
    for strategy in [Strategy::peak_ewma(), Strategy::WeightedRoundRobin] {
        for n in [1_000usize, 10_000] {
            let (changes, stream) = mpsc::unbounded();
            for i in 0..n {
                changes
                    .unbounded_send(Ok::<_, Infallible>(Change::Insert(i, echo)))
                    .unwrap();
            }
            let mut lb =
                LoadBalance::discover(BalanceConfig::default().strategy(strategy).seed(1), stream)
                    .unwrap();
            let mut cx = Context::from_waker(Waker::noop());
            assert!(lb.poll_ready(&mut cx).is_ready());
            let mut i = 0;
            c.bench_function(
                &format!("balance/one change to {n} endpoints, {}", strategy),
                |b| {
                    b.iter(|| {
                        i = (i + 7919) % n;
                        changes.unbounded_send(Ok(Change::Remove(i))).unwrap();
                        changes.unbounded_send(Ok(Change::Insert(i, echo))).unwrap();
                        let _ = black_box(support::call(&mut lb, &mut cx, 1));
                    })
                },
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = picks, changes
}
criterion_main!(benches);
