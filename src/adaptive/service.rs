use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::future::{Call, ResponseFuture};
use super::learner::Learner;
use crate::BoxError;
use crate::admission::places::{Gate, Places};
use crate::classify::{Classify, DefaultClassifier};

/// Caps the calls running at once with a limit learned from their latency.
/// See the [module docs](super).
pub struct AdaptiveConcurrency<S, C = DefaultClassifier> {
    inner: S,
    gate: Gate<Learner>,
    classifier: C,
}

impl<S, C> AdaptiveConcurrency<S, C> {
    pub(crate) fn new(inner: S, places: Arc<Places<Learner>>, classifier: C) -> Self {
        AdaptiveConcurrency {
            inner,
            gate: Gate::new(places),
            classifier,
        }
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.gate.places().limit()
    }

    inner_service!(into_inner: "A place taken by `poll_ready` is given back.",);
}

impl<S: Clone, C: Clone> Clone for AdaptiveConcurrency<S, C> {
    /// A clone shares the places and the limit; it holds no place yet.
    fn clone(&self) -> Self {
        AdaptiveConcurrency {
            inner: self.inner.clone(),
            gate: self.gate.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S: std::fmt::Debug, C: std::fmt::Debug> std::fmt::Debug for AdaptiveConcurrency<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdaptiveConcurrency")
            .field("inner", &self.inner)
            .field("places", self.gate.places())
            .field("classifier", &self.classifier)
            .finish_non_exhaustive()
    }
}

impl<S, C, Req> Service<Req> for AdaptiveConcurrency<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError> + 'static,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    /// Takes a place, then asks the inner service. With no place free it is
    /// ready all the same, and the call fails with
    /// [`Overloaded`](crate::error::Overloaded).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if std::task::ready!(self.gate.poll_place(cx)) {
            self.inner.poll_ready(cx).map_err(Into::into)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.gate.take() {
            Ok(place) => {
                let call = Call::new(place);
                ResponseFuture::called(self.inner.call(req), self.classifier.clone(), call)
            }
            Err(overloaded) => ResponseFuture::overloaded(overloaded),
        }
    }
}
