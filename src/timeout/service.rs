//! The `Timeout` service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::future::ResponseFuture;
use crate::config::{Check, ConfigError};
use crate::fallback::{DeferredFallback, NoFallback};

/// Fails requests that take longer than a deadline, or hands them to a
/// fallback. See the [module docs](super).
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
