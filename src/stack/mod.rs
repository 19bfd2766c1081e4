//! Every layer in the recommended order, from one configuration.
//!
//! [`ResilienceLayer`] assembles, outermost first:
//!
//! **Metrics → Cache → admission control (RateLimit, then Bulkhead or
//! AdaptiveConcurrency) → Retry → CircuitBreaker → Hedge → Timeout →
//! LoadBalance**
//!
//! each part optional ([`ResilienceConfig`] says which are on), so that the
//! order is right without thinking about it:
//!
//! - **Metrics** is outermost, so it sees what the caller sees: a cached
//!   answer is a fast success, and a request retried twice is one request.
//! - **Cache** sits outside the retries and the breaker: a hit costs no
//!   attempt at all, and when everything inside has failed (retries spent,
//!   circuit open) the cache can still answer with a stale entry.
//! - **Admission control** sits inside the cache and outside the retries
//!   and the breaker (see [`crate::admission`]): a cache hit takes no place
//!   and no token; one call takes one place for all its attempts; a call
//!   turned away is not retried at once into the same full backend, and
//!   never counts against the backend's health.
//! - **Retry** sits outside the breaker, so that an open circuit fails fast
//!   instead of being retried ([`CircuitOpen`](crate::circuit_breaker::error::CircuitOpen)
//!   is never retried), and each retry is one more call the breaker
//!   counts.
//! - **CircuitBreaker** sits outside the hedge and the timeout, so that a
//!   call that timed out is a failure it counts (a timeout outside the
//!   breaker would drop the call, which the breaker ignores), and a hedged
//!   call is one call.
//! - **Hedge** sits outside the timeout, so that each attempt has its own
//!   deadline and a slow first attempt does not eat the second's time.
//! - **Timeout** is per attempt, just outside the balancer, so that an
//!   attempt that waits too long for an endpoint fails too.
//! - **LoadBalance** is innermost: every attempt (first, retry, hedge)
//!   picks an endpoint of its own, and outlier ejection sees every
//!   endpoint's own results.
//!
//! One classifier ([`crate::classify`]) judges results for every layer, and
//! one name ([`ResilienceConfig::service`]) labels every layer's metrics
//! and events. The stack's error is [`BoxError`](crate::BoxError): tell
//! failures apart with `err.is::<CircuitOpen>()`, `err.is::<Elapsed>()` or
//! `err.is::<NoEndpointAvailable>()`, or answer them with
//! [`crate::error`]'s HTTP and gRPC mappings.
//!
//! # Real clients
//!
//! The stack wraps the clients you have, as they are, and asks of their
//! types only what the configuration needs: `Clone` responses when there
//! is a cache, a way to copy requests when there are retries or hedges.
//! The builder has the parts each kind of client wants:
//!
//! | client | builder | classifier | requests copied |
//! |---|---|---|---|
//! | hyper-util's `Client`, any service of `http::Request` | [`http()`](ResilienceBuilder::http) | [`HttpClassifier`](crate::classify::HttpClassifier): 429 and 5xx but 501 fail | idempotent methods and `Idempotency-Key` only |
//! | `reqwest::Client` (feature `reqwest`) | [`reqwest()`](ResilienceBuilder::reqwest) | the same, on `reqwest::Response` | the same, with `try_clone` |
//! | a tonic `Channel` (feature `grpc`) | [`grpc()`](ResilienceBuilder::grpc) | [`GrpcClassifier`](crate::classify::GrpcClassifier): `grpc-status` in headers or trailers, recorded when the body ends; errors become `tonic::Status` | none unless you say |
//!
//! The README's reqwest, hyper and tonic examples are compiled and run in
//! CI (`examples/reqwest_client.rs`, `examples/hyper_client.rs`,
//! `examples/tonic_client.rs`).
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use tower::{service_fn, BoxError, Service, ServiceExt};
//! use tower_bulwark::cache::CacheConfig;
//! use tower_bulwark::retry::RetryConfig;
//! use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let layer = ResilienceLayer::builder(
//!     ResilienceConfig::default()
//!         .service("users")
//!         .timeout(Duration::from_millis(500))
//!         .retry(RetryConfig::default())
//!         .cache(CacheConfig::default().ttl(Duration::from_secs(30))),
//! )
//! .cache_key(|id: &u64| Some(*id))
//! .clone_requests()
//! .fallback(service_fn(|id: u64| async move { Ok::<_, Infallible>(format!("user {id} (fallback)")) }))
//! .build()?;
//!
//! // Three instances of the user service, balanced by peak EWMA.
//! let instance = |name: &'static str| {
//!     service_fn(move |id: u64| async move { Ok::<_, Infallible>(format!("user {id} from {name}")) })
//! };
//! let mut users = layer.balance([("a", instance("a")), ("b", instance("b")), ("c", instance("c"))])?;
//!
//! let user = users.ready().await?.call(7).await?;
//! assert!(user.starts_with("user 7 from "));
//! # Ok(())
//! # }
//! ```
//!
//! # On a server
//!
//! [`ResilienceLayer::server`] (or [`ServerLayer::builder`]) builds the
//! layers that belong in a server's own stack: **Metrics → admission
//! control → CircuitBreaker → Timeout** → the handlers. Admission control
//! comes after Metrics, so that the calls turned away are counted (503 or
//! `RESOURCE_EXHAUSTED` with a retry hint), and before the timeout, so that
//! a call's wait for a place or a turn is not taken from its deadline. Each answers by itself (see
//! [`crate::server`]) and the stack keeps the handlers' error type, so
//! axum's `Router::layer` takes it as it is. A `cache`, `retry` or `hedge`
//! section is refused there: a handler is not a service to call again.
//! With [`per_route`](ServerBuilder::per_route), a breaker and metric
//! labels per route, bounded.
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use tower_bulwark::key::ByRoute;
//! use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};
//!
//! # fn main() -> Result<(), tower::BoxError> {
//! let resilience = ResilienceLayer::server(ResilienceConfig::default().service("api").timeout(Duration::from_secs(2)))
//!     .per_route(ByRoute, 100)
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "a user" }))
//!     .layer(resilience);
//! # let _ = app;
//! # Ok(())
//! # }
//! # }
//! ```
//!
//! # From a file
//!
//! With the `serde` feature, [`ResilienceConfig::from_toml`] and
//! [`ResilienceConfig::from_yaml`] read the same configuration from a file;
//! a bad value is a [`ConfigFileError`] that names the field and its line.
//!
//! # In async handlers
//!
//! The stack's service and futures are `Send` when held across `.await`
//! (what axum asks of a handler). Call it with `ready().await` and `call`:
//! the future of tower's `oneshot` names the service's future type through
//! the `Service` trait, and the compiler cannot prove that `Send` for
//! services that box errors (rust-lang/rust#110338, with tower's own
//! layers as well).
//!
//! # State
//!
//! What one [`ResilienceLayer`] shares between every service it wraps (each
//! call of [`layer`](tower_layer::Layer::layer), [`balance`](ResilienceLayer::balance)
//! or [`discover`](ResilienceLayer::discover)), and what each of those gets
//! of its own (which its clones then share, as axum clones a service per
//! request):
//!
//! | state | shared by the layer's services | one per wrapped service |
//! |---|---|---|
//! | circuit breaker (window, state, [handle](ResilienceLayer::circuit_breaker)) | yes | |
//! | retry budget, hedge budget and latency figures | yes | |
//! | metric handles (`service` label) | yes | |
//! | cache store | | yes |
//! | balancer (endpoints, their load and outlier figures) | | yes |
//!
//! So wrapping two clients with one layer makes them share one breaker: build
//! one layer per downstream service you want to protect on its own.

