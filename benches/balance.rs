//! Per-pick overhead of each strategy over 4 and 100 always-ready
//! endpoints: `poll_ready`, `call` and the response, so that what is
//! measured is the balancer. Run with `cargo bench --bench balance`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

mod support;

use std::convert::Infallible;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use support::bench;
use tower::service_fn;
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
    for endpoints in [4usize, 100] {
        for strategy in strategies {
            let lb = LoadBalance::weighted(
                BalanceConfig::default()
                    .strategy(strategy)
                    .seed(1)
                    .no_outlier_detection(),
                (0..endpoints).map(|i| (i, echo, 1 + (i % 3) as u32)),
            )
            .unwrap();
            bench(c, &format!("balance/{}/{endpoints}", strategy.name()), lb);
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
            &format!("balance/{} + outlier detection/4", strategy.name()),
            lb,
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = picks
}
criterion_main!(benches);
