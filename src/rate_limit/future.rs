//! Future types.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::limiter::Limiter;
use super::service::{Shared, Turn};
use crate::BoxError;
use crate::error::Overloaded;

pin_project! {
    /// Response future of [`RateLimiter`](super::RateLimiter): the inner
    /// service's, after the call's wait for its turn if it had one.
    pub struct ResponseFuture<F, S, Req, L> {
        #[pin]
        state: State<F, S, Req, L>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<F, S, Req, L> {
        Called {
            #[pin]
            future: F,
        },
        /// Waiting for the call's turn, with the service made ready for
        /// it, until the deadline.
        Waiting {
            #[pin]
            turn: Sleep,
            deadline: Instant,
            inner: S,
            req: Req,
            shared: Arc<Shared<L>>,
        },
        Rejected {
            error: Overloaded,
        },
        Done,
    }
}

impl<F, S, Req, L> ResponseFuture<F, S, Req, L> {
    pub(super) fn called(future: F) -> Self {
        ResponseFuture {
            state: State::Called { future },
        }
    }

    pub(super) fn waiting(
        inner: S,
        req: Req,
        shared: Arc<Shared<L>>,
        at: Instant,
        deadline: Instant,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting {
                turn: tokio::time::sleep_until(at),
                deadline,
                inner,
                req,
                shared,
            },
        }
    }

    pub(super) fn rejected(error: Overloaded) -> Self {
        ResponseFuture {
            state: State::Rejected { error },
        }
    }
}

impl<F, S, Req, L, T, E> Future for ResponseFuture<F, S, Req, L>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    S: Service<Req, Future = F>,
    L: Limiter<Req>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Called { future } => return future.poll(cx).map_err(Into::into),
                StateProj::Waiting {
                    mut turn,
                    deadline,
                    req,
                    shared,
                    ..
                } => {
                    ready!(turn.as_mut().poll(cx));
                    // Ask again: another call may have taken the turn.
                    match shared.turn(req, *deadline) {
                        Turn::Now => {}
                        Turn::At(at) => {
                            turn.reset(at);
                            continue;
                        }
                        Turn::Refused(error) => {
                            state.set(State::Rejected { error });
                            continue;
                        }
                    }
                    let StateReplace::Waiting { mut inner, req, .. } =
                        state.as_mut().project_replace(State::Done)
                    else {
                        unreachable!("the state was Waiting")
                    };
                    state.set(State::Called {
                        future: inner.call(req),
                    });
                }
                StateProj::Rejected { error } => return Poll::Ready(Err(Box::new(*error))),
                // Only between the wait and the call: seen only if the
                // inner service's `call` panicked.
                StateProj::Done => {
                    return Poll::Ready(Err("the inner service panicked in `call`".into()));
                }
            }
        }
    }
}

impl<F, S, Req, L> std::fmt::Debug for ResponseFuture<F, S, Req, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
