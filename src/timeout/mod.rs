//! A per-request deadline, with an optional fallback.
//!
//! [`Timeout`] fails a request with tower's own
//! [`Elapsed`](error::Elapsed) when the inner service takes longer than the
//! deadline, so `err.is::<tower::timeout::error::Elapsed>()` works as it does
//! with `tower::timeout`. The deadline is per attempt: put the layer inside
//! [`CircuitBreaker`](crate::circuit_breaker::CircuitBreaker) so that
//! timeouts count as failures there (the order the crate docs recommend).
//!
//! A call allocates nothing: the timer is part of the response future. It
//! starts the first time the response future has to wait, not in `call`:
//! an answer that is there at once costs no clock read and no timer (a
//! read of the clock costs more than the rest of the layer), and the time
//! of that first poll, which no timer can interrupt, is not counted.
//!
//! # Readiness
//!
//! The deadline also bounds the wait for the inner service to be ready: a
//! balancer whose endpoints are all busy, a channel pushing back. Unlike
//! tower's `Timeout`, whose `poll_ready` waits as long as the inner
//! service does, when the inner service has not been ready for the whole
//! deadline this one reports ready, and the call that follows fails at once
//! with [`Elapsed`](error::Elapsed) (or goes to the fallback) without
//! reaching the inner service. The timer of that wait is allocated the
//! first time a service is not ready at once, and reused.
//!
//! # What the layers beneath learn
//!
//! An attempt the deadline cuts off is dropped; the recording layers
//! beneath the timeout (outlier detection in a balancer, a breaker,
//! metrics) count it as a failure, where an attempt that its caller drops
//! counts as nothing. So a balancer ejects an endpoint that hangs. See
//! [`crate::classify`].
//!
//! # Fallback
//!
//! With [`TimeoutLayer::fallback`], a request whose deadline passes is
//! answered by a backup service instead of failing. The request has been moved
//! into the inner call by then, so each call keeps a clone of the request and
//! of the fallback service, made only when a fallback is configured (the
//! request type must be `Clone`). When the deadline passes, the fallback's
//! readiness is polled and it is called with the clone; the inner call is
//! dropped once the fallback has been called, and an inner answer that comes
//! while the fallback is getting ready is still used.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, BoxError, Service, ServiceBuilder, ServiceExt};
//! use tower_bulwark::timeout::{error::Elapsed, TimeoutLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let slow = service_fn(|_: ()| async {
//!     tokio::time::sleep(Duration::from_secs(10)).await;
//!     Ok::<_, BoxError>("late")
//! });
//!
//! // Without a fallback: the call fails with tower's `Elapsed`.
//! let mut svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_millis(100))?)
//!     .service(slow.clone());
//! let err = svc.ready().await?.call(()).await.unwrap_err();
//! assert!(err.is::<Elapsed>());
//!
//! // With a fallback: the backup answers.
//! let backup = service_fn(|_: ()| async { Ok::<_, BoxError>("from backup") });
//! let mut svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_millis(100))?.fallback(backup))
//!     .service(slow);
//! assert_eq!(svc.ready().await?.call(()).await?, "from backup");
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod future;
mod layer;
mod service;

pub use self::layer::TimeoutLayer;
pub use self::service::Timeout;
