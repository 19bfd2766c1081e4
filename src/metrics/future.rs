//! Future types.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::{ClassOf, StatusClass, Tally};
use crate::classify::{Classify, Outcome, Record, cut_off};

pin_project! {
    /// Response future of [`Metrics`](super::Metrics). Dropped before it
    /// finishes, the call counts as `cancelled` and leaves the in-flight
    /// gauge (or as a `failure`, if the crate's own timeout cut it off).
    /// A call whose outcome is known only at the end of the response's
    /// body (see [`Classify::at_end`]) is counted, and stays in flight,
    /// until the body ends.
    pub struct ResponseFuture<F, C, L, T>
    where
        T: Tally,
    {
        #[pin]
        inner: F,
        classifier: C,
        call: Call<T>,
        _labels: PhantomData<fn() -> L>,
    }
}

/// What reports the call: on completion, or as cancelled on drop.
#[derive(Debug)]
pub(super) struct Call<T: Tally> {
    tally: Arc<T>,
    started: Instant,
    class: StatusClass,
    done: bool,
}

impl<T: Tally> Call<T> {
    /// Counts a call in flight, started at `started`, until it is recorded
    /// or dropped.
    #[inline]
    pub(super) fn start(tally: Arc<T>, started: Instant) -> Self {
        tally.started();
        Call {
            tally,
            started,
            class: 0,
            done: false,
        }
    }
}

impl<T: Tally> Record for Call<T> {
    #[inline]
    fn record(&mut self, outcome: Outcome) {
        if !std::mem::replace(&mut self.done, true) {
            self.tally.finished(Some(outcome), self.class, self.started);
        }
    }

    fn defer(&mut self) -> Self {
        Call {
            tally: self.tally.clone(),
            started: self.started,
            class: self.class,
            done: std::mem::replace(&mut self.done, true),
        }
    }
}

impl<T: Tally> Drop for Call<T> {
    fn drop(&mut self) {
        if !self.done {
            let outcome = cut_off::active().then_some(Outcome::Failure);
            self.tally.finished(outcome, 0, self.started);
        }
    }
}

impl<F, C, L, T: Tally> ResponseFuture<F, C, L, T> {
    #[inline]
    pub(super) fn new(inner: F, classifier: C, call: Call<T>) -> Self {
        ResponseFuture {
            inner,
            classifier,
            call,
            _labels: PhantomData,
        }
    }
}

impl<F, C, L, T, Res, E> Future for ResponseFuture<F, C, L, T>
where
    F: Future<Output = Result<Res, E>>,
    C: Classify<Res, E>,
    L: ClassOf<Res>,
    T: Tally,
{
    type Output = Result<Res, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The end of the call, as the layers beneath read it.
        let _section = crate::clock::Section::open();
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        this.call.class = L::class(result.as_ref());
        crate::classify::record(&*this.classifier, &mut result, this.call);
        Poll::Ready(result)
    }
}

impl<F, C, L, T: Tally> std::fmt::Debug for ResponseFuture<F, C, L, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
