//! Future types.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::service::Reservation;
use crate::BoxError;
use crate::classify::Classify;

pin_project! {
    /// Response future of [`CircuitBreaker`](super::CircuitBreaker).
    ///
    /// For a call that went through, it classifies the result and records it
    /// when the inner future completes. Dropped before that, the call counts
    /// as [`Ignored`](crate::classify::Outcome::Ignored) and a half-open
    /// probe slot it held is freed. For a rejected call it is the fallback's
    /// future, or an immediate [`CircuitOpen`](super::error::CircuitOpen).
    pub struct ResponseFuture<Fut, C, FbFut> {
        #[pin]
        kind: Kind<Fut, C, FbFut>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<Fut, C, FbFut> {
        Called {
            #[pin]
            future: Fut,
            classifier: C,
            reservation: Reservation,
            start: Option<Instant>,
        },
        Rejected {
            #[pin]
            future: FbFut,
        },
    }
}

impl<Fut, C, FbFut> ResponseFuture<Fut, C, FbFut> {
    pub(super) fn called(
        future: Fut,
        classifier: C,
        reservation: Reservation,
        start: Option<Instant>,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                future,
                classifier,
                reservation,
                start,
            },
        }
    }

    pub(super) fn rejected(future: FbFut) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { future },
        }
    }
}

impl<Fut, C, FbFut, Res, E> Future for ResponseFuture<Fut, C, FbFut>
where
    Fut: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    C: Classify<Res, E>,
    FbFut: Future<Output = Result<Res, BoxError>>,
{
    type Output = Result<Res, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                future,
                classifier,
                reservation,
                start,
            } => {
                let result = ready!(future.poll(cx));
                reservation.complete(classifier.classify(&result), *start);
                Poll::Ready(result.map_err(Into::into))
            }
            KindProj::Rejected { future } => future.poll(cx),
        }
    }
}

impl<Fut, C, FbFut> std::fmt::Debug for ResponseFuture<Fut, C, FbFut> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
