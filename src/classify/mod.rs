//! One notion of success and failure for the whole crate.
//!
//! Every layer that reacts to failures (the circuit breaker, outlier
//! ejection, retries, hedges, the cache and metrics) asks a [`Classify`]
//! implementation what a call's result means. None of them has a notion of
//! failure of its own, so a service that answers `Ok(500)` is judged the
//! same way everywhere once you give the stack one classifier.
//!
//! - [`DefaultClassifier`]: `Err` is a [`Failure`](Outcome::Failure), `Ok` a
//!   [`Success`](Outcome::Success). The default of every layer.
//! - Any closure `Fn(Result<&Res, &Err>) -> Outcome` is a classifier.
//! - With the `http` feature, [`HttpClassifier`] judges `http::Response`
//!   (and, with the `reqwest` feature, `reqwest::Response`) by status: 5xx
//!   except 501, and 429, are failures by default; you can add or remove any
//!   status.
//! - With the `grpc` feature, [`GrpcClassifier`] reads the `grpc-status` of
//!   a gRPC response, in its headers or in the trailers at the end of its
//!   body.
//!
//! # Outcomes known at the end of the body
//!
//! A gRPC server answers HTTP 200 and sends its status in trailers, after
//! the messages: the outcome of such a call is known only when the body
//! ends. A classifier says so through [`Classify::at_end`], and the layers
//! that record outcomes (the breaker, outlier detection, metrics) then
//! record it when the body ends, as tower-http's end-of-stream
//! classification does, rather than when the response arrives. Layers that
//! must decide at once (a retry, a hedge, the cache) take such a response
//! as it comes. See [`GrpcClassifier`] for what reads the trailers.
//!
//! # Calls cut off by a deadline
//!
//! A call that the crate's own [`Timeout`](crate::timeout::Timeout) cuts off
//! is a [`Failure`](Outcome::Failure) for every layer beneath the timeout
//! (outlier detection learns that an endpoint hangs), and the timeout's
//! [`Elapsed`](crate::timeout::error::Elapsed) is one for the layers above
//! it. A call that its caller drops, by contrast, counts as nothing.
//!
//! # Example
//!
//! ```
//! use tower_bulwark::classify::{Classify, DefaultClassifier, Outcome};
//!
//! let ok: Result<u16, &str> = Ok(200);
//! let err: Result<u16, &str> = Err("connection refused");
//! assert_eq!(DefaultClassifier.classify(ok.as_ref()), Outcome::Success);
//! assert_eq!(DefaultClassifier.classify(err.as_ref()), Outcome::Failure);
//!
//! // A closure: a "not found" error is the caller's problem, not the
//! // service's, so it does not count either way.
//! let classify = |result: Result<&u16, &&str>| match result {
//!     Ok(status) if *status >= 500 => Outcome::Failure,
//!     Ok(_) => Outcome::Success,
//!     Err(e) if *e == "not found" => Outcome::Ignored,
//!     Err(_) => Outcome::Failure,
//! };
//! assert_eq!(classify.classify(Ok(&503)), Outcome::Failure);
//! assert_eq!(classify.classify(Err(&"not found")), Outcome::Ignored);
//! ```

pub(crate) mod cut_off;
#[cfg(feature = "grpc")]
mod grpc;
#[cfg(feature = "http")]
mod http;
mod pending;

#[cfg(feature = "grpc")]
pub use self::grpc::GrpcClassifier;
#[cfg(feature = "http")]
pub use self::http::HttpClassifier;
pub use self::pending::PendingOutcome;
#[cfg(any(bulwark_records, test))]
pub(crate) use self::pending::Record;

/// What a call's result means for the layers that count failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The service did its job.
    Success,
    /// The service failed; breakers, outlier ejection and retries react to it.
    Failure,
    /// Neither: the call is not counted at all (a client error the service
    /// is not to blame for, ...).
    Ignored,
}

