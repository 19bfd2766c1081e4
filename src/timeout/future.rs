//! Future types.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::error::Elapsed;
use crate::classify::cut_off;
use crate::fallback::{DeferredFallback, ErrorPolicy};

pin_project! {
    /// Response future of [`Timeout`](super::Timeout).
    ///
    /// Resolves to the inner response, or, when the deadline passes first,
    /// to what the fallback makes of it. The deadline runs from the first
    /// poll at which the inner future has to wait: an answer that is there
    /// at once costs no clock read and no timer. Then: [`Elapsed`] without one, the
    /// fallback service's answer, or the answer
    /// [`Respond`](crate::server::Respond) gives. Once the deadline has
    /// passed and the fallback has been called, the inner future is
    /// dropped, as cut off by the deadline (see [`crate::classify`]).
    pub struct ResponseFuture<Fut, Fb, Req, Res, E>
    where
        Fb: DeferredFallback<Req, Res, E>,
    {
        #[pin]
        state: State<Fut, Fb, Req, Res, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Fut, Fb, Req, Res, E>
    where
        Fb: DeferredFallback<Req, Res, E>,
    {
        Waiting {
            #[pin]
            response: Fut,
            // Made the first time the response is not there.
            #[pin]
            sleep: Option<Sleep>,
            timeout: Duration,
            // The fallback and what it kept of the request, taken when it
            // is called.
            fallback: Option<(Fb, Fb::Kept)>,
        },
        // The deadline passed (or the inner service was never ready within
        // it): the fallback is getting ready.
        Expired {
            fallback: Option<(Fb, Fb::Kept)>,
        },
        Fallback {
            #[pin]
            future: Fb::Future,
        },
    }
}

impl<Fut, Fb, Req, Res, E> ResponseFuture<Fut, Fb, Req, Res, E>
where
    Fb: DeferredFallback<Req, Res, E>,
{
    pub(super) fn new(response: Fut, timeout: Duration, fallback: (Fb, Fb::Kept)) -> Self {
        ResponseFuture {
            state: State::Waiting {
                response,
                sleep: None,
                timeout,
                fallback: Some(fallback),
            },
        }
    }

    pub(super) fn expired(fallback: (Fb, Fb::Kept)) -> Self {
        ResponseFuture {
            state: State::Expired {
                fallback: Some(fallback),
            },
        }
    }
}

impl<Fut, Fb, Req, Res, E> Future for ResponseFuture<Fut, Fb, Req, Res, E>
where
    Fut: Future<Output = Result<Res, E>>,
    E: Into<crate::BoxError>,
    Fb: DeferredFallback<Req, Res, E>,
{
    type Output = Result<Res, <Fb as ErrorPolicy>::Error<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        // The inner answer wins whenever it is there, even while a fallback
        // is getting ready: the common case, kept small enough to inline.
        if let StateProj::Waiting { response, .. } = state.as_mut().project() {
            if let Poll::Ready(result) = response.poll(cx) {
                return Poll::Ready(result.map_err(Fb::inner));
            }
        }
        poll_deadline(state, cx)
    }
}

/// The rest of a poll, once the inner answer is not there: the deadline,
/// and the fallback.
fn poll_deadline<Fut, Fb, Req, Res, E>(
    mut state: Pin<&mut State<Fut, Fb, Req, Res, E>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Res, <Fb as ErrorPolicy>::Error<E>>>
where
    Fut: Future<Output = Result<Res, E>>,
    E: Into<crate::BoxError>,
    Fb: DeferredFallback<Req, Res, E>,
{
    loop {
        match state.as_mut().project() {
            StateProj::Waiting {
                mut sleep,
                timeout,
                fallback,
                ..
            } => {
                if sleep.is_none() {
                    sleep.set(Some(tokio::time::sleep(*timeout)));
                }
                if let Some(sleep) = sleep.as_pin_mut() {
                    ready!(sleep.poll(cx));
                }
                if let Some((service, _)) = fallback.as_mut() {
                    ready!(service.poll_ready(cx))?;
                }
                let next = State::Expired {
                    fallback: fallback.take(),
                };
                // The attempt is dropped here: cut off by the deadline.
                cut_off::scope(|| state.set(next));
            }
            StateProj::Expired { fallback } => {
                let Some((service, _)) = fallback.as_mut() else {
                    unreachable!("the fallback is kept until it is called");
                };
                ready!(service.poll_ready(cx))?;
                let Some((mut service, kept)) = fallback.take() else {
                    unreachable!("the fallback is kept until it is called");
                };
                let future = service.call_kept(kept, Elapsed::new());
                state.set(State::Fallback { future });
            }
            StateProj::Fallback { future } => return future.poll(cx),
        }
    }
}

impl<Fut, Fb, Req, Res, E> std::fmt::Debug for ResponseFuture<Fut, Fb, Req, Res, E>
where
    Fb: DeferredFallback<Req, Res, E>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
