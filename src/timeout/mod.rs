//! A per-request deadline, with an optional fallback.
//!
//! [`Timeout`] fails a request with tower's own
//! [`Elapsed`](error::Elapsed) when the inner service takes longer than the
//! deadline, so `err.is::<tower::timeout::error::Elapsed>()` works as it does
//! with `tower::timeout`. The deadline is per attempt: put the layer inside
//! [`CircuitBreaker`](crate::circuit_breaker::CircuitBreaker) so that
//! timeouts count as failures there (the order the crate docs recommend).
//!
//! A call allocates nothing: the timer is part of the response future.
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

use std::task::{Context, Poll};
use std::time::Duration;

use tower_service::Service;

use self::future::ResponseFuture;
pub use self::layer::TimeoutLayer;
use crate::BoxError;
use crate::config::{Check, ConfigError};
use crate::fallback::{DeferredFallback, NoFallback};

/// Fails requests that take longer than a deadline, or hands them to a
/// fallback. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Timeout<S, F = NoFallback> {
    inner: S,
    timeout: Duration,
    fallback: F,
}

impl<S> Timeout<S> {
    /// Wraps `inner` with a deadline of `timeout` per request.
    ///
    /// # Errors
    ///
    /// A zero `timeout` is a [`ConfigError`] naming the field `timeout`.
    pub fn new(inner: S, timeout: Duration) -> Result<Self, ConfigError> {
        Check::layer("timeout").duration("timeout", timeout)?;
        Ok(Timeout::from_parts(inner, timeout, NoFallback))
    }
}

impl<S, F> Timeout<S, F> {
    pub(crate) fn from_parts(inner: S, timeout: Duration, fallback: F) -> Self {
        Timeout {
            inner,
            timeout,
            fallback,
        }
    }

    /// The deadline of each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, F, Req> Service<Req> for Timeout<S, F>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    F: DeferredFallback<Req, S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, F, Req, S::Response>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let fallback = self.fallback.keep(&req);
        let sleep = tokio::time::sleep(self.timeout);
        ResponseFuture::new(self.inner.call(req), sleep, fallback)
    }
}
