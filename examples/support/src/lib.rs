//! The machinery of tower-bulwark's example services, shared by the
//! examples and the tests: the user and order services over their
//! database, the gateway, fault injection, a server that can be killed and
//! revived with its admin routes apart, the listeners' limits, logs, an
//! HTTP client service, flag parsing, and a gRPC greeter.
//!
//! Each example binary uses part of it; the examples themselves show one
//! thing each, and this crate keeps what they stand on out of their way.

pub mod args;
pub mod client;
pub mod db;
pub mod faults;
pub mod fleet;
pub mod gateway;
pub mod greeter;
pub mod http;
pub mod instance;
pub mod log;
pub mod orders;
pub mod server;
pub mod users;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of `*_seconds` histograms, from 1 ms to 10 s: the alert rules and
/// the dashboard compute quantiles from them (`histogram_quantile`), which
/// needs histograms, not the exporter's default summaries.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's Prometheus recorder, installed on first use: before any
/// layer is built, as the layers resolve their metric handles when built.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                // Only an empty bucket list is refused.
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (a test harness);
            // this handle then renders an empty page, which is fine.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// `GET /metrics`: the process's metrics in Prometheus text format.
pub fn metrics_route() -> axum::Router {
    let handle = prometheus();
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                handle.run_upkeep();
                handle.render()
            }
        }),
    )
}
