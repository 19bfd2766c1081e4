//! Future types.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::learner::{Learner, Sample};
use crate::BoxError;
use crate::admission::places::Place;
use crate::classify::{Classify, Outcome, Record, cut_off};
use crate::error::Overloaded;

/// A call under way: its place, and what the limit learns from it.
#[derive(Debug)]
pub(crate) struct Call {
    taken: Option<Taken>,
}

#[derive(Debug)]
struct Taken {
    place: Place<Learner>,
    /// When the call started, if it is one of those timed.
    start: Option<Instant>,
    in_flight: usize,
}

impl Call {
    #[inline]
    pub(crate) fn new(place: Place<Learner>) -> Self {
        let places = place.places();
        let start = places.extra.times().then(crate::clock::now);
        let in_flight = places.in_flight();
        Call {
            taken: Some(Taken {
                place,
                start,
                in_flight,
            }),
        }
    }
}

impl Record for Call {
    /// Tells the limit, then gives the place back.
    #[inline]
    fn record(&mut self, outcome: Outcome) {
        let Some(taken) = self.taken.take() else {
            return;
        };
        let sample = match outcome {
            Outcome::Success => Sample::Latency,
            Outcome::Failure => Sample::Dropped,
            Outcome::Ignored => return,
        };
        let places = taken.place.places();
        places
            .extra
            .sample(places, taken.start, taken.in_flight, sample);
    }

    fn defer(&mut self) -> Self {
        Call {
            taken: self.taken.take(),
        }
    }
}

impl Drop for Call {
    /// Dropped unfinished: a drop for the limit if the crate's own timeout
    /// cut the call off; nothing if its caller gave up.
    fn drop(&mut self) {
        if self.taken.is_some() && cut_off::active() {
            self.record(Outcome::Failure);
        }
    }
}

pin_project! {
    /// Response future of [`AdaptiveConcurrency`](super::AdaptiveConcurrency):
    /// holds the call's place until the call completes (for an outcome
    /// known at the end of the body, until the body ends) or the future is
    /// dropped, and tells the limit how the call went.
    pub struct ResponseFuture<F, C> {
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
            classifier: C,
            call: Call,
        },
        Overloaded {
            error: Overloaded,
        },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(super) fn called(future: F, classifier: C, call: Call) -> Self {
        ResponseFuture {
            state: State::Called {
                future,
                classifier,
                call,
            },
        }
    }

    pub(super) fn overloaded(error: Overloaded) -> Self {
        ResponseFuture {
            state: State::Overloaded { error },
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError> + 'static,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called {
                future,
                classifier,
                call,
            } => {
                let mut result = ready!(future.poll(cx));
                crate::classify::record_backend(&*classifier, &mut result, call);
                Poll::Ready(result.map_err(Into::into))
            }
            StateProj::Overloaded { error } => Poll::Ready(Err(Box::new(*error))),
        }
    }
}

impl<F, C> std::fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
