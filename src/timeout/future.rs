//! Future types.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::error::Elapsed;
use crate::BoxError;
use crate::classify::cut_off;
use crate::fallback::Fallback;

pin_project! {
    /// Response future of [`Timeout`](super::Timeout).
    ///
    /// Resolves to the inner response, to [`Elapsed`] when the deadline
    /// passes first, or, with a fallback, to the fallback's answer. Once the
    /// deadline has passed and the fallback (if any) has been called, the
    /// inner future is dropped, as cut off by the deadline (see
    /// [`crate::classify`]).
    pub struct ResponseFuture<Fut, Fb, Req, Res>
    where
        Fb: Fallback<Req, Res>,
    {
        #[pin]
        state: State<Fut, Fb, Req, Res>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Fut, Fb, Req, Res>
    where
        Fb: Fallback<Req, Res>,
    {
        Waiting {
            #[pin]
            response: Fut,
            #[pin]
            sleep: Sleep,
            // A fallback and the clone of the request it will be given; `None`
            // without a fallback.
            fallback: Option<(Fb, Req)>,
        },
        // The inner service was never ready within the deadline.
        Expired {
            fallback: Option<(Fb, Req)>,
        },
        Fallback {
            #[pin]
            future: Fb::Future,
        },
    }
}

impl<Fut, Fb, Req, Res> ResponseFuture<Fut, Fb, Req, Res>
where
    Fb: Fallback<Req, Res>,
{
    pub(super) fn new(response: Fut, sleep: Sleep, fallback: Option<(Fb, Req)>) -> Self {
        ResponseFuture {
            state: State::Waiting {
                response,
                sleep,
                fallback,
            },
        }
    }

    pub(super) fn expired(fallback: Option<(Fb, Req)>) -> Self {
        ResponseFuture {
            state: State::Expired { fallback },
        }
    }
}

impl<Fut, Fb, Req, Res, E> Future for ResponseFuture<Fut, Fb, Req, Res>
where
    Fut: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    Fb: Fallback<Req, Res>,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Waiting {
                    response,
                    sleep,
                    fallback,
                } => {
                    // The inner answer wins whenever it is there, even while
                    // a fallback is getting ready.
                    if let Poll::Ready(result) = response.poll(cx) {
                        return Poll::Ready(result.map_err(Into::into));
                    }
                    ready!(sleep.poll(cx));
                    if let Some((service, _)) = fallback.as_mut() {
                        ready!(service.poll_ready(cx))?;
                    }
                    let next = match fallback.take() {
                        Some((mut service, request)) => State::Fallback {
                            future: service.call(request, Elapsed::new()),
                        },
                        None => State::Expired { fallback: None },
                    };
                    // The attempt is dropped here: cut off by the deadline.
                    cut_off::scope(|| state.set(next));
                }
                StateProj::Expired { fallback } => {
                    if let Some((service, _)) = fallback.as_mut() {
                        ready!(service.poll_ready(cx))?;
                    }
                    match fallback.take() {
                        Some((mut service, request)) => {
                            let future = service.call(request, Elapsed::new());
                            state.set(State::Fallback { future });
                        }
                        None => return Poll::Ready(Err(Elapsed::new().into())),
                    }
                }
                StateProj::Fallback { future } => return future.poll(cx),
            }
        }
    }
}

impl<Fut, Fb, Req, Res> std::fmt::Debug for ResponseFuture<Fut, Fb, Req, Res>
where
    Fb: Fallback<Req, Res>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
