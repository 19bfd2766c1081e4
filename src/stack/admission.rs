//! The stack's admission control as one service: a rate limit, then a cap
//! on calls in flight (fixed or learned), each optional.
//!
//! One type whatever is on, rather than `Either`s around the standalone
//! layers: each `Either` holds its inner type twice, so three more of them
//! around a stack already made of `Either`s multiplied its type by six,
//! and one test took the compiler 10 GB and 18 minutes to type-check.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use super::ResilienceConfig;
use crate::BoxError;
use crate::adaptive::future::Call;
use crate::adaptive::{AdaptiveConcurrencyLayer, Learner};
use crate::admission::places::{Gate, Place};
use crate::bulkhead::BulkheadLayer;
use crate::classify::Classify;
use crate::config::ConfigError;
use crate::error::Overloaded;
use crate::event::Events;
use crate::rate_limit::{Global, RateLimitLayer, Shared, Turn};

/// The admission-control layers a stack's configuration turns on.
#[derive(Debug, Clone)]
pub(super) struct AdmissionLayers<C> {
    pub(super) rate_limit: Option<RateLimitLayer>,
    pub(super) bulkhead: Option<BulkheadLayer>,
    pub(super) adaptive: Option<AdaptiveConcurrencyLayer<C>>,
}

impl<C> AdmissionLayers<C> {
    /// The layers of `config`'s admission sections, labelled with its
    /// service, sending their events to `events`; the adaptive limit judges
    /// results with `classifier`.
    pub(super) fn new(
        config: &ResilienceConfig,
        events: Option<&Events>,
        classifier: C,
    ) -> Result<Self, ConfigError> {
        let service = || config.service.clone();
        let rate_limit = match config.rate_limit.clone() {
            Some(mut section) => {
                section = section.service(service());
                if let Some(hub) = events {
                    section = section.events(hub);
                }
                Some(RateLimitLayer::new(section).map_err(|e| e.in_section("rate_limit"))?)
            }
            None => None,
        };
        let bulkhead = match config.bulkhead.clone() {
            Some(mut section) => {
                section = section.service(service());
                if let Some(hub) = events {
                    section = section.events(hub);
                }
                Some(BulkheadLayer::new(section).map_err(|e| e.in_section("bulkhead"))?)
            }
            None => None,
        };
        let adaptive = match config.adaptive_concurrency.clone() {
            Some(mut section) => {
                section = section.service(service());
                if let Some(hub) = events {
                    section = section.events(hub);
                }
                let layer = AdaptiveConcurrencyLayer::new(section)
                    .map_err(|e| e.in_section("adaptive_concurrency"))?;
                Some(layer.classify(classifier))
            }
            None => None,
        };
        Ok(AdmissionLayers {
            rate_limit,
            bulkhead,
            adaptive,
        })
    }

    #[cfg(all(feature = "http", feature = "keyed"))]
    pub(super) fn is_on(&self) -> bool {
        self.rate_limit.is_some() || self.bulkhead.is_some() || self.adaptive.is_some()
    }

    /// The cap on calls in flight now, when there is one.
    pub(super) fn concurrency_limit(&self) -> Option<usize> {
        match (&self.bulkhead, &self.adaptive) {
            (Some(bulkhead), _) => Some(bulkhead.limit()),
            (None, Some(adaptive)) => Some(adaptive.limit()),
            (None, None) => None,
        }
    }

    /// Calls holding a place now, when there is a cap.
    pub(super) fn in_flight(&self) -> Option<usize> {
        match (&self.bulkhead, &self.adaptive) {
            (Some(bulkhead), _) => Some(bulkhead.in_flight()),
            (None, Some(adaptive)) => Some(adaptive.in_flight()),
            (None, None) => None,
        }
    }
}

impl<T, C: Clone> Layer<T> for AdmissionLayers<C> {
    type Service = Admission<T, C>;

