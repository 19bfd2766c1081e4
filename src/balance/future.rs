//! Future types.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::endpoint::Ticket;
use super::error::NoEndpointAvailable;
use crate::BoxError;
use crate::classify::Classify;

pin_project! {
    /// Response future of [`LoadBalance`](super::LoadBalance).
    ///
    /// When the endpoint answers, the answer is classified for outlier
    /// detection and the endpoint's load figures are updated (for an
    /// outcome known only at the end of the response's body, see
    /// [`Classify::at_end`], when the body ends). Dropped before that, the
    /// request leaves the endpoint's pending count and counts as nothing,
    /// unless the crate's own timeout cut it off: a failure.
    pub struct ResponseFuture<F, K, S, C> {
        #[pin]
        state: State<F, C>,
        // The balancer's endpoint types, which its ticket no longer names.
        _endpoint: PhantomData<fn() -> (K, S)>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, C> {
        Called {
            #[pin]
            future: F,
            ticket: Ticket,
            classifier: C,
        },
        Unavailable {
            // Boxed so that the common variant sets the future's size.
            error: Option<Box<NoEndpointAvailable>>,
        },
    }
}

impl<F, K, S, C> ResponseFuture<F, K, S, C> {
    pub(super) fn called(future: F, ticket: Ticket, classifier: C) -> Self {
        ResponseFuture {
            state: State::Called {
                future,
                ticket,
                classifier,
            },
            _endpoint: PhantomData,
        }
    }

    pub(super) fn unavailable(error: Box<NoEndpointAvailable>) -> Self {
        ResponseFuture {
            state: State::Unavailable { error: Some(error) },
            _endpoint: PhantomData,
        }
    }
}

impl<F, K, S, C, T, E> Future for ResponseFuture<F, K, S, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError> + 'static,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called {
                future,
                ticket,
                classifier,
            } => {
                let mut result = ready!(future.poll(cx));
                crate::classify::record_backend(&*classifier, &mut result, ticket);
                Poll::Ready(result.map_err(Into::into))
            }
            StateProj::Unavailable { error } => Poll::Ready(Err(match error.take() {
                // Unsized in place: `BoxError::from` would box the box again.
                Some(error) => error as BoxError,
                None => NoEndpointAvailable::new(
                    0,
                    0,
                    0,
                    Some("response future polled after completion".into()),
                )
                .into(),
            })),
        }
    }
}

impl<F, K, S, C> std::fmt::Debug for ResponseFuture<F, K, S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
