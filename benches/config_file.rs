//! How long a bad value in a large configuration file takes to report
//! (issue: a 1 MB file took 4-5 s when the line finder rescanned a line
//! back to its start for every occurrence of a section's name). Each case
//! is a 10 MB file whose bad value comes after the bulk, so the whole file
//! is parsed and searched; the goal is under 100 ms.
//!
//! Run with `cargo bench --bench config_file`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower_bulwark::stack::ResilienceConfig;

const SIZE: usize = 10_000_000;

/// `line` repeated to `SIZE` bytes, then `tail`.
fn file(line: &str, tail: &str) -> String {
    let mut text = line.repeat(SIZE / line.len());
    text.push_str(tail);
    text
}

fn config_file(c: &mut Criterion) {
    let toml_tail = "[circuit_breaker]\nfailure_rate_threshold = 1.5\n";
    let cases = [
        (
            "toml: 10 MB of comment lines naming the sections, then the bad value",
            file(
                "# circuit_breaker retry timeout cache balance notes\n",
                toml_tail,
            ),
            false,
        ),
        (
            "toml: one 10 MB comment line of a section's name, then the bad value",
            file("# circuit_breaker ", &format!("\n{toml_tail}")),
            false,
        ),
        (
            "yaml: 10 MB of comment lines naming the sections, then the bad value",
            file(
                "# circuit_breaker retry timeout cache balance notes\n",
                "circuit_breaker:\n  failure_rate_threshold: 1.5\n",
            ),
            true,
        ),
    ];
    for (name, text, yaml) in &cases {
        // The bench measures a reported error, not a parse that succeeds.
        let read = |text: &str| {
            if *yaml {
                ResilienceConfig::from_yaml(text)
            } else {
                ResilienceConfig::from_toml(text)
            }
        };
        let error = read(text).unwrap_err();
        assert_eq!(error.field(), "circuit_breaker.failure_rate_threshold");
        assert!(error.line().is_some());
        c.bench_function(name, |b| b.iter(|| read(black_box(text)).unwrap_err()));
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = config_file
}
criterion_main!(benches);
