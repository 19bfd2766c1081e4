//! Composable [Tower](https://docs.rs/tower) layers that make any
//! `tower::Service` fast and highly available.
//!
//! `tower-bulwark` is for people who run services (axum and tonic servers,
//! reqwest and tonic clients) and want the resilience patterns of
//! Resilience4j, Polly, Envoy and Finagle as plain Tower layers: stack the
//! ones you need in front of any service, with no runtime of their own and
//! no allocation or lock on the success path.
//!
//! # Layers
//!
//! | layer | module | what it does | error it adds |
//! |---|---|---|---|
//! | [`CircuitBreaker`](circuit_breaker::CircuitBreaker) | [`circuit_breaker`] | stops calling a failing service; fails fast or uses a fallback | [`CircuitOpen`](circuit_breaker::error::CircuitOpen) |
//! | [`Timeout`](timeout::Timeout) | [`timeout`] | a per-attempt deadline; fails or uses a fallback on elapse | tower's [`Elapsed`](timeout::error::Elapsed) |
//! | [`Cache`](cache::Cache) | [`cache`] | answers repeated requests from memory; serves stale entries when the service fails; coalesces identical misses | no: keeps the inner error |
//! | [`Retry`](retry::Retry) | [`retry`] | retries failures with exponential backoff and full jitter, within a budget | no: keeps the inner error |
//! | [`LoadBalance`](balance::LoadBalance) | [`balance`] | spreads requests over endpoints (static or discovered) with six strategies; ejects failing endpoints | [`NoEndpointAvailable`](balance::error::NoEndpointAvailable) |
//! | [`Hedge`](hedge::Hedge) | [`hedge`] | sends a second attempt when the first is slower than a percentile, within a budget | no: keeps the inner error |
//! | [`Metrics`](metrics::Metrics) | [`metrics`] | RED metrics: requests by outcome, duration, in flight | no: keeps the inner error |
//! | [`Bulkhead`](bulkhead::Bulkhead) | [`bulkhead`] | a fixed cap on calls in flight, with a bounded wait | [`Overloaded`](error::Overloaded) |
//! | [`AdaptiveConcurrency`](adaptive::AdaptiveConcurrency) | [`adaptive`] | a cap on calls in flight learned from latency | [`Overloaded`](error::Overloaded) |
//! | [`RateLimiter`](rate_limit::RateLimiter) | [`rate_limit`] | calls per unit of time, global or per key | [`Overloaded`](error::Overloaded) |
//!
//! # Recommended order
//!
//! Outermost first: **Metrics → Cache → admission control (RateLimiter,
//! then Bulkhead or AdaptiveConcurrency) → Retry → CircuitBreaker → Hedge →
//! Timeout → LoadBalance**. [`ResilienceLayer`](stack::ResilienceLayer)
//! assembles them in this order from one configuration (which can be read
//! from a TOML or YAML file), each part optional; the [`stack`] module
//! says why each sits where it does. In particular the [`timeout`] sits *inside*
//! the [`circuit_breaker`], so that a call that times out is an error the
//! breaker counts (a timeout outside it would drop the call, which the
//! breaker ignores), and retries sit *outside* the breaker so that an open
//! circuit fails fast instead of being retried. Admission control sits
//! inside the cache and outside the retries and the breaker: a call turned
//! away takes no attempt and never counts against the backend (see
//! [`admission`]).
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, BoxError, Service, ServiceBuilder, ServiceExt};
//! use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
//! use tower_bulwark::timeout::TimeoutLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let mut svc = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::new(CircuitBreakerConfig::default().service("users"))?)
//!     .layer(TimeoutLayer::new(Duration::from_secs(2))?)
//!     .service(service_fn(|id: u64| async move { Ok::<_, BoxError>(format!("user {id}")) }));
//!
//! assert_eq!(svc.ready().await?.call(7).await?, "user 7");
//! # Ok(())
//! # }
//! ```
//!
//! # Shared concepts
//!
//! - **What is a failure** is decided in one place, [`classify`]: every layer
//!   that counts failures takes a classifier, so `Ok(500)` can be a failure
//!   for all of them at once.
//! - **State is shared by clones.** Stateful layers create their state when
//!   the layer is built, behind an `Arc`; every service they wrap and every
//!   clone of those shares it (axum clones a service per request).
//! - **Time** is tokio's: every layer runs on tokio's paused clock in tests.
//! - **Events** of stateful layers go to an [`Events`](event::Events) hub
//!   (and to `tracing`, with the feature), for alerting inside the process; **metrics** go through the
//!   [`metrics`](https://docs.rs/metrics) facade, for alerting outside it.
//! - **Configuration** is plain structs with defaults and by-value setters,
//!   checked when a layer is built: a bad value is a [`ConfigError`] that
//!   names the field, never a panic.
//!
//! # Errors
//!
//! A layer that can fail on its own returns [`BoxError`] and needs the inner
//! error to convert into it; tell the errors apart with
//! `err.is::<CircuitOpen>()`, `err.is::<NoEndpointAvailable>()` or
//! `err.is::<Elapsed>()` (tower's own
//! `Elapsed`, so existing checks keep working). A layer that cannot fail on
//! its own keeps the inner error type. Errors keep their type through every
//! layer, a cache's shared call included; [`error`] maps them to the HTTP
//! responses and `tonic::Status`es a caller answers with (`CircuitOpen`:
//! 503 with `Retry-After`, or `UNAVAILABLE`; `Elapsed`: 504, or
//! `DEADLINE_EXCEEDED`).
//!
//! # Real clients
//!
//! The layers, and [`ResilienceLayer`](stack::ResilienceLayer), wrap
//! `reqwest::Client`, hyper-util's `Client` and tonic's `Channel` as they
//! are; see the [`stack`] module for the builder's `http()`, `reqwest()`
//! and `grpc()`, [`classify`] for the classifiers they use, and [`grpc`]
//! for how gRPC statuses in trailers are recorded when the body ends.
//! Retries and hedges copy only requests that are safe to repeat
//! ([`request::Idempotent`]) unless you choose otherwise.
//!
//! # Servers
//!
//! In an axum `Router` or a tonic `Server`, the layers answer by
//! themselves ([`server::Respond`]: 503 with `Retry-After`, 504; gRPC
//! `UNAVAILABLE`, `DEADLINE_EXCEEDED`) and keep the handlers' `Infallible`
//! error, so `Router::layer` takes them as they are;
//! [`ResilienceLayer::server`](stack::ResilienceLayer::server) gives the
//! server's stack (Metrics → CircuitBreaker → Timeout), with a breaker and
//! metric labels per route ([`key`]) when asked.
//!
//! # Metrics
//!
//! With the `metrics` feature, every layer reports through the
//! [`metrics`](https://docs.rs/metrics) facade. Names carry the `bulwark_`
//! prefix and Prometheus conventions (`_total` for counters, `_seconds` for
//! durations, base units); every series has the `service` label set in the
//! layer's configuration, and other labels take values from fixed sets
//! (an endpoint's key is the one the user gave it). Every series has HELP
//! text. Handles are resolved when a layer is built: install the recorder
//! first. The optional labels are those of [`HttpLabels`](metrics::HttpLabels)
//! (`route`, `method`, `status_class`) and of a breaker per key (`key`,
//! see [`CircuitBreakerLayer::per_key`](circuit_breaker::CircuitBreakerLayer::per_key)):
//! their values come from bounded sets (see [`key`]), and their series are
//! registered when a label set is first seen. A test checks this table
//! against what the layers emit, and the alert rules and the dashboard
//! against this table.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `bulwark_requests_total` | counter | `service`, `outcome`; optional `route`, `method`, `status_class` | calls through [`Metrics`](metrics::Metrics): `success`, `failure`, `ignored`, `cancelled` |
//! | `bulwark_request_duration_seconds` | histogram | `service`; optional `route`, `method`, `status_class` | time to answer, calls that finished |
//! | `bulwark_requests_in_flight` | gauge | `service`; optional `route`, `method` | calls under way |
//! | `bulwark_cache_requests_total` | counter | `service`, `result` | `hit`, `miss`, `stale`, `coalesced` |
//! | `bulwark_cache_entries` | gauge | `service` | entries stored |
//! | `bulwark_cache_evictions_total` | counter | `service` | entries evicted for room |
//! | `bulwark_retry_requests_total` | counter | `service` | first attempts |
//! | `bulwark_retry_retries_total` | counter | `service` | retries sent |
//! | `bulwark_retry_budget_exhausted_total` | counter | `service` | retries the budget refused |
//! | `bulwark_circuit_state` | gauge | `service`; optional `key` | 0 closed, 1 half-open, 2 open |
//! | `bulwark_circuit_transitions_total` | counter | `service`, `from`, `to`; optional `key` | state changes that can happen (the four a breaker makes by itself from the start; one made by hand when it first happens) |
//! | `bulwark_circuit_rejected_total` | counter | `service`; optional `key` | calls not sent to the inner service |
//! | `bulwark_circuit_calls_total` | counter | `service`, `outcome`; optional `key` | calls that went through: `success`, `failure`, `ignored` |
//! | `bulwark_circuit_slow_calls_total` | counter | `service`; optional `key` | calls slower than the slow-call duration |
//! | `bulwark_hedge_sent_total` | counter | `service` | second attempts sent |
//! | `bulwark_hedge_won_total` | counter | `service` | second attempts that answered first |
//! | `bulwark_balance_endpoints` | gauge | `service`, `state` | endpoints `ready`, `ejected`, `pending` |
//! | `bulwark_balance_ejections_total` | counter | `service` | ejections by outlier detection |
//! | `bulwark_balance_requests_total` | counter | `service`, `endpoint` | requests per endpoint, with `endpoint_metrics` on |
//! | `bulwark_admission_in_flight` | gauge | `service`, `layer` | calls holding a place of a `bulkhead` or `adaptive_concurrency` layer |
//! | `bulwark_admission_limit` | gauge | `service`, `layer` | that layer's cap on them: fixed, or learned |
//! | `bulwark_admission_rejected_total` | counter | `service`, `layer` | calls turned away with [`Overloaded`](error::Overloaded) (`layer` also `rate_limit`) |
//!
//! # Features
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `balance` | yes | [`balance`] (needs `circuit-breaker`) |
//! | `cache` | yes | [`cache`] (uses `moka`) |
//! | `circuit-breaker` | yes | [`circuit_breaker`] |
//! | `hedge` | yes | [`hedge`] |
//! | `retry` | yes | [`retry`] |
//! | `timeout` | yes | [`timeout`] |
//! | `metrics` | yes | [`metrics`] and metrics from every enabled layer |
//! | `stack` | yes | [`stack`]: every layer above, assembled by `ResilienceLayer` |
//! | `http` | yes | [`classify::HttpClassifier`] for `http::Response`, [`request::Idempotent`] for `http::Request`, the HTTP answers of [`error`] |
//! | `reqwest` | no | the same for `reqwest::Response` and `reqwest::Request` (depends on `reqwest`, without its default features) |
//! | `grpc` | no | [`classify::GrpcClassifier`], [`grpc`], `tonic::Status` answers (depends on `tonic`, without its default features) |
//! | `keyed` | yes | [`key`]: a breaker and metric labels per key or route, bounded (uses `moka`) |
//! | `axum` | no | [`key::ByRoute`]: keys from axum's matched route (depends on `axum`, without its default features) |
//! | `serde` | no | `Deserialize` for every configuration (durations as `"250ms"`), in any format serde reads |
//! | `toml` | no | `ResilienceConfig::from_toml`, and `from_file` for `.toml` files, naming the field and line of a bad value (turns on `serde` and `stack`) |
//! | `yaml` | no | `ResilienceConfig::from_yaml`, and `from_file` for `.yaml` and `.yml` files (turns on `serde` and `stack`) |
//! | `bulkhead` | yes | [`bulkhead`]: a cap on concurrent calls with a bounded wait, failing with [`error::Overloaded`] |
//! | `adaptive` | yes | [`adaptive`]: a cap on concurrent calls learned from latency (Gradient2, AIMD, Vegas) |
//! | `rate-limit` | yes | [`rate_limit`]: calls per unit of time, global or per key, bounded (uses `governor` and `moka`) |
//! | `tracing` | no | every layer's [`event`]s as `tracing` events too, with the layer's `service` (depends on `tracing`, without its default features) |
//! | `dns` | no | [`balance::dns`]: endpoints from DNS A, AAAA and SRV records (depends on `hickory-resolver`) |
//! | `full` | no | all of the above |
//!
//! # Minimum supported Rust version
//!
//! Rust 1.85, the `rust-version` in `Cargo.toml`.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Every middleware over one service.
#[cfg(any(
    feature = "timeout",
    feature = "metrics",
    feature = "cache",
    feature = "circuit-breaker",
    feature = "retry",
    feature = "hedge",
    feature = "bulkhead",
    feature = "adaptive",
    feature = "rate-limit",
    feature = "grpc"
))]
#[macro_use]
mod macros;

