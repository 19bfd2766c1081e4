//! The classifier of gRPC responses.

use http::HeaderMap;
use tonic::Code;

use super::{Classify, Outcome, PendingOutcome};

/// Every gRPC status code, in the order of their numbers.
const CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

/// Classifies gRPC responses by their `grpc-status`; any `Err` (a transport
/// error) is a failure.
///
/// A gRPC server answers HTTP 200 and sends the call's status either in the
/// headers of a response without a body (a "trailers-only" response, what
/// tonic sends when a handler fails at once) or in the trailers after the
/// messages (the normal case, and every streaming error). This classifier
/// reads the headers; when the status is not there, the outcome is known
/// only at the end of the body, and [`at_end`](Classify::at_end) says so:
/// the layers that record outcomes (the breaker, outlier detection,
/// metrics) then record it when the body ends. For that, the body must pass
/// through [`GrpcOutcome`](crate::grpc::GrpcOutcome), outermost (the
/// [`ResilienceLayer`](crate::stack::ResilienceLayer) built with `grpc()`
/// does it for you); a body dropped before its end records nothing.
///
/// By default `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`,
/// `INTERNAL`, `UNKNOWN` and `DATA_LOSS` are failures. Every other status is
/// a success: the service answered, and a `NOT_FOUND` or
/// `INVALID_ARGUMENT` is the caller's business (as a 404 is for
/// [`HttpClassifier`](super::HttpClassifier)). A response without a
/// `grpc-status` whose HTTP status is not 200 (a proxy's error page) gets
/// the code the gRPC specification maps that HTTP status to; a body that
/// ends without one is `UNKNOWN`.
///
/// The layers that must decide when the response arrives (a retry, a
/// hedge, the cache) see a response whose status is still to come as a
/// success.
///
/// # Example
///
/// ```
/// use tonic::Code;
/// use tower_bulwark::classify::{Classify, GrpcClassifier, Outcome};
///
/// let trailers_only = |code: Code| -> Result<http::Response<()>, std::io::Error> {
///     Ok(http::Response::builder()
///         .header("grpc-status", (code as i32).to_string())
///         .body(())
///         .unwrap())
/// };
/// let classifier = GrpcClassifier::default();
/// assert_eq!(classifier.classify(trailers_only(Code::Unavailable).as_ref()), Outcome::Failure);
/// assert_eq!(classifier.classify(trailers_only(Code::NotFound).as_ref()), Outcome::Success);
///
/// // ABORTED counts too, for this service.
/// let strict = GrpcClassifier::default().failure_code(Code::Aborted);
/// assert_eq!(strict.classify(trailers_only(Code::Aborted).as_ref()), Outcome::Failure);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GrpcClassifier {
    // Bit `n` is set when code `n` is a failure.
    failing: u32,
}

impl GrpcClassifier {
    /// `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `INTERNAL`,
    /// `UNKNOWN` and `DATA_LOSS` are failures.
    pub fn new() -> Self {
        [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Internal,
            Code::Unknown,
            Code::DataLoss,
        ]
        .into_iter()
        .fold(Self::none(), Self::failure_code)
    }

    /// No status is a failure; only `Err` results are.
    pub fn none() -> Self {
        GrpcClassifier { failing: 0 }
    }

    /// Counts `code` as a failure.
    pub fn failure_code(mut self, code: Code) -> Self {
        self.failing |= 1 << (code as u32);
        self
    }

    /// Counts `code` as a success.
    pub fn success_code(mut self, code: Code) -> Self {
        self.failing &= !(1 << (code as u32));
        self
    }

    /// Whether `code` counts as a failure.
    #[inline]
    pub fn is_failure(&self, code: Code) -> bool {
        self.failing & (1 << (code as u32)) != 0
    }

    #[inline]
    fn judge(&self, code: Code) -> Outcome {
        if self.is_failure(code) {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }

    /// The outcome the trailers at the end of a body give: their
    /// `grpc-status`, or `UNKNOWN` without one.
    pub(crate) fn judge_trailers(&self, trailers: Option<&HeaderMap>) -> Outcome {
        self.judge(trailers.and_then(status_in).unwrap_or(Code::Unknown))
    }
}

/// The `grpc-status` in `headers`, if there is one.
fn status_in(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?;
    let code = std::str::from_utf8(value.as_bytes())
        .ok()
        .and_then(|v| v.trim().parse::<i32>().ok());
    Some(code.map_or(Code::Unknown, Code::from_i32))
}

/// The code of a response without a `grpc-status` and with an HTTP status
/// other than 200, as the gRPC specification maps HTTP statuses
/// (`doc/http-grpc-status-mapping.md`).
fn code_of_http_status(status: http::StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502..=504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

impl Default for GrpcClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for GrpcClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let failing: Vec<Code> = CODES.into_iter().filter(|&c| self.is_failure(c)).collect();
        f.debug_struct("GrpcClassifier")
            .field("failing", &failing)
            .finish()
    }
}