    fn layer(&self, inner: T) -> Self::Service {
        let cap = match (&self.bulkhead, &self.adaptive) {
            (Some(bulkhead), _) => Cap::Fixed(Gate::new(bulkhead.places().clone())),
            (None, Some(adaptive)) => Cap::Learned(
                Gate::new(adaptive.places().clone()),
                adaptive.classifier().clone(),
            ),
            (None, None) => Cap::Open,
        };
        Admission {
            inner,
            rate: self.rate_limit.as_ref().map(|layer| Rate {
                shared: layer.shared().clone(),
                state: RateState::Idle,
            }),
            cap,
        }
    }
}

enum RateState {
    Idle,
    /// The next call may go.
    Passed,
    /// Waiting for a turn, until the deadline.
    Waiting {
        turn: Pin<Box<Sleep>>,
        deadline: Instant,
    },
    /// No turn within the longest wait: the next call fails.
    Rejected(Overloaded),
}

struct Rate {
    shared: Arc<Shared<Global>>,
    state: RateState,
}

impl Rate {
    /// Takes a turn, waits for one, or gives up: pending only while waiting.
    fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match &mut self.state {
                RateState::Passed | RateState::Rejected(_) => return Poll::Ready(()),
                RateState::Idle => {
                    let deadline = self.shared.deadline();
                    self.state = match self.shared.turn(&(), deadline) {
                        Turn::Now => RateState::Passed,
                        Turn::At(at) => RateState::Waiting {
                            turn: Box::pin(tokio::time::sleep_until(at)),
                            deadline,
                        },
                        Turn::Refused(error) => RateState::Rejected(error),
                    }
                }
                RateState::Waiting { turn, deadline } => {
                    ready!(turn.as_mut().poll(cx));
                    // Ask again: another call may have taken the turn.
                    match self.shared.turn(&(), *deadline) {
                        Turn::Now => self.state = RateState::Passed,
                        Turn::At(at) => turn.as_mut().reset(at),
                        Turn::Refused(error) => self.state = RateState::Rejected(error),
                    }
                }
            }
        }
    }

    /// Whether the call may go: the turn `poll_turn` took, or one now.
    fn take(&mut self) -> Result<(), Overloaded> {
        match std::mem::replace(&mut self.state, RateState::Idle) {
            RateState::Passed => Ok(()),
            RateState::Rejected(error) => Err(error),
            // `call` without `poll_ready`: a turn now, or none.
            RateState::Idle | RateState::Waiting { .. } => {
                match self.shared.turn(&(), crate::clock::now()) {
                    Turn::Now => Ok(()),
                    Turn::At(at) => Err(self
                        .shared
                        .refuse(at.saturating_duration_since(crate::clock::now()))),
                    Turn::Refused(error) => Err(error),
                }
            }
        }
    }
}

enum Cap<C> {
    Open,
    Fixed(Gate),
    Learned(Gate<Learner>, C),
}

/// The admission control of a stack built by
/// [`ResilienceLayer`](super::ResilienceLayer) or
/// [`ServerLayer`](super::ServerLayer): the configuration's rate limit,
/// then its bulkhead or adaptive concurrency limit, as the standalone
/// [`RateLimiter`](crate::rate_limit::RateLimiter),
/// [`Bulkhead`](crate::bulkhead::Bulkhead) and
/// [`AdaptiveConcurrency`](crate::adaptive::AdaptiveConcurrency) do.
pub struct Admission<T, C> {
    inner: T,
    rate: Option<Rate>,
    cap: Cap<C>,
}

impl<T: Clone, C: Clone> Clone for Admission<T, C> {
    /// A clone shares the limits; it holds no turn and no place yet.
    fn clone(&self) -> Self {
        Admission {
            inner: self.inner.clone(),
            rate: self.rate.as_ref().map(|rate| Rate {
                shared: rate.shared.clone(),
                state: RateState::Idle,
            }),
            cap: match &self.cap {
                Cap::Open => Cap::Open,
                Cap::Fixed(gate) => Cap::Fixed(gate.clone()),
                Cap::Learned(gate, classifier) => Cap::Learned(gate.clone(), classifier.clone()),
            },
        }
    }
}

