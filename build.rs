//! Names for the sets of features that share a piece of the crate's
//! machinery, so that each set is written once (`cfg(bulwark_records)`)
//! rather than as the same `any(feature = ...)` list at every item it
//! gates. Written by hand rather than with `cfg_aliases`: a dependency of
//! every build for a dozen lines.

use std::env;

fn on(feature: &str) -> bool {
    let var = format!("CARGO_FEATURE_{}", feature.to_uppercase().replace('-', "_"));
    env::var_os(var).is_some()
}

fn main() {
    let [
        balance,
        cache,
        breaker,
        hedge,
        retry,
        timeout,
        metrics,
        keyed,
        http,
    ] = [
        "balance",
        "cache",
        "circuit-breaker",
        "hedge",
        "retry",
        "timeout",
        "metrics",
        "keyed",
        "http",
    ]
    .map(on);
    let [bulkhead, adaptive, rate_limit] = ["bulkhead", "adaptive", "rate-limit"].map(on);
    let labelled_metrics = metrics && keyed && http;
    // The layers that check a count is not zero: with the timeout (which
    // checks a duration only), every layer that checks its configuration.
    let checks_nonzero = adaptive
        || rate_limit
        || cache
        || retry
        || labelled_metrics
        || hedge
        || breaker
        || bulkhead;
    let aliases = [
        // An admission-control layer.
        ("bulwark_admission", bulkhead || adaptive || rate_limit),
        // A layer that records outcomes: the breaker (and outlier
        // detection), an adaptive limit, metrics.
        ("bulwark_records", breaker || adaptive || metrics),
        // State per key, bounded: a breaker per key, metric labels per route.
        ("bulwark_registry", breaker || (metrics && http)),
        // Configuration checks, by the layers that make them.
        ("bulwark_checks", checks_nonzero || timeout),
        ("bulwark_checks_nonzero", checks_nonzero),
        (
            "bulwark_checks_duration",
            adaptive || rate_limit || cache || retry || hedge || breaker || bulkhead || timeout,
        ),
        ("bulwark_checks_unit", adaptive || hedge || breaker || retry),
        ("bulwark_checks_order", adaptive || retry || breaker),
        (
            "bulwark_checks_form",
            (balance && http) || adaptive || rate_limit,
        ),
        // Gauges: every layer that reports one.
        ("bulwark_gauges", cache || breaker || bulkhead || adaptive),
        // A scope that registers nothing: a balancer's endpoint breakers, a
        // rate limiter's (absent) places.
        (
            "bulwark_silent_scope",
            breaker || (rate_limit && (bulkhead || adaptive)),
        ),
        // A layer with events.
        (
            "bulwark_events",
            breaker || retry || bulkhead || adaptive || rate_limit,
        ),
    ];
    for (name, set) in aliases {
        println!("cargo::rustc-check-cfg=cfg({name})");
        if set {
            println!("cargo::rustc-cfg={name}");
        }
    }
    println!("cargo::rerun-if-changed=build.rs");
}
