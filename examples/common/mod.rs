//! What the example services share: the user and order services, the
//! gateway, fault injection, a server that can be killed and revived, an
//! HTTP client service, and flag parsing.
//!
//! Each example binary uses part of it.
#![allow(dead_code)]

pub(crate) mod args;
pub(crate) mod client;
pub(crate) mod faults;
pub(crate) mod gateway;
pub(crate) mod instance;
pub(crate) mod orders;
pub(crate) mod users;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process's Prometheus recorder, installed on first use: before any
/// layer is built, as the layers resolve their metric handles when built.
pub(crate) fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (a test harness);
            // this handle then renders an empty page, which is fine.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// `GET /metrics`: the process's metrics in Prometheus text format.
pub(crate) fn metrics_route() -> axum::Router {
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
