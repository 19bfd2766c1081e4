//! Future types.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::answer::Answer;
use super::profile::Profile;
use crate::BoxError;

pin_project! {
    /// Response future of [`Resilience`](super::Resilience): the future of
    /// the layers that are on, unboxed; the answer leaves as its
    /// [`Profile`] says.
    pub struct ResponseFuture<F, P> {
        #[pin]
        inner: F,
        _profile: PhantomData<fn() -> P>,
    }
}

impl<F, P> ResponseFuture<F, P> {
    pub(super) fn new(inner: F) -> Self {
        ResponseFuture {
            inner,
            _profile: PhantomData,
        }
    }
}

impl<F, P, T> Future for ResponseFuture<F, P>
where
    F: Future<Output = Result<Answer<T>, BoxError>>,
    P: Profile<T>,
{
    type Output = Result<P::Response, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .inner
            .poll(cx)
            .map(|result| result.map(P::response).map_err(P::error))
    }
}

impl<F, P> std::fmt::Debug for ResponseFuture<F, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

pin_project! {
    /// Response future of [`Bottom`](super::Bottom).
    pub struct AnswerFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F> AnswerFuture<F> {
    pub(super) fn new(inner: F) -> Self {
        AnswerFuture { inner }
    }
}

impl<F, T, E> Future for AnswerFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Answer<T>, BoxError>;

    // Always inlined: out of line, its answer came back through memory,
    // written a word at a time, and the layers above read it back in wider
    // pieces, which had to wait for those writes (store-forwarding stalls,
    // seen in `perf` in the admission layer's poll). Inlined, the default
    // stack over 4 endpoints costs 6 to 10 % less a call in the runtime
    // bench.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .inner
            .poll(cx)
            .map(|result| result.map(Answer::new).map_err(Into::into))
    }
}

impl<F> std::fmt::Debug for AnswerFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerFuture").finish_non_exhaustive()
    }
}

pin_project! {
    /// Response future of [`BoxErrors`](super::BoxErrors).
    pub struct BoxErrorsFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F> BoxErrorsFuture<F> {
    pub(super) fn new(inner: F) -> Self {
        BoxErrorsFuture { inner }
    }
}

impl<F, T, E> Future for BoxErrorsFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map_err(Into::into)
    }
}

impl<F> std::fmt::Debug for BoxErrorsFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxErrorsFuture").finish_non_exhaustive()
    }
}
