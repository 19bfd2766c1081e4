//! Balancing quality of the default strategy, on the paused clock: with one
//! endpoint of eleven 25 times slower, the tail stays short, and once that
//! endpoint is fast again it gets its share back within a couple of seconds.
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
    assert!(report.p99 < Duration::from_millis(5), "{report:?}");
    assert!(report.p999 < Duration::from_millis(10), "{report:?}");
    let recovered = report
        .recovered_after
        .expect("the endpoint got its share back");
    assert!(recovered <= Duration::from_secs(3), "{report:?}");
}
