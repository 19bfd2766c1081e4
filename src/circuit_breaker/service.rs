use std::ops::Deref;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;

use super::error::CircuitOpen;
use super::future::ResponseFuture;
use super::lanes::{Lane, Lanes};
use super::state::{Breaker, Permit};
use super::{CircuitBreakerConfig, CircuitBreakerHandle};
use crate::classify::{Classify, DefaultClassifier, Outcome, Record, cut_off};
use crate::config::ConfigError;
use crate::fallback::{Fallback, NoFallback};

/// Stops calling a failing service. See the [module docs](super).
///
/// Clones share one breaker (made by the layer); a clone never inherits the
/// reservation that `poll_ready` made on the original.
#[derive(Debug)]
pub struct CircuitBreaker<S, C = DefaultClassifier, F = NoFallback> {
    inner: S,
    classifier: C,
    fallback: F,
    reservation: Reservation<Lanes>,
}

impl<S> CircuitBreaker<S> {
    /// Wraps `inner` with a breaker of its own, configured by `config`.
    ///
    /// # Errors
    ///
    /// The first invalid field of `config`, as a [`ConfigError`].
    pub fn new(inner: S, config: CircuitBreakerConfig) -> Result<Self, ConfigError> {
        let breaker = Lanes::new(Arc::new(Breaker::new(config.validate()?)));
        Ok(CircuitBreaker::from_parts(
            inner,
            breaker,
            DefaultClassifier,
            NoFallback,
        ))
    }
}

impl<S, C, F> CircuitBreaker<S, C, F> {
    pub(crate) fn from_parts(inner: S, breaker: Lanes, classifier: C, fallback: F) -> Self {
        CircuitBreaker {
            inner,
            classifier,
            fallback,
            reservation: Reservation::new(breaker),
        }
    }

    /// A handle to read and steer the shared breaker.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::new(self.reservation.breaker.shared().clone())
    }

    inner_service!(into_inner: "A reservation made by `poll_ready` is given back.",);
}

impl<S: Clone, C: Clone, F: Clone> Clone for CircuitBreaker<S, C, F> {
    fn clone(&self) -> Self {
        CircuitBreaker {
            inner: self.inner.clone(),
            classifier: self.classifier.clone(),
            fallback: self.fallback.clone(),
            reservation: Reservation::new(self.reservation.breaker.clone()),
        }
    }
}

impl<S, C, F, Req> Service<Req> for CircuitBreaker<S, C, F>
where
    S: Service<Req>,
    S::Error: Into<crate::BoxError> + 'static,
    C: Classify<S::Response, S::Error> + Clone,
    F: Fallback<Req, S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = F::Error<S::Error>;
    type Future = ResponseFuture<S::Future, C, F::Future, F>;

    /// Decides admission and reserves it: a probe slot while half-open.
    /// A rejected call is ready at once (fail fast), or when the fallback is.
    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let Reservation { breaker, permit } = &mut self.reservation;
        let permit = *permit.get_or_insert_with(|| breaker.acquire(crate::clock::now));
        let ready = match permit {
            Permit::Rejected { .. } => self.fallback.poll_ready(cx),
            _ => self.inner.poll_ready(cx).map_err(F::inner),
        };
        if let Poll::Ready(Err(_)) = ready {
            self.reservation.give_back();
        }
        ready
    }

    // Always inlined: in a stack, the futures beneath are then built in
    // place instead of copied into this one's (a fifth of the default
    // stack's instructions went to such copies).
    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        let breaker = &self.reservation.breaker;
        // Without a prior `poll_ready` (a broken contract) decide now rather
        // than panic.
        let permit = self
            .reservation
            .permit
            .take()
            .unwrap_or_else(|| breaker.acquire(crate::clock::now));
        match permit {
            permit @ Permit::Rejected { .. } => {
                let retry_after = permit.retry_after();
                breaker.on_rejected(retry_after);
                ResponseFuture::rejected(self.fallback.call(req, CircuitOpen::new(retry_after)))
            }
            permit => {
                let start = breaker.times_calls().then(crate::clock::now);
                let mut reservation = Reservation::new(breaker.lane());
                reservation.permit = Some(permit);
                ResponseFuture::called(
                    self.inner.call(req),
                    self.classifier.clone(),
                    Call { reservation, start },
                )
            }
        }
    }
}

/// A permit, and the breaker it came from: through its lanes for a
/// service, through one lane for a call. Dropped unused (a service dropped
/// after `poll_ready`, a response future dropped before completion), it is
/// given back: a probe slot is freed and nothing is counted.
#[derive(Debug)]
pub(crate) struct Reservation<B: Deref<Target = Breaker> = Lane> {
    breaker: B,
    permit: Option<Permit>,
}

impl<B: Deref<Target = Breaker>> Reservation<B> {
    fn new(breaker: B) -> Self {
        Reservation {
            breaker,
            permit: None,
        }
    }

    /// A reservation holding `permit`, acquired from `breaker`.
    #[cfg(feature = "keyed")]
    pub(crate) fn holding(breaker: B, permit: Permit) -> Self {
        Reservation {
            breaker,
            permit: Some(permit),
        }
    }

    fn give_back(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.breaker.release(permit);
        }
    }

    /// Records the outcome of the call this reservation let through.
    #[inline]
    fn complete(&mut self, outcome: Outcome, start: Option<Instant>) {
        if let Some(permit) = self.permit.take() {
            if self.breaker.needs_clock() {
                self.complete_timed(permit, outcome, start);
            } else {
                self.breaker.complete(permit, outcome, None, None);
            }
        }
    }

    /// [`complete`](Self::complete) for a breaker that tells the time:
    /// out of line, so that the one that does not is inlined whole.
    #[inline(never)]
    fn complete_timed(&self, permit: Permit, outcome: Outcome, start: Option<Instant>) {
        let now = crate::clock::now();
        let elapsed = start.map(|start| now.saturating_duration_since(start));
        self.breaker.complete(permit, outcome, elapsed, Some(now));
    }
}

impl<B: Deref<Target = Breaker>> Drop for Reservation<B> {
    fn drop(&mut self) {
        self.give_back();
    }
}

/// A call the breaker let through, until its outcome is recorded.
///
/// Dropped before that, it gives its permit back and counts nothing (the
/// caller gave up), unless the crate's own timeout cut the call off: that
/// is a failure.
#[derive(Debug)]
pub(crate) struct Call {
    reservation: Reservation,
    start: Option<Instant>,
}

impl Call {
    #[cfg(feature = "keyed")]
    pub(crate) fn new(reservation: Reservation, start: Option<Instant>) -> Self {
        Call { reservation, start }
    }
}

impl Record for Call {
    #[inline]
    fn record(&mut self, outcome: Outcome) {
        self.reservation.complete(outcome, self.start);
    }

    fn defer(&mut self) -> Self {
        Call {
            reservation: Reservation {
                breaker: self.reservation.breaker.clone(),
                permit: self.reservation.permit.take(),
            },
            start: self.start,
        }
    }
}

impl Call {
    /// Dropped with its outcome unrecorded: a failure if the crate's own
    /// timeout cut the call off; otherwise the reservation gives the permit
    /// back. Out of line: the success path only checks for a permit.
    #[cold]
    #[inline(never)]
    fn dropped_unfinished(&mut self) {
        if cut_off::active() {
            self.record(Outcome::Failure);
        }
    }
}

impl Drop for Call {
    #[inline]
    fn drop(&mut self) {
        if self.reservation.permit.is_some() {
            self.dropped_unfinished();
        }
    }
}
