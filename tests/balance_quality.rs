//! Balancing quality of the default strategy, on the paused clock: with one
//! endpoint of eleven 25 times slower, the tail stays at the fast
//! endpoints' latency, and once that endpoint is fast again it gets 80 % of
//! its fair share back within a second.
#![cfg(feature = "balance")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

#[path = "support/sim.rs"]
mod sim;

use std::time::Duration;

use tower_bulwark::balance::Strategy;

#[test]
fn peak_ewma_keeps_the_tail_short_and_lets_a_recovered_endpoint_back() {
    let report = sim::paused_runtime().block_on(sim::run(Strategy::default()));
    println!("{report:?}");
    // The fast endpoints answer in about 2 ms, the slow one in 50.
    assert!(report.p99 < Duration::from_millis(5), "{report:?}");
    assert!(report.p999 < Duration::from_millis(5), "{report:?}");
    let recovered = report
        .recovered_after
        .expect("the endpoint got its share back");
    assert!(recovered < Duration::from_secs(1), "{report:?}");
}
