//! Calls per unit of time, globally or per key: past the rate, a call
//! waits a bounded time for its turn or fails at once with
//! [`Overloaded`](crate::error::Overloaded).
//!
//! A [`RateLimiter`] lets [`calls`](RateLimitConfig::calls) calls through
//! per [`period`](RateLimitConfig::period), evenly spread, with bursts of
//! up to [`burst`](RateLimitConfig::burst) after a quiet spell: the
//! generic cell rate algorithm (GCRA, a token bucket kept as one
//! timestamp), from the [`governor`] crate. A call over the rate waits for
//! its turn if it comes within [`max_wait`](RateLimitConfig::max_wait);
//! otherwise it fails at once, without reaching the inner service, and the
//! error's `retry_after` is its turn (a server answers `Retry-After` with
//! it, rounded up to whole seconds).
//!
//! [`RateLimitLayer::new`] makes one limit for every call;
//! [`RateLimitLayer::keyed`] one per key read from each request (a
//! client's address, an API key, a tenant), for at most
//! [`max_keys`](RateLimitConfig::max_keys) keys: past that, the least
//! recently used key is forgotten, and starts again with a full burst when
//! it comes back.
//!
//! The limit is checked in `call`, where the request (and so its key) is
//! known. A call that waits takes the service made ready for it along, and
//! leaves a clone in its place: the inner service must be `Clone`, as
//! tower's clients (reqwest, hyper-util, tonic channels) and axum routers
//! are. The state belongs to the layer: every service it wraps, and their
//! clones, share the limits. Time is tokio's: on a paused test clock the
//! limiter follows it.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, BoxError, Layer, Service, ServiceExt};
//! use tower_bulwark::error::Overloaded;
//! use tower_bulwark::rate_limit::{RateLimitConfig, RateLimitLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! // Two calls a second per user; the user is the request's first field.
//! let layer = RateLimitLayer::keyed(
//!     RateLimitConfig::default().rate(2, Duration::from_secs(1)),
//!     |req: &(&str, u32)| req.0.to_owned(),
//! )?;
//! let mut service = layer.layer(service_fn(|req: (&str, u32)| async move {
//!     Ok::<_, BoxError>(req.1)
//! }));
//! assert_eq!(service.ready().await?.call(("ann", 1)).await?, 1);
//! assert_eq!(service.ready().await?.call(("ann", 2)).await?, 2);
//! let err = service.ready().await?.call(("ann", 3)).await.unwrap_err();
//! let overloaded = err.downcast_ref::<Overloaded>().unwrap();
//! assert_eq!(overloaded.retry_after(), Some(Duration::from_millis(500)));
//! // Another user has a limit of their own.
//! assert_eq!(service.ready().await?.call(("bob", 4)).await?, 4);
//! # Ok(())
//! # }
//! ```

mod config;
pub mod future;
mod layer;
mod limiter;
mod service;
mod store;

pub use self::config::RateLimitConfig;
pub use self::layer::RateLimitLayer;
pub use self::limiter::{Global, Keyed, Limiter};
pub use self::service::RateLimiter;
#[cfg(feature = "stack")]
pub(crate) use self::service::{Shared, Turn};