#[cfg(feature = "adaptive")]
pub mod adaptive;
#[cfg(bulwark_admission)]
pub mod admission;
#[cfg(feature = "balance")]
pub mod balance;
#[cfg(feature = "bulkhead")]
pub mod bulkhead;
#[cfg(feature = "cache")]
pub mod cache;
#[cfg(feature = "circuit-breaker")]
pub mod circuit_breaker;
pub mod classify;
// What reads the clock: every layer with state but the bulkhead.
#[cfg(any(
    feature = "adaptive",
    feature = "rate-limit",
    feature = "cache",
    feature = "metrics",
    feature = "hedge",
    feature = "circuit-breaker"
))]
mod clock;
mod config;
// What the configurations' `Deserialize` derives use.
#[cfg(all(
    feature = "serde",
    any(
        feature = "adaptive",
        feature = "bulkhead",
        feature = "cache",
        feature = "circuit-breaker",
        feature = "hedge",
        feature = "rate-limit",
        feature = "retry"
    )
))]
mod de;
pub mod error;
#[cfg(bulwark_events)]
pub mod event;
#[cfg(any(feature = "circuit-breaker", feature = "timeout"))]
pub mod fallback;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "hedge")]
pub mod hedge;
#[cfg(feature = "keyed")]
pub mod key;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
#[cfg(feature = "retry")]
pub mod retry;
#[cfg(all(
    feature = "http",
    any(feature = "circuit-breaker", feature = "timeout")
))]
pub mod server;
#[cfg(feature = "stack")]
pub mod stack;
// Every layer that reports metrics (the metrics facade, or no-ops).
#[cfg(any(
    feature = "metrics",
    feature = "cache",
    feature = "circuit-breaker",
    feature = "retry",
    feature = "hedge",
    feature = "bulkhead",
    feature = "adaptive",
    feature = "rate-limit"
))]
mod telemetry;
#[cfg(feature = "timeout")]
pub mod timeout;

pub use crate::config::ConfigError;

#[cfg(any(feature = "retry", feature = "hedge"))]
pub mod budget;
#[cfg(any(feature = "retry", feature = "hedge"))]
pub mod request;

// Compiles the README's examples as doctests (they use every feature, as
// the README's test command does).
#[cfg(all(doctest, feature = "full"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The boxed error type of layers that can fail on their own, as in tower.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