impl Outcome {
    /// `true` for [`Outcome::Failure`].
    #[inline]
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failure)
    }

    /// The value of the `outcome` metric label: `success`, `failure` or `ignored`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Ignored => "ignored",
        }
    }
}

/// Turns the result of a call into an [`Outcome`].
///
/// Implement it for a type of your own, or pass a closure
/// `Fn(Result<&Res, &Err>) -> Outcome`. The result is passed as
/// `Result<&Res, &Err>` (what `result.as_ref()` gives) so that a layer can
/// judge a response it holds inside a type of its own. See the
/// [module docs](self).
pub trait Classify<Res, Err> {
    /// Classifies one result. Called once per completed call, on the hot path:
    /// keep it cheap and do not allocate.
    ///
    /// For a response whose outcome is known only at the end of its body
    /// ([`at_end`](Self::at_end) gives `Some`), this is the verdict on the
    /// response as it arrived: the layers that must decide at once (retry,
    /// hedge, cache) use it.
    fn classify(&self, result: Result<&Res, &Err>) -> Outcome;

    /// Where the outcome of `response` will be told, when it is known only
    /// once the response's body has ended; `None` (the default) when
    /// [`classify`](Self::classify) already knows it.
    ///
    /// Only the crate's own end-of-stream classifiers ([`GrpcClassifier`])
    /// return `Some`: a [`PendingOutcome`] cannot be made outside the crate.
    #[inline]
    fn at_end(&self, response: &mut Res) -> Option<PendingOutcome> {
        let _ = response;
        None
    }
}

impl<F, Res, Err> Classify<Res, Err> for F
where
    F: Fn(Result<&Res, &Err>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: Result<&Res, &Err>) -> Outcome {
        self(result)
    }
}

/// `Err` is a failure, `Ok` a success: the default of every layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

impl<Res, Err> Classify<Res, Err> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: Result<&Res, &Err>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// Whether `error` is (or was caused by) an
/// [`Overloaded`](crate::error::Overloaded): a call turned away by
/// admission control on this side, which says nothing of the backend.
#[cfg(bulwark_checks_order)]
pub(crate) fn is_local_rejection<E: 'static>(error: &E) -> bool {
    let any = error as &dyn std::any::Any;
    if any.is::<crate::error::Overloaded>() {
        return true;
    }
    let Some(error) = any.downcast_ref::<crate::BoxError>() else {
        return false;
    };
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&**error);
    while let Some(error) = next {
        if error.is::<crate::error::Overloaded>() {
            return true;
        }
        next = error.source();
    }
    false
}

/// [`record`] for the layers that judge the backend (the breaker, outlier
/// detection, an adaptive limit): a local rejection by admission control
/// beneath them is [`Ignored`](Outcome::Ignored), whatever the classifier
/// says.
#[cfg(any(feature = "circuit-breaker", feature = "adaptive"))]
#[inline]
pub(crate) fn record_backend<C, T, E, R>(
    classifier: &C,
    result: &mut Result<T, E>,
    recorder: &mut R,
) where
    C: Classify<T, E>,
    E: 'static,
    R: Record,
{
    if let Err(error) = result {
        if is_local_rejection(error) {
            recorder.record(Outcome::Ignored);
            return;
        }
    }
    record(classifier, result, recorder);
}

/// Records the outcome of `result` with `record`: now, or when the
/// response's body ends if `classifier` says its outcome is known only then.
/// What every recording layer (breaker, outlier detection, metrics) does
/// with a finished call.
#[cfg(any(bulwark_records, test))]
#[inline]
pub(crate) fn record<C, T, E, R>(classifier: &C, result: &mut Result<T, E>, recorder: &mut R)
where
    C: Classify<T, E>,
    R: Record,
{
    if let Ok(response) = result {
        if let Some(pending) = classifier.at_end(response) {
            pending.push(Box::new(recorder.defer()));
            return;
        }
    }
    recorder.record(classifier.classify(result.as_ref()));
}
