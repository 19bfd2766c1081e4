//! Future types.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::Shared;
use crate::classify::{Classify, Outcome};

pin_project! {
    /// Response future of [`Hedge`](super::Hedge): the first attempt, and
    /// the hedge if it is sent. The first success wins; a failure wins only
    /// once every attempt sent has failed (the last one's is returned). The
    /// attempt that does not win is dropped with this future.
    pub struct ResponseFuture<S, F, Req, R, C, T, E> {
        #[pin]
        first: First<F, T, E>,
        started: Instant,
        #[pin]
        second: Second<S, F, Req>,
        shared: Arc<Shared<S, R, C>>,
    }
}

pin_project! {
    #[project = FirstProj]
    enum First<F, T, E> {
        Running {
            #[pin]
            future: F,
        },
        // Failed while the hedge may still succeed: its answer is kept.
        Failed {
            result: Option<Result<T, E>>,
        },
    }
}

pin_project! {
    #[project = SecondProj]
    enum Second<S, F, Req> {
        // No hedge for this call (or no more).
        Off,
        // Waiting for the first attempt to be slow.
        Waiting {
            #[pin]
            sleep: Sleep,
            request: Option<Req>,
        },
        // Slow: a clone of the service is getting ready for the hedge.
        Readying {
            pending: Option<(Req, S)>,
        },
        Running {
            #[pin]
            future: F,
            started: Instant,
        },
    }
}

impl<S, F, Req, R, C, T, E> ResponseFuture<S, F, Req, R, C, T, E> {
    pub(super) fn new(
        first: F,
        started: Instant,
        hedge: Option<(Duration, Req)>,
        shared: Arc<Shared<S, R, C>>,
    ) -> Self {
        // A delay too long to be reached is no hedge.
        let second = match hedge.and_then(|(delay, r)| Some((started.checked_add(delay)?, r))) {
            Some((at, request)) => Second::Waiting {
                sleep: tokio::time::sleep_until(at),
                request: Some(request),
            },
            None => Second::Off,
        };
        ResponseFuture {
            first: First::Running { future: first },
            started,
            second,
            shared,
        }
    }
}

impl<S, F, Req, R, C, T, E> Future for ResponseFuture<S, F, Req, R, C, T, E>
where
    S: Service<Req, Response = T, Error = E, Future = F> + Clone,
    F: Future<Output = Result<T, E>>,
    C: Classify<T, E>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let shared = &**this.shared;
        if let FirstProj::Running { future } = this.first.as_mut().project() {
            if let Poll::Ready(result) = future.poll(cx) {
                shared
                    .core
                    .histogram
                    .record(crate::clock::now().saturating_duration_since(*this.started));
                let sent = matches!(
                    &*this.second,
                    Second::Readying { .. } | Second::Running { .. }
                );
                if !sent || shared.classifier.classify(result.as_ref()) != Outcome::Failure {
                    return Poll::Ready(result);
                }
                // The hedge may still succeed.
                this.first.set(First::Failed {
                    result: Some(result),
                });
            }
        }
        let first_failed = |first: Pin<&mut First<F, T, E>>| match first.project() {
            FirstProj::Failed { result } => result.take(),
            FirstProj::Running { .. } => None,
        };
        loop {
            match this.second.as_mut().project() {
                SecondProj::Off => {
                    return match first_failed(this.first.as_mut()) {
                        Some(result) => Poll::Ready(result),
                        None => Poll::Pending,
                    };
                }
                SecondProj::Waiting { sleep, request } => {
                    ready!(sleep.poll(cx));
                    let request = request.take();
                    if shared.core.budget.try_withdraw(Instant::now()) {
                        let pending = request.map(|r| (r, shared.service.service()));
                        this.second.set(Second::Readying { pending });
                    } else {
                        this.second.set(Second::Off);
                    }
                }
                SecondProj::Readying { pending } => {
                    let Some((_, service)) = pending.as_mut() else {
                        this.second.set(Second::Off);
                        continue;
                    };
                    match ready!(service.poll_ready(cx)) {
                        // A hedge is a bonus: one that cannot be sent is not.
                        Err(_) => this.second.set(Second::Off),
                        Ok(()) => {
                            if let Some((request, mut service)) = pending.take() {
                                shared.core.sent.increment(1);
                                let future = service.call(request);
                                this.second.set(Second::Running {
                                    future,
                                    started: crate::clock::now(),
                                });
                            }
                        }
                    }
                }
                SecondProj::Running { future, started } => {
                    let result = ready!(future.poll(cx));
                    shared
                        .core
                        .histogram
                        .record(crate::clock::now().saturating_duration_since(*started));
                    if shared.classifier.classify(result.as_ref()) != Outcome::Failure {
                        shared.core.won.increment(1);
                        return Poll::Ready(result);
                    }
                    if let FirstProj::Failed { .. } = this.first.as_mut().project() {
                        // Both failed: the last failure is the answer.
                        return Poll::Ready(result);
                    }
                    // The first attempt may still succeed.
                    this.second.set(Second::Off);
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S, F, Req, R, C, T, E> std::fmt::Debug for ResponseFuture<S, F, Req, R, C, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
