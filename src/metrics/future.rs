//! Future types.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::Handles;
use crate::classify::{Classify, Outcome, Record, cut_off};

pin_project! {
    /// Response future of [`Metrics`](super::Metrics). Dropped before it
    /// finishes, the call counts as `cancelled` and leaves the in-flight
    /// gauge (or as a `failure`, if the crate's own timeout cut it off).
    /// A call whose outcome is known only at the end of the response's
    /// body (see [`Classify::at_end`]) is counted, and stays in flight,
    /// until the body ends.
    pub struct ResponseFuture<F, C> {
        #[pin]
        inner: F,
        classifier: C,
        call: Call,
    }
}

/// What reports the call: on completion, or as cancelled on drop.
#[derive(Debug)]
struct Call {
    handles: Arc<Handles>,
    started: Instant,
    done: bool,
}

impl Record for Call {
    #[inline]
    fn record(&mut self, outcome: Outcome) {
        if !std::mem::replace(&mut self.done, true) {
            self.handles.finished(Some(outcome), self.started);
        }
    }

    fn defer(&mut self) -> Self {
        Call {
            handles: self.handles.clone(),
            started: self.started,
            done: std::mem::replace(&mut self.done, true),
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.done {
            let outcome = cut_off::active().then_some(Outcome::Failure);
            self.handles.finished(outcome, self.started);
        }
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(super) fn new(inner: F, handles: Arc<Handles>, classifier: C, started: Instant) -> Self {
        ResponseFuture {
            inner,
            classifier,
            call: Call {
                handles,
                started,
                done: false,
            },
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    C: Classify<T, E>,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        crate::classify::record(&*this.classifier, &mut result, this.call);
        Poll::Ready(result)
    }
}

impl<F, C> std::fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
