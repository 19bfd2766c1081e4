//! The `Metrics` service.

use std::task::{Context, Poll};

use tower_service::Service;

use super::future::{Call, ResponseFuture};
use super::{Labels, Unlabelled};
use crate::classify::DefaultClassifier;

/// Reports RED metrics of a service. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct Metrics<S, C = DefaultClassifier, L = Unlabelled> {
    inner: S,
    labels: L,
    classifier: C,
}

impl<S, C, L> Metrics<S, C, L> {
    pub(crate) fn from_parts(inner: S, labels: L, classifier: C) -> Self {
        Metrics {
            inner,
            labels,
            classifier,
        }
    }

    inner_service!();
}

impl<S, C, L, Req> Service<Req> for Metrics<S, C, L>
where
    S: Service<Req>,
    C: crate::classify::Classify<S::Response, S::Error> + Clone,
    L: Labels<Req, S::Response>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, C, L, L::Tally>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        // The layers beneath take the time from this call's one reading.
        let _section = crate::clock::Section::open();
        // In flight from here; the count is given back if the inner `call`
        // panics, as it is when the future is dropped.
        let call = Call::start(self.labels.tally(&req), crate::clock::now());
        let classifier = self.classifier.clone();
        ResponseFuture::new(self.inner.call(req), classifier, call)
    }
}
