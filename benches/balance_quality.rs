//! Balancing quality of every strategy: ten endpoints answering in about
//! 2 ms and one in about 50 ms, 32 clients, 20 000 requests, on tokio's
//! paused clock (simulated time: exact, reproducible, fast). Then the slow
//! endpoint turns fast, and the table says how soon it got its share back.
//!
//! Run with `cargo bench --bench balance_quality`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

#[path = "../tests/support/sim.rs"]
mod sim;

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    println!(
        "{} endpoints at ~{:?}, one at ~{:?}; {} clients, {} requests (simulated time)\n",
        10,
        sim::FAST,
        sim::SLOW,
        sim::CLIENTS,
        sim::REQUESTS
    );
    println!(
        "{:<22} {:>8} {:>8} {:>8} {:>12} {:>16}",
        "strategy", "p50", "p99", "p99.9", "to slow one", "80 % share after"
    );
    for strategy in sim::strategies() {
        let report = sim::paused_runtime().block_on(sim::run(strategy));
        println!(
            "{:<22} {:>8.1?} {:>8.1?} {:>8.1?} {:>11.3}% {:>16}",
            strategy,
            report.p50,
            report.p99,
            report.p999,
            report.slow_share * 100.0,
            report
                .recovered_after
                .map_or("never (6 s)".to_string(), |d| format!("{d:?}"))
        );
    }
}
