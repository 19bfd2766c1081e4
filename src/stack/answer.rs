//! What travels between the layers of a stack: responses as [`Answer`]s,
//! errors boxed, and the parts that are code behind shared pointers.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower_service::Service;

use super::future::{AnswerFuture, BoxErrorsFuture};
use crate::BoxError;
use crate::cache::{CacheKey, CacheStatus, MarkStatus, Weigher};
use crate::classify::{Classify, Outcome, PendingOutcome};
use crate::request::CloneRequest;
use crate::retry::RetryAfter;

/// A response on its way out of a stack, with what the layers outside the
/// breaker must know of it: whether the breaker's fallback gave it, and
/// where the cache found it. The stack's outermost service unwraps it;
/// callers never see one.
///
/// A fallback's answer travels as a success, marked: the cache never
/// stores it and prefers a stale entry to it (the last good answer beats a
/// generic one), the retries leave it alone (the circuit is open), and the
/// metrics count it as a failure (the caller got a degraded answer).
#[derive(Clone)]
pub struct Answer<T> {
    pub(super) response: T,
    pub(super) from_fallback: bool,
    pub(super) cache: Option<CacheStatus>,
}

impl<T> Answer<T> {
    pub(super) fn new(response: T) -> Self {
        Answer {
            response,
            from_fallback: false,
            cache: None,
        }
    }

    pub(super) fn fallback(response: T) -> Self {
        Answer {
            response,
            from_fallback: true,
            cache: None,
        }
    }
}

impl<T> fmt::Debug for Answer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("from_fallback", &self.from_fallback)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// The stack's classifier as one layer uses it: the user's on the response
/// inside an [`Answer`], and a fixed outcome for a fallback's answer.
#[derive(Debug, Clone)]
pub struct Judge<C> {
    classifier: C,
    fallback: Outcome,
}

impl<C> Judge<C> {
    pub(super) fn new(classifier: C, fallback: Outcome) -> Self {
        Judge {
            classifier,
            fallback,
        }
    }
}

impl<C, T> Classify<Answer<T>, BoxError> for Judge<C>
where
    C: Classify<T, BoxError>,
{
    #[inline]
    fn classify(&self, result: Result<&Answer<T>, &BoxError>) -> Outcome {
        match result {
            Ok(answer) if answer.from_fallback => self.fallback,
            Ok(answer) => self.classifier.classify(Ok(&answer.response)),
            Err(error) => self.classifier.classify(Err(error)),
        }
    }

    #[inline]
    fn at_end(&self, answer: &mut Answer<T>) -> Option<PendingOutcome> {
        if answer.from_fallback {
            return None;
        }
        self.classifier.at_end(&mut answer.response)
    }
}

/// The stack's classifier as its cache uses it: [`Judge`]'s verdict, except
/// that a success the stack's [`cache_if`](super::ResilienceBuilder::cache_if)
/// rule refuses is [`Ignored`](Outcome::Ignored): passed on, neither stored
/// nor answered from a stale entry.
pub struct CacheJudge<C, Res> {
    judge: Judge<C>,
    admit: Option<Arc<AdmitFn<Res>>>,
}

pub(super) type AdmitFn<Res> = dyn Fn(&Res) -> bool + Send + Sync;

impl<C, Res> CacheJudge<C, Res> {
    pub(super) fn new(judge: Judge<C>, admit: Option<Arc<AdmitFn<Res>>>) -> Self {
        CacheJudge { judge, admit }
    }
}

impl<C: Clone, Res> Clone for CacheJudge<C, Res> {
    fn clone(&self) -> Self {
        CacheJudge {
            judge: self.judge.clone(),
            admit: self.admit.clone(),
        }
    }
}

impl<C: fmt::Debug, Res> fmt::Debug for CacheJudge<C, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheJudge")
            .field("judge", &self.judge)
            .field("cache_if", &self.admit.is_some())
            .finish()
    }
}

impl<C, Res> Classify<Answer<Res>, BoxError> for CacheJudge<C, Res>
where
    C: Classify<Res, BoxError>,
{
    #[inline]
    fn classify(&self, result: Result<&Answer<Res>, &BoxError>) -> Outcome {
        match self.judge.classify(result) {
            Outcome::Success => match (&self.admit, result) {
                (Some(admit), Ok(answer)) if !admit(&answer.response) => Outcome::Ignored,
                _ => Outcome::Success,
            },
            outcome => outcome,
        }
    }
}

/// A rule that says which responses the stack's cache may store.
pub(super) fn admit_fn<Res, F>(admit: F) -> Arc<AdmitFn<Res>>
where
    F: Fn(&Res) -> bool + Send + Sync + 'static,
{
    Arc::new(admit)
}

/// How the stack's cache weighs an entry (see
/// [`cache_weigher`](super::ResilienceBuilder::cache_weigher)); entries count
/// one each without one.
pub struct Weighing<K, Res>(Option<Arc<WeighFn<K, Res>>>);

type WeighFn<K, Res> = dyn Fn(&K, &Res) -> u32 + Send + Sync;

impl<K, Res> Weighing<K, Res> {
    pub(super) fn none() -> Self {
        Weighing(None)
    }

    pub(super) fn new<F>(weigher: F) -> Self
    where
        F: Fn(&K, &Res) -> u32 + Send + Sync + 'static,
    {
        Weighing(Some(Arc::new(weigher)))
    }
}

