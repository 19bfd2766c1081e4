//! Future types.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use crate::BoxError;
use crate::admission::places::Place;
use crate::error::Overloaded;

pin_project! {
    /// Response future of [`Bulkhead`](super::Bulkhead): holds the call's
    /// place until the call completes or the future is dropped.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called {
            #[pin]
            future: F,
            place: Option<Place>,
        },
        Overloaded {
            error: Overloaded,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn called(future: F, place: Place) -> Self {
        ResponseFuture {
            state: State::Called {
                future,
                place: Some(place),
            },
        }
    }

    pub(super) fn overloaded(error: Overloaded) -> Self {
        ResponseFuture {
            state: State::Overloaded { error },
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future, place } => {
                let result = ready!(future.poll(cx));
                // The place is free as soon as the answer is in.
                drop(place.take());
                Poll::Ready(result.map_err(Into::into))
            }
            StateProj::Overloaded { error } => Poll::Ready(Err(Box::new(*error))),
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
