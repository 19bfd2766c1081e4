//! The `Retry` service.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::future::ResponseFuture;
use super::{NoRetryAfter, RetryAfter, Shared};
use crate::classify::{Classify, DefaultClassifier};
use crate::request::{ByClone, CloneRequest};

/// Retries failed calls within a budget. See the [module docs](super).
///
/// Clones share the budget (created by the layer).
#[derive(Debug)]
pub struct Retry<S, C = DefaultClassifier, R = ByClone, H = NoRetryAfter> {
    inner: S,
    shared: Arc<Shared<S, C, R, H>>,
}

impl<S: Clone, C, R, H> Clone for Retry<S, C, R, H> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S, C, R, H> Retry<S, C, R, H> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Shared<S, C, R, H>>) -> Self {
        Retry { inner, shared }
    }

    /// Retries that the budget would allow right now.
    pub fn budget_balance(&self) -> f64 {
        self.shared.core.budget.balance()
    }

    inner_service!(
        get_mut: "A change made through it reaches first attempts only: retries go \
                  through a clone of the service as the layer wrapped it.",
    );
}

impl<S, C, R, H, Req> Service<Req> for Retry<S, C, R, H>
where
    S: Service<Req> + Clone,
    S::Error: 'static,
    C: Classify<S::Response, S::Error>,
    R: CloneRequest<Req>,
    H: RetryAfter<S::Response>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, S::Future, Req, C, R, H>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    // Always inlined, as the breaker's `call` is: in a stack, the futures
    // beneath are then built in place instead of copied into this one's.
    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &self.shared;
        let core = &shared.core;
        core.budget.deposit();
        core.requests.increment(1);
        let copy = if core.settings.config.max_attempts > 1 {
            shared.cloner.clone_request(&req)
        } else {
            None
        };
        // Retries, if any, go through a clone of the shared template: the
        // future carries no service of its own.
        ResponseFuture::new(self.inner.call(req), copy, shared.clone())
    }
}
