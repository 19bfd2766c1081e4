//! Future types.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::Shared;

pin_project! {
    /// Response future of [`Hedge`](super::Hedge): the first attempt, and
    /// the hedge if it is sent. Whichever answers first wins; the other is
    /// dropped with this future.
    pub struct ResponseFuture<S, F, Req> {
        #[pin]
        first: F,
        started: Instant,
        #[pin]
        second: Second<S, F, Req>,
        shared: Arc<Shared>,
    }
}

pin_project! {
    #[project = SecondProj]
    enum Second<S, F, Req> {
        // No hedge for this call.
        Off,
        // Waiting for the first attempt to be slow.
        Waiting {
            #[pin]
            sleep: Sleep,
            pending: Option<(Req, S)>,
        },
        // Slow: the hedge's service is getting ready.
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

impl<S, F, Req> ResponseFuture<S, F, Req> {
    pub(super) fn new(
        first: F,
        started: Instant,
        hedge: Option<(Duration, Req, S)>,
        shared: Arc<Shared>,
    ) -> Self {
        // A delay too long to be reached is no hedge.
        let second = match hedge.and_then(|(delay, r, s)| Some((started.checked_add(delay)?, r, s)))
        {
            Some((at, request, service)) => Second::Waiting {
                sleep: tokio::time::sleep_until(at),
                pending: Some((request, service)),
            },
            None => Second::Off,
        };
        ResponseFuture {
            first,
            started,
            second,
            shared,
        }
    }
}

impl<S, F, Req, T, E> Future for ResponseFuture<S, F, Req>
where
    S: Service<Req, Response = T, Error = E, Future = F>,
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(result) = this.first.poll(cx) {
            this.shared.histogram.record(this.started.elapsed());
            return Poll::Ready(result);
        }
        loop {
            match this.second.as_mut().project() {
                SecondProj::Off => return Poll::Pending,
                SecondProj::Waiting { sleep, pending } => {
                    if sleep.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let pending = pending.take();
                    if this.shared.budget.try_withdraw(Instant::now()) {
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
                    match service.poll_ready(cx) {
                        Poll::Pending => return Poll::Pending,
                        // A hedge is a bonus: one that cannot be sent is not.
                        Poll::Ready(Err(_)) => this.second.set(Second::Off),
                        Poll::Ready(Ok(())) => {
                            if let Some((request, mut service)) = pending.take() {
                                this.shared.sent.increment(1);
                                let future = service.call(request);
                                this.second.set(Second::Running {
                                    future,
                                    started: Instant::now(),
                                });
                            }
                        }
                    }
                }
                SecondProj::Running { future, started } => {
                    let result = std::task::ready!(future.poll(cx));
                    this.shared.histogram.record(started.elapsed());
                    this.shared.won.increment(1);
                    return Poll::Ready(result);
                }
            }
        }
    }
}

impl<S, F, Req> std::fmt::Debug for ResponseFuture<S, F, Req> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