impl<K, Res> Clone for Weighing<K, Res> {
    fn clone(&self) -> Self {
        Weighing(self.0.clone())
    }
}

impl<K, Res> fmt::Debug for Weighing<K, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Weighing").field(&self.0.is_some()).finish()
    }
}

impl<K, Res> Weigher<K, Answer<Res>> for Weighing<K, Res>
where
    K: 'static,
    Res: 'static,
{
    fn into_weigher(self) -> Option<Arc<dyn Fn(&K, &Answer<Res>) -> u32 + Send + Sync>> {
        let weigh = self.0?;
        Some(Arc::new(move |key: &K, answer: &Answer<Res>| {
            weigh(key, &answer.response)
        }))
    }
}

/// Marks a cached [`Answer`] with where it came from.
#[derive(Debug, Clone, Copy, Default)]
pub struct MarkAnswer;

impl<T> MarkStatus<Answer<T>> for MarkAnswer {
    type Response = Answer<T>;

    #[inline]
    fn mark(&self, mut answer: Answer<T>, status: CacheStatus) -> Answer<T> {
        answer.cache = Some(status);
        answer
    }
}

/// How a stack copies requests for retries and hedges: a shared
/// [`CloneRequest`], or nothing (no request is sent twice).
pub struct Copier<Req>(Option<Arc<dyn CloneRequest<Req> + Send + Sync>>);

impl<Req> Copier<Req> {
    pub(super) fn none() -> Self {
        Copier(None)
    }

    pub(super) fn new<R>(cloner: R) -> Self
    where
        R: CloneRequest<Req> + Send + Sync + 'static,
    {
        Copier(Some(Arc::new(cloner)))
    }

    pub(super) fn is_some(&self) -> bool {
        self.0.is_some()
    }
}

impl<Req> Clone for Copier<Req> {
    fn clone(&self) -> Self {
        Copier(self.0.clone())
    }
}

impl<Req> fmt::Debug for Copier<Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Copier").field(&self.0.is_some()).finish()
    }
}

impl<Req> CloneRequest<Req> for Copier<Req> {
    #[inline]
    fn clone_request(&self, req: &Req) -> Option<Req> {
        self.0.as_ref()?.clone_request(req)
    }
}

/// A server's hint of when to retry, read from the response in an
/// [`Answer`]; none by default.
pub struct Hint<Res>(Option<Arc<HintFn<Res>>>);

type HintFn<Res> = dyn Fn(&Res) -> Option<Duration> + Send + Sync;

impl<Res> Hint<Res> {
    pub(super) fn none() -> Self {
        Hint(None)
    }

    pub(super) fn new<F>(hint: F) -> Self
    where
        F: Fn(&Res) -> Option<Duration> + Send + Sync + 'static,
    {
        Hint(Some(Arc::new(hint)))
    }
}

impl<Res> Clone for Hint<Res> {
    fn clone(&self) -> Self {
        Hint(self.0.clone())
    }
}

impl<Res> fmt::Debug for Hint<Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hint").field(&self.0.is_some()).finish()
    }
}

impl<Res> RetryAfter<Answer<Res>> for Hint<Res> {
    #[inline]
    fn retry_after(&self, answer: &Answer<Res>) -> Option<Duration> {
        self.0.as_ref()?(&answer.response)
    }
}

/// A stack's cache key: a shared closure.
pub struct SharedKey<Req, K>(Arc<KeyFn<Req, K>>);

type KeyFn<Req, K> = dyn Fn(&Req) -> Option<K> + Send + Sync;

impl<Req, K> SharedKey<Req, K> {
    pub(super) fn new<F>(key: F) -> Self
    where
        F: Fn(&Req) -> Option<K> + Send + Sync + 'static,
    {
        SharedKey(Arc::new(key))
    }
}

impl<Req, K> Clone for SharedKey<Req, K> {
    fn clone(&self) -> Self {
        SharedKey(self.0.clone())
    }
}

impl<Req, K> fmt::Debug for SharedKey<Req, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedKey(..)")
    }
}

impl<Req, K> CacheKey<Req, K> for SharedKey<Req, K> {
    #[inline]
    fn key(&self, req: &Req) -> Option<K> {
        (self.0)(req)
    }
}

/// The service under a stack's layers: its responses as [`Answer`]s and
/// its errors boxed.
///
/// Written by hand rather than with tower's `MapErr` and a function
/// pointer: a `fn(BoxError) -> BoxError` in a future's type trips the
/// compiler's check that the future is `Send` (rust-lang/rust#110338),
/// which axum needs of handlers.
#[derive(Debug, Clone)]
pub struct Bottom<S> {
    inner: S,
}

impl<S> Bottom<S> {
    pub(super) fn new(inner: S) -> Self {
        Bottom { inner }
    }
}

impl<S, Req> Service<Req> for Bottom<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = Answer<S::Response>;
    type Error = BoxError;
    type Future = AnswerFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        AnswerFuture::new(self.inner.call(req))
    }
}

/// An endpoint of a stack's balancer, with its errors boxed, so that one
/// classifier of `Result<&Res, &BoxError>` judges every layer, the
/// balancer's outlier detection included.
#[derive(Debug, Clone)]
pub struct BoxErrors<S> {
    inner: S,
}

impl<S> BoxErrors<S> {
    pub(super) fn new(inner: S) -> Self {
        BoxErrors { inner }
    }
}

impl<S, Req> Service<Req> for BoxErrors<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxErrorsFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        BoxErrorsFuture::new(self.inner.call(req))
    }
}
