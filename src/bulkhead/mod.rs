//! A cap on concurrent calls: past it, a call waits a bounded time in a
//! bounded queue, or fails at once with [`Overloaded`](crate::error::Overloaded).
//!
//! A [`Bulkhead`] keeps one part of a system from taking all of a shared
//! resource (connections, threads, a backend's capacity): at most
//! [`max_concurrent_calls`](BulkheadConfig::max_concurrent_calls) calls run
//! at once. A call over the cap waits for a place, if there is room in the
//! queue ([`max_queue`](BulkheadConfig::max_queue)) and for at most
//! [`max_wait`](BulkheadConfig::max_wait); otherwise, or once the wait is
//! over, it fails with [`Overloaded`](crate::error::Overloaded) without reaching the inner service,
//! whose `retry_after` says how long the caller could wait (the longest
//! wait; `None` when no waiting is configured).
//!
//! The place is taken in `poll_ready` and held by the response future:
//! given back when the call completes, when its future is dropped, and when
//! the call panics (the future is dropped while unwinding). A call whose
//! place is free at once allocates nothing; a waiting call allocates its
//! wait.
//!
//! The state belongs to the layer: every service it wraps, and every clone
//! of them, share the places. Waiting calls are woken in the order they
//! came; a call that arrives just as a place frees may take it first.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, BoxError, Layer, Service, ServiceExt};
//! use tower_bulwark::bulkhead::{BulkheadConfig, BulkheadLayer};
//! use tower_bulwark::error::Overloaded;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let slow = service_fn(|x: u32| async move {
//!     tokio::time::sleep(Duration::from_secs(1)).await;
//!     Ok::<_, BoxError>(x)
//! });
//! let layer = BulkheadLayer::new(BulkheadConfig::default().max_concurrent_calls(1))?;
//! let mut first = layer.layer(slow);
//! let mut second = first.clone();
//! let running = first.ready().await?.call(1);
//! // One place, taken: the second call fails at once.
//! let err = second.ready().await?.call(2).await.unwrap_err();
//! assert!(err.is::<Overloaded>());
//! assert_eq!(running.await?, 1);
//! # Ok(())
//! # }
//! ```

mod config;
pub mod future;
mod layer;
mod service;

pub use self::config::BulkheadConfig;
pub use self::layer::BulkheadLayer;
pub use self::service::Bulkhead;