mod admission;
mod answer;
mod builder;
mod config;
#[cfg(any(feature = "toml", feature = "yaml"))]
mod file;
pub mod future;
mod layer;
mod optional;
mod profile;
#[cfg(all(feature = "http", feature = "keyed"))]
mod server;

pub use self::admission::{Admission, AdmissionFuture};
pub use self::answer::{
    Answer, Bottom, BoxErrors, CacheJudge, Copier, Hint, Judge, MarkAnswer, SharedKey, Weighing,
};
pub use self::builder::ResilienceBuilder;
pub use self::config::ResilienceConfig;
#[cfg(any(feature = "toml", feature = "yaml"))]
pub use self::file::ConfigFileError;
pub use self::layer::{BalancedService, Endpoints, Resilience, ResilienceLayer, ResilienceService};
pub use self::optional::{Optional, OptionalFuture};
#[cfg(feature = "grpc")]
pub use self::profile::Grpc;
#[cfg(feature = "http")]
pub use self::profile::Http;
pub use self::profile::{Plain, Profile};
#[cfg(all(feature = "http", feature = "keyed"))]
pub use self::server::{NoKey, PerRoute, ServerBuilder, ServerKeys, ServerLayer};

/// The cache key type of a stack without a cache: until
/// [`ResilienceBuilder::cache_key`] is given, the stack has no cache layer
/// at all, and asks nothing of its responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoCache;
