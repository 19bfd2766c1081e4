//! The `Hedge` service.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::Shared;
use super::future::ResponseFuture;
use crate::classify::{Classify, DefaultClassifier};
use crate::request::{ByClone, CloneRequest};

/// Hedges slow calls. See the [module docs](super).
///
/// Clones share the latency figures and the budget (created by the layer).
#[derive(Debug)]
pub struct Hedge<S, R = ByClone, C = DefaultClassifier> {
    inner: S,
    shared: Arc<Shared<S, R, C>>,
}

impl<S: Clone, R, C> Clone for Hedge<S, R, C> {
    fn clone(&self) -> Self {
        Hedge {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S, R, C> Hedge<S, R, C> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Shared<S, R, C>>) -> Self {
        Hedge { inner, shared }
    }

    inner_service!(
        get_mut: "A change made through it reaches first attempts only: hedges go \
                  through a clone of the service as the layer wrapped it.",
    );
}

impl<S, R, C, Req> Service<Req> for Hedge<S, R, C>
where
    S: Service<Req> + Clone,
    R: CloneRequest<Req>,
    C: Classify<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, S::Future, Req, R, C, S::Response, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    // Always inlined, as the breaker's `call` is: in a stack, the futures
    // beneath are then built in place instead of copied into this one's.
    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &self.shared;
        shared.core.budget.deposit();
        let hedge = shared
            .core
            .delay()
            .and_then(|delay| shared.cloner.clone_request(&req).map(|copy| (delay, copy)));
        // The hedge, if sent, goes through a clone of the shared template:
        // the future carries no service of its own.
        ResponseFuture::new(
            self.inner.call(req),
            crate::clock::now(),
            hedge,
            shared.clone(),
        )
    }
}
