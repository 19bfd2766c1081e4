use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use tower_service::Service;

use super::future::ResponseFuture;
use super::limiter::{Global, Limiter};
use crate::BoxError;
use crate::admission::telemetry::Telemetry;
use crate::error::Overloaded;

/// What a layer's services share.
#[derive(Debug)]
pub(crate) struct Shared<L> {
    pub(crate) limiter: L,
    pub(crate) max_wait: Duration,
    pub(crate) telemetry: Telemetry,
}

/// What the limiter says of a call: the one decision every path through a
/// rate limiter (a call, a wait that ends, a stack's `poll_ready`) takes.
#[derive(Debug)]
pub(crate) enum Turn {
    /// Go now (the cell is taken).
    Now,
    /// Ask again at this instant: it comes before the deadline.
    At(Instant),
    /// Not before the deadline: turned away (counted).
    Refused(Overloaded),
}

impl<L> Shared<L> {
    /// The turn of `req`, for a call that may wait until `deadline`.
    #[inline]
    pub(crate) fn turn<Req>(&self, req: &Req, deadline: Instant) -> Turn
    where
        L: Limiter<Req>,
    {
        match self.limiter.check(req) {
            Ok(()) => Turn::Now,
            Err(wait) => {
                let at = crate::clock::now() + wait;
                if at <= deadline {
                    Turn::At(at)
                } else {
                    Turn::Refused(self.refuse(wait))
                }
            }
        }
    }

    /// The error of a call turned away (counted), its turn `wait` away.
    pub(crate) fn refuse(&self, wait: Duration) -> Overloaded {
        self.telemetry.rejected();
        Overloaded::new(self.telemetry.layer, Some(wait))
    }

    /// The deadline of a call that starts waiting now.
    #[inline]
    pub(crate) fn deadline(&self) -> Instant {
        crate::clock::now() + self.max_wait
    }
}

/// Lets calls through at a set rate, globally or per key. See the
/// [module docs](super).
pub struct RateLimiter<S, L = Global> {
    inner: S,
    shared: Arc<Shared<L>>,
}

impl<S, L> RateLimiter<S, L> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<L>>) -> Self {
        RateLimiter { inner, shared }
    }

    inner_service!();
}

impl<S: Clone, L> Clone for RateLimiter<S, L> {
    fn clone(&self) -> Self {
        RateLimiter {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: std::fmt::Debug, L: std::fmt::Debug> std::fmt::Debug for RateLimiter<S, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .finish()
    }
}

impl<S, L, Req> Service<Req> for RateLimiter<S, L>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    L: Limiter<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Req, L>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let deadline = self.shared.deadline();
        match self.shared.turn(&req, deadline) {
            Turn::Now => ResponseFuture::called(self.inner.call(req)),
            Turn::At(at) => {
                // The ready service goes with the waiting call; this one
                // gets a clone, to be made ready again.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::waiting(inner, req, self.shared.clone(), at, deadline)
            }
            Turn::Refused(error) => ResponseFuture::rejected(error),
        }
    }
}