impl<T: std::fmt::Debug, C> std::fmt::Debug for Admission<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<T, C, Req> Service<Req> for Admission<T, C>
where
    T: Service<Req>,
    T::Error: Into<BoxError> + 'static,
    C: Classify<T::Response, T::Error> + Clone,
{
    type Response = T::Response;
    type Error = BoxError;
    type Future = AdmissionFuture<T::Future, C>;

    /// A turn, then a place, then the inner service. With no turn or no
    /// place to be had it is ready all the same, and the call fails with
    /// [`Overloaded`].
    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if let Some(rate) = &mut self.rate {
            ready!(rate.poll_turn(cx));
            if matches!(rate.state, RateState::Rejected(_)) {
                return Poll::Ready(Ok(()));
            }
        }
        let placed = match &mut self.cap {
            Cap::Open => true,
            Cap::Fixed(gate) => ready!(gate.poll_place(cx)),
            Cap::Learned(gate, _) => ready!(gate.poll_place(cx)),
        };
        if placed {
            self.inner.poll_ready(cx).map_err(Into::into)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        // No admission control configured (the default stack): nothing to
        // take, and no call to `admit`, which is kept out of line.
        if self.rate.is_none() && matches!(self.cap, Cap::Open) {
            return AdmissionFuture::called(self.inner.call(req), Hold::Nothing);
        }
        let hold = match self.admit() {
            Ok(hold) => hold,
            Err(error) => return AdmissionFuture::rejected(error),
        };
        AdmissionFuture::called(self.inner.call(req), hold)
    }
}

impl<T, C: Clone> Admission<T, C> {
    /// The turn and the place of the next call, or why it fails.
    #[inline]
    fn admit(&mut self) -> Result<Hold<C>, Overloaded> {
        let turn = self.rate.as_mut().map_or(Ok(()), Rate::take);
        let hold = match &mut self.cap {
            Cap::Open => Hold::Nothing,
            Cap::Fixed(gate) => Hold::Place(gate.take()?),
            Cap::Learned(gate, classifier) => Hold::Learned {
                call: Call::new(gate.take()?),
                classifier: classifier.clone(),
            },
        };
        // Without a turn, the place (if any) is given back at once.
        turn.map(|()| hold)
    }
}

/// What a call holds while it runs.
enum Hold<C> {
    Nothing,
    Place(Place),
    Learned { call: Call, classifier: C },
}

pin_project! {
    /// Response future of [`Admission`].
    pub struct AdmissionFuture<F, C> {
        #[pin]
        state: State<F, C>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, C> {
        Called {
            #[pin]
            future: F,
            hold: Hold<C>,
        },
        Rejected {
            error: Overloaded,
        },
    }
}

impl<F, C> AdmissionFuture<F, C> {
    #[inline(always)]
    fn called(future: F, hold: Hold<C>) -> Self {
        AdmissionFuture {
            state: State::Called { future, hold },
        }
    }

    fn rejected(error: Overloaded) -> Self {
        AdmissionFuture {
            state: State::Rejected { error },
        }
    }
}

impl<F, C, T, E> std::future::Future for AdmissionFuture<F, C>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: Into<BoxError> + 'static,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future, hold } => {
                let mut result = ready!(future.poll(cx));
                match std::mem::replace(hold, Hold::Nothing) {
                    Hold::Learned {
                        mut call,
                        classifier,
                    } => crate::classify::record_backend(&classifier, &mut result, &mut call),
                    // The place is free as soon as the answer is in.
                    Hold::Place(place) => drop(place),
                    Hold::Nothing => {}
                }
                Poll::Ready(result.map_err(Into::into))
            }
            StateProj::Rejected { error } => Poll::Ready(Err(Box::new(*error))),
        }
    }
}

impl<F, C> std::fmt::Debug for AdmissionFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionFuture").finish_non_exhaustive()
    }
}
