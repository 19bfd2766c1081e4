//! Future types.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use super::service::Call;
use crate::classify::Classify;
use crate::fallback::ErrorPolicy;
use pin_project_lite::pin_project;

pin_project! {
    /// Response future of [`CircuitBreaker`](super::CircuitBreaker).
    ///
    /// For a call that went through, it classifies the result and records it
    /// when the inner future completes (or, for an outcome known only at the
    /// end of the response's body, when the body ends: see
    /// [`Classify::at_end`]). Dropped before that, the call counts as
    /// nothing and a half-open probe slot it held is freed, unless the
    /// crate's own timeout cut it off, which is a failure. For a rejected
    /// call it is the fallback's future, or an immediate
    /// [`CircuitOpen`](super::error::CircuitOpen).
    pub struct ResponseFuture<Fut, C, FbFut, P> {
        #[pin]
        kind: Kind<Fut, C, FbFut>,
        // How the inner service's errors leave: the fallback's policy.
        _policy: PhantomData<fn() -> P>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<Fut, C, FbFut> {
        Called {
            #[pin]
            future: Fut,
            classifier: C,
            call: Call,
        },
        Rejected {
            #[pin]
            future: FbFut,
        },
    }
}

impl<Fut, C, FbFut, P> ResponseFuture<Fut, C, FbFut, P> {
    pub(super) fn called(future: Fut, classifier: C, call: Call) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                future,
                classifier,
                call,
            },
            _policy: PhantomData,
        }
    }

    pub(super) fn rejected(future: FbFut) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { future },
            _policy: PhantomData,
        }
    }
}

impl<Fut, C, FbFut, P, Res, E> Future for ResponseFuture<Fut, C, FbFut, P>
where
    Fut: Future<Output = Result<Res, E>>,
    E: Into<crate::BoxError> + 'static,
    C: Classify<Res, E>,
    P: ErrorPolicy,
    FbFut: Future<Output = Result<Res, P::Error<E>>>,
{
    type Output = Result<Res, P::Error<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                future,
                classifier,
                call,
            } => {
                let mut result = ready!(future.poll(cx));
                crate::classify::record_backend(&*classifier, &mut result, call);
                Poll::Ready(result.map_err(P::inner))
            }
            KindProj::Rejected { future } => future.poll(cx),
        }
    }
}

impl<Fut, C, FbFut, P> std::fmt::Debug for ResponseFuture<Fut, C, FbFut, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
