//! Outcomes known only when a response's body ends.
//!
//! Only the gRPC classifier (feature `grpc`) makes one today; without it,
//! [`PendingOutcome`] exists for [`Classify::at_end`](super::Classify::at_end)'s
//! signature, has no value, and what handles one compiles to nothing.

use std::fmt;
#[cfg(feature = "grpc")]
use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(any(
    feature = "grpc",
    feature = "circuit-breaker",
    feature = "adaptive",
    feature = "metrics"
))]
use super::Outcome;

/// What a recording layer (breaker, outlier detection, metrics) keeps of a
/// call until its outcome is known.
///
/// Dropped without being told an outcome (the response or its body was
/// dropped before the end), it counts the call as its layer counts a call
/// dropped by its caller: nothing for the breaker and outlier detection,
/// `cancelled` for metrics.
#[cfg(any(bulwark_records, test))]
pub(crate) trait Record: Send + Sized + 'static {
    /// Records `outcome`; afterwards `self` records nothing more.
    fn record(&mut self, outcome: Outcome);

    /// Moves what is to be recorded out of `self` (which then records
    /// nothing, dropped or not), for an outcome told later.
    fn defer(&mut self) -> Self;
}

/// A [`Record`] behind a box, told its outcome when the body ends.
#[cfg(feature = "grpc")]
trait Finish: Send {
    fn finish(self: Box<Self>, outcome: Outcome);
}

#[cfg(all(
    feature = "grpc",
    any(
        feature = "circuit-breaker",
        feature = "adaptive",
        feature = "metrics",
        test
    )
))]
impl<R: Record> Finish for R {
    fn finish(mut self: Box<Self>, outcome: Outcome) {
        self.record(outcome);
    }
}

/// How the outcome is read at the end of the body.
#[cfg(feature = "grpc")]
#[derive(Debug, Clone, Copy)]
enum Judge {
    Grpc(super::GrpcClassifier),
}

/// The outcome of a response, to be told when its body ends; see
/// [`Classify::at_end`](super::Classify::at_end).
///
/// Kept in the response's extensions by the classifier that made it, so
/// that every layer the response passes on its way out leaves what it
/// records here, and the body's wrapper (for gRPC,
/// [`GrpcOutcome`](crate::grpc::GrpcOutcome), or the
/// [`ResilienceLayer`](crate::stack::ResilienceLayer) built with `grpc()`)
/// tells them all at once when the body ends. Only the crate makes one.
#[cfg(feature = "grpc")]
#[derive(Clone)]
pub struct PendingOutcome {
    shared: Arc<Shared>,
}

/// Without a classifier that makes one, no value.
#[cfg(not(feature = "grpc"))]
#[derive(Clone)]
pub struct PendingOutcome {
    never: std::convert::Infallible,
}

#[cfg(all(
    not(feature = "grpc"),
    any(feature = "circuit-breaker", feature = "adaptive", feature = "metrics")
))]
impl PendingOutcome {
    pub(crate) fn push<R: Record>(&self, _: Box<R>) {
        match self.never {}
    }
}

#[cfg(not(feature = "grpc"))]
impl fmt::Debug for PendingOutcome {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.never {}
    }
}

#[cfg(feature = "grpc")]
struct Shared {
    judge: Judge,
    state: Mutex<State>,
}

#[cfg(feature = "grpc")]
enum State {
    Waiting(Vec<Box<dyn Finish>>),
    Told(Outcome),
}

#[cfg(feature = "grpc")]
impl PendingOutcome {
    pub(crate) fn grpc(classifier: super::GrpcClassifier) -> Self {
        Self::new(Judge::Grpc(classifier))
    }

    fn new(judge: Judge) -> Self {
        PendingOutcome {
            shared: Arc::new(Shared {
                judge,
                state: Mutex::new(State::Waiting(Vec::with_capacity(4))),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The list stays valid whatever a panicking holder did.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Leaves `record` to be told the outcome; told at once if it is known
    /// already.
    #[cfg(any(bulwark_records, test))]
    pub(crate) fn push<R: Record>(&self, record: Box<R>) {
        let mut state = self.state();
        match &mut *state {
            State::Waiting(waiting) => waiting.push(record),
            State::Told(outcome) => {
                let outcome = *outcome;
                drop(state);
                Finish::finish(record, outcome);
            }
        }
    }

    /// Tells every recorder `outcome`, once; later calls do nothing.
    pub(crate) fn tell(&self, outcome: Outcome) {
        let waiting = {
            let mut state = self.state();
            match std::mem::replace(&mut *state, State::Told(outcome)) {
                State::Waiting(waiting) => waiting,
                told @ State::Told(_) => {
                    *state = told;
                    return;
                }
            }
        };
        for record in waiting {
            record.finish(outcome);
        }
    }

    /// The outcome that the trailers at the end of the body (or their
    /// absence) give.
    pub(crate) fn judge_trailers(&self, trailers: Option<&::http::HeaderMap>) -> Outcome {
        match self.shared.judge {
            Judge::Grpc(classifier) => classifier.judge_trailers(trailers),
        }
    }

    /// Whether `self` and `other` are the same pending outcome.
    #[cfg(test)]
    pub(crate) fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

#[cfg(feature = "grpc")]
impl fmt::Debug for PendingOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let told = match &*self.state() {
            State::Waiting(_) => None,
            State::Told(outcome) => Some(*outcome),
        };
        f.debug_struct("PendingOutcome")
            .field("judge", &self.shared.judge)
            .field("told", &told)
            .finish()
    }
}
