//! Future types.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::Handles;
use crate::classify::Classify;

pin_project! {
    /// Response future of [`Metrics`](super::Metrics). Dropped before it
    /// finishes, the call counts as `cancelled` and leaves the in-flight
    /// gauge.
    pub struct ResponseFuture<F, C> {
        #[pin]
        inner: F,
        call: Call<C>,
    }
}

/// What reports the call: on completion, or as cancelled on drop.
struct Call<C> {
    handles: Arc<Handles>,
    classifier: C,
    started: Instant,
    done: bool,
}

impl<C> Drop for Call<C> {
    fn drop(&mut self) {
        if !self.done {
            self.handles.finished(None, self.started);
        }
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(super) fn new(inner: F, handles: Arc<Handles>, classifier: C, started: Instant) -> Self {
        ResponseFuture {
            inner,
            call: Call {
                handles,
                classifier,
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
        let result = ready!(this.inner.poll(cx));
        let call = this.call;
        call.done = true;
        call.handles
            .finished(Some(call.classifier.classify(&result)), call.started);
        Poll::Ready(result)
    }
}

impl<F, C> std::fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