impl<B, E> Classify<http::Response<B>, E> for GrpcClassifier {
    #[inline]
    fn classify(&self, result: Result<&http::Response<B>, &E>) -> Outcome {
        let Ok(response) = result else {
            return Outcome::Failure;
        };
        match status_in(response.headers()) {
            Some(code) => self.judge(code),
            None if response.status() != http::StatusCode::OK => {
                self.judge(code_of_http_status(response.status()))
            }
            // The status comes in the trailers: the response itself is an
            // answer so far.
            None => Outcome::Success,
        }
    }

    fn at_end(&self, response: &mut http::Response<B>) -> Option<PendingOutcome> {
        if response.status() != http::StatusCode::OK || status_in(response.headers()).is_some() {
            return None;
        }
        let extensions = response.extensions_mut();
        if let Some(pending) = extensions.get::<PendingOutcome>() {
            return Some(pending.clone());
        }
        let pending = PendingOutcome::grpc(*self);
        extensions.insert(pending.clone());
        Some(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_end(c: &GrpcClassifier, r: &mut http::Response<()>) -> Option<PendingOutcome> {
        <GrpcClassifier as Classify<http::Response<()>, ()>>::at_end(c, r)
    }

    fn response(status: u16, grpc_status: Option<&str>) -> Result<http::Response<()>, ()> {
        let mut builder = http::Response::builder().status(status);
        if let Some(code) = grpc_status {
            builder = builder.header("grpc-status", code);
        }
        Ok(builder.body(()).unwrap())
    }

    #[test]
    fn the_default_failures_are_the_six_server_side_codes() {
        let c = GrpcClassifier::default();
        let failing: Vec<Code> = CODES.into_iter().filter(|&c2| c.is_failure(c2)).collect();
        assert_eq!(
            failing,
            vec![
                Code::Unknown,
                Code::DeadlineExceeded,
                Code::ResourceExhausted,
                Code::Internal,
                Code::Unavailable,
                Code::DataLoss
            ]
        );
        for code in CODES {
            let r = response(200, Some(&(code as i32).to_string()));
            assert_eq!(c.classify(r.as_ref()).is_failure(), c.is_failure(code));
        }
    }

    #[test]
    fn codes_can_be_added_and_removed() {
        let c = GrpcClassifier::default()
            .failure_code(Code::Aborted)
            .success_code(Code::Unknown);
        assert!(c.is_failure(Code::Aborted));
        assert!(!c.is_failure(Code::Unknown));
        assert!(c.is_failure(Code::Unavailable));
        assert_eq!(
            format!("{:?}", GrpcClassifier::none().failure_code(Code::Internal)),
            "GrpcClassifier { failing: [Internal] }"
        );
    }

    #[test]
    fn a_status_in_the_headers_is_judged_at_once() {
        let c = GrpcClassifier::default();
        let mut r = response(200, Some("14")).unwrap();
        assert_eq!(c.classify(Ok::<_, &()>(&r)), Outcome::Failure);
        assert!(at_end(&c, &mut r).is_none());
        // Not a number: UNKNOWN.
        assert_eq!(
            c.classify(response(200, Some("x")).as_ref()),
            Outcome::Failure
        );
        assert_eq!(
            c.classify(Err::<&http::Response<()>, _>(&())),
            Outcome::Failure
        );
    }

    #[test]
    fn without_a_status_the_outcome_waits_for_the_trailers() {
        let c = GrpcClassifier::default();
        let mut r = response(200, None).unwrap();
        assert_eq!(c.classify(Ok::<_, &()>(&r)), Outcome::Success);
        let first = at_end(&c, &mut r).expect("pending");
        let second = at_end(&c, &mut r).expect("the same pending outcome");
        assert!(
            first.same(&second),
            "one per response, shared by every layer"
        );

        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "14".parse().unwrap());
        assert_eq!(first.judge_trailers(Some(&trailers)), Outcome::Failure);
        trailers.insert("grpc-status", "0".parse().unwrap());
        assert_eq!(first.judge_trailers(Some(&trailers)), Outcome::Success);
        assert_eq!(
            first.judge_trailers(None),
            Outcome::Failure,
            "no status: UNKNOWN"
        );
    }

    #[test]
    fn an_http_error_without_a_status_is_mapped_as_the_spec_says() {
        let c = GrpcClassifier::default();
        let mut r = response(503, None).unwrap();
        assert_eq!(c.classify(Ok::<_, &()>(&r)), Outcome::Failure);
        assert!(at_end(&c, &mut r).is_none());
        assert_eq!(
            c.classify(response(404, None).as_ref()),
            Outcome::Success,
            "UNIMPLEMENTED"
        );
        assert_eq!(
            c.classify(response(500, None).as_ref()),
            Outcome::Failure,
            "UNKNOWN"
        );
    }
}
