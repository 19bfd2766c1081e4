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

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower_service::Service;

use self::future::ResponseFuture;
pub use self::layer::TimeoutLayer;
use crate::config::{Check, ConfigError};
use crate::fallback::{DeferredFallback, NoFallback};

/// Fails requests that take longer than a deadline, or hands them to a
/// fallback. See the [module docs](self).
///
/// A clone starts with no wait for readiness under way.
#[derive(Debug)]
pub struct Timeout<S, F = NoFallback> {
    inner: S,
    timeout: Duration,
    fallback: F,
    readiness: Readiness,
}

/// The deadline of a wait for the inner service's readiness.
#[derive(Debug, Default)]
struct Readiness {
    /// The timer, made the first time the inner service was not ready.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer runs for the wait under way.
    armed: bool,
    /// Whether the deadline passed before the inner service was ready: the
    /// next call fails without reaching it.
    expired: bool,
}

impl Readiness {
    /// Starts the deadline of a wait (if it is not running) and polls it;
    /// `true` once it has passed.
    fn poll_expired(&mut self, timeout: Duration, cx: &mut Context<'_>) -> bool {
        if !self.armed {
            let deadline = Instant::now().checked_add(timeout);
            let Some(deadline) = deadline else {
                // A deadline too far to be reached never passes.
                return false;
            };
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        let passed = match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx).is_ready(),
            None => false,
        };
        if passed {
            self.armed = false;
            self.expired = true;
        }
        passed
    }
}

impl<S: Clone, F: Clone> Clone for Timeout<S, F> {
    fn clone(&self) -> Self {
        Timeout::from_parts(self.inner.clone(), self.timeout, self.fallback.clone())
    }
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
            readiness: Readiness::default(),
        }
    }

    /// The deadline of each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    inner_service!();
}

impl<S, F, Req> Service<Req> for Timeout<S, F>
where
    S: Service<Req>,
    S::Error: Into<crate::BoxError>,
    F: DeferredFallback<Req, S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = F::Error<S::Error>;
    type Future = ResponseFuture<S::Future, F, Req, S::Response, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.inner.poll_ready(cx) {
            Poll::Ready(ready) => {
                // Ready after all (even after the deadline, if the caller
                // never made the call that would have failed): the call
                // goes through.
                self.readiness.armed = false;
                self.readiness.expired = false;
                Poll::Ready(ready.map_err(F::inner))
            }
            Poll::Pending if self.readiness.expired => Poll::Ready(Ok(())),
            Poll::Pending if self.readiness.poll_expired(self.timeout, cx) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        if std::mem::take(&mut self.readiness.expired) {
            // Never ready within the deadline: the request does not reach
            // the inner service.
            return ResponseFuture::expired(self.fallback.take(req));
        }
        let fallback = self.fallback.keep(&req);
        ResponseFuture::new(self.inner.call(req), self.timeout, fallback)
    }
}
