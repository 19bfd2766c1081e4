//! What the crate's own errors mean to a caller, and their answers in HTTP
//! and gRPC.
//!
//! Every layer keeps the identity of the errors it passes on, so a caller
//! can ask `err.is::<CircuitOpen>()`, `err.is::<Elapsed>()` or
//! `err.is::<NoEndpointAvailable>()` however many layers the error went
//! through (a cache's shared call included). [`ErrorKind::of`] finds them
//! for you, also down an error's source chain, and turns them into what a
//! caller answers:
//!
//! | error | [`ErrorKind`] | HTTP | gRPC |
//! |---|---|---|---|
//! | [`CircuitOpen`](crate::circuit_breaker::error::CircuitOpen) | `CircuitOpen` | 503, `Retry-After` (seconds, rounded up, at least 1) when known | `UNAVAILABLE`, `grpc-retry-pushback-ms` when known |
//! | [`Elapsed`](crate::timeout::error::Elapsed) | `Elapsed` | 504 | `DEADLINE_EXCEEDED` |
//! | [`NoEndpointAvailable`](crate::balance::error::NoEndpointAvailable) | `NoEndpointAvailable` | 503 | `UNAVAILABLE` |
//! | [`Overloaded`] | `Overloaded` | 503, `Retry-After` when known | `RESOURCE_EXHAUSTED`, `grpc-retry-pushback-ms` when known |
//!
//! The answers carry a short plain message ("circuit open") that names no
//! internal address. Any other error is not the crate's: [`http_response`]
//! gives `None` for it, and [`grpc_status`] leaves it to tonic
//! (`Status::from_error`).
//!
//! A retry that the budget refused returns the failure it would have
//! retried, as it was: an `Elapsed` stays an `Elapsed`. The refusal shows
//! in the `bulwark_retry_budget_exhausted_total` metric and as a
//! [`RetryEvent::BudgetExhausted`](crate::retry::RetryEvent::BudgetExhausted).
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "http")] {
//! use std::time::Duration;
//! use tower::{service_fn, BoxError, Layer, Service, ServiceExt};
//! use tower_bulwark::error::{http_response, ErrorKind};
//! use tower_bulwark::timeout::TimeoutLayer;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let slow = service_fn(|_: ()| async {
//!     tokio::time::sleep(Duration::from_secs(5)).await;
//!     Ok::<_, BoxError>("late")
//! });
//! let mut svc = TimeoutLayer::new(Duration::from_secs(1))?.layer(slow);
//! let err = svc.ready().await?.call(()).await.unwrap_err();
//!
//! assert_eq!(ErrorKind::of(&*err), Some(ErrorKind::Elapsed));
//! let response: http::Response<String> = http_response(&*err).expect("the crate's error");
//! assert_eq!(response.status(), http::StatusCode::GATEWAY_TIMEOUT);
//! # Ok(())
//! # }
//! # }
//! ```

use std::error::Error;
use std::time::Duration;

/// One of the crate's own errors, as a caller answers it. See the
/// [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A circuit breaker rejected the call without sending it
    /// ([`CircuitOpen`](crate::circuit_breaker::error::CircuitOpen)).
    CircuitOpen {
        /// Time until the breaker lets a probe through, when known.
        retry_after: Option<Duration>,
    },
    /// The deadline passed ([`Elapsed`](crate::timeout::error::Elapsed)).
    Elapsed,
    /// No endpoint could take the call
    /// ([`NoEndpointAvailable`](crate::balance::error::NoEndpointAvailable)).
    NoEndpointAvailable,
    /// Admission control turned the call away ([`Overloaded`]).
    Overloaded {
        /// How long the caller might wait before trying again, when known.
        retry_after: Option<Duration>,
    },
}

impl ErrorKind {
    /// The crate's error that `error` is, or that caused it (the first in
    /// its source chain); `None` if there is none.
    pub fn of(error: &(dyn Error + 'static)) -> Option<ErrorKind> {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(kind) = Self::itself(error) {
                return Some(kind);
            }
            next = error.source();
        }
        None
    }

    /// The kind of `error` itself, not looking at its sources.
    fn itself(error: &(dyn Error + 'static)) -> Option<ErrorKind> {
        #[cfg(feature = "circuit-breaker")]
        if let Some(open) = error.downcast_ref::<crate::circuit_breaker::error::CircuitOpen>() {
            return Some(ErrorKind::CircuitOpen {
                retry_after: open.retry_after(),
            });
        }
        if error.is::<tower::timeout::error::Elapsed>() {
            return Some(ErrorKind::Elapsed);
        }
        #[cfg(feature = "balance")]
        if error.is::<crate::balance::error::NoEndpointAvailable>() {
            return Some(ErrorKind::NoEndpointAvailable);
        }
        if let Some(overloaded) = error.downcast_ref::<Overloaded>() {
            return Some(ErrorKind::Overloaded {
                retry_after: overloaded.retry_after(),
            });
        }
        None
    }

    /// A short message for a caller, naming no internal address:
    /// `"circuit open"`, `"timed out"`, `"no endpoint available"` or
    /// `"overloaded"`.
    pub fn message(&self) -> &'static str {
        match self {
            ErrorKind::CircuitOpen { .. } => "circuit open",
            ErrorKind::Elapsed => "timed out",
            ErrorKind::NoEndpointAvailable => "no endpoint available",
            ErrorKind::Overloaded { .. } => "overloaded",
        }
    }

    /// The wait before trying again, when known.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            ErrorKind::CircuitOpen { retry_after } | ErrorKind::Overloaded { retry_after } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// When a caller may try again, in whole seconds: the breaker's
    /// remaining wait rounded up, and at least 1 (a `Retry-After: 0` asks
    /// for an immediate retry storm). `None` when unknown.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after().map(|wait| secs_rounded_up(wait).max(1))
    }

    /// The HTTP status a caller answers: 503 for an open circuit, no
    /// endpoint or an overload, 504 for an elapsed deadline.
    #[cfg(feature = "http")]
    pub fn http_status(&self) -> http::StatusCode {
        match self {
            ErrorKind::CircuitOpen { .. }
            | ErrorKind::NoEndpointAvailable
            | ErrorKind::Overloaded { .. } => http::StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Elapsed => http::StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The HTTP response a caller answers: [`http_status`](Self::http_status),
    /// a `Retry-After` header when known, and [`message`](Self::message) as
    /// a plain-text body.
    #[cfg(feature = "http")]
    pub fn http_response<B: From<&'static str>>(&self) -> http::Response<B> {
        let mut response = http::Response::new(B::from(self.message()));
        *response.status_mut() = self.http_status();
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }

    /// The gRPC status a caller answers: `UNAVAILABLE` for an open circuit
    /// or no endpoint, `RESOURCE_EXHAUSTED` for an overload (with the wait
    /// in `grpc-retry-pushback-ms` when known), `DEADLINE_EXCEEDED` for an
    /// elapsed deadline.
    #[cfg(feature = "grpc")]
    pub fn grpc_status(&self) -> tonic::Status {
        let code = match self {
            ErrorKind::CircuitOpen { .. } | ErrorKind::NoEndpointAvailable => {
                tonic::Code::Unavailable
            }
            ErrorKind::Overloaded { .. } => tonic::Code::ResourceExhausted,
            ErrorKind::Elapsed => tonic::Code::DeadlineExceeded,
        };
        let mut status = tonic::Status::new(code, self.message());
        if let Some(wait) = self.retry_after() {
            let millis = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            status
                .metadata_mut()
                .insert("grpc-retry-pushback-ms", millis.into());
        }
        status
    }
}

/// Admission control turned the call away before it reached the inner
/// service: the caller's own side is at capacity, which says nothing of the
/// backend's health.
///
/// [`retry_after`](Self::retry_after) is how long the caller might wait
/// before trying again, when the layer knows. An HTTP server answers
/// `503 Service Unavailable` with `Retry-After`; gRPC `RESOURCE_EXHAUSTED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded {
    layer: &'static str,
    retry_after: Option<Duration>,
}

impl Overloaded {
    #[cfg(bulwark_admission)]
    pub(crate) fn new(layer: &'static str, retry_after: Option<Duration>) -> Self {
        Overloaded { layer, retry_after }
    }

    /// The wait before trying again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The layer that turned the call away (`"bulkhead"`).
    pub fn layer(&self) -> &'static str {
        self.layer
    }
}

impl std::fmt::Display for Overloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "overloaded: the {} turned the call away", self.layer)
    }
}

impl Error for Overloaded {}

/// `duration` in whole seconds, rounded up.
fn secs_rounded_up(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

/// The HTTP response a caller answers `error` with, if it is (or was
/// caused by) one of the crate's errors; see [`ErrorKind::http_response`].
/// `None` for any other error: answer it as you see fit (a gateway's 502).
#[cfg(feature = "http")]
pub fn http_response<B: From<&'static str>>(
    error: &(dyn Error + 'static),
) -> Option<http::Response<B>> {
    ErrorKind::of(error).map(|kind| kind.http_response())
}

/// `error` as the `tonic::Status` a gRPC caller gets.
///
/// One of the crate's errors becomes its [`ErrorKind::grpc_status`], with
/// `error` as its source (so `std::error::Error::source` still finds the
/// `CircuitOpen`); a `Status` (or one in the source chain) is kept; any
/// other error is left to `tonic::Status::from_error` (transport errors
/// become `UNAVAILABLE`, the rest `UNKNOWN`).
#[cfg(feature = "grpc")]
pub fn grpc_status(error: crate::BoxError) -> tonic::Status {
    match ErrorKind::of(&*error) {
        Some(kind) if !has_status(&*error) => {
            let mut status = kind.grpc_status();
            status.set_source(std::sync::Arc::from(error));
            status
        }
        _ => tonic::Status::from_error(error),
    }
}

/// Whether a `tonic::Status` is in `error`'s source chain.
#[cfg(feature = "grpc")]
fn has_status(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<tonic::Status>() {
            return true;
        }
        next = error.source();
    }
    false
}

/// A new error of the same type as `error`, when it is one of the crate's
/// own (whose types carry no more than their kind): what the cache gives
/// each caller that shared a call, so that `is::<Elapsed>()` holds for all
/// of them.
#[cfg(feature = "cache")]
pub(crate) fn reissue(error: &(dyn Error + 'static)) -> Option<crate::BoxError> {
    #[cfg(feature = "circuit-breaker")]
    if let Some(open) = error.downcast_ref::<crate::circuit_breaker::error::CircuitOpen>() {
        return Some(Box::new(*open));
    }
    if error.is::<tower::timeout::error::Elapsed>() {
        return Some(Box::new(tower::timeout::error::Elapsed::new()));
    }
    #[cfg(feature = "balance")]
    if let Some(none) = error.downcast_ref::<crate::balance::error::NoEndpointAvailable>() {
        return Some(Box::new(none.reissue()));
    }
    if let Some(overloaded) = error.downcast_ref::<Overloaded>() {
        return Some(Box::new(*overloaded));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxError;

    #[derive(Debug)]
    struct Wrapped(BoxError);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn retry_after_is_rounded_up_and_never_zero() {
        let open = |ms| ErrorKind::CircuitOpen {
            retry_after: Some(Duration::from_millis(ms)),
        };
        assert_eq!(open(2000).retry_after_secs(), Some(2));
        assert_eq!(open(1001).retry_after_secs(), Some(2));
        assert_eq!(open(1).retry_after_secs(), Some(1));
        assert_eq!(open(0).retry_after_secs(), Some(1));
        assert_eq!(
            ErrorKind::CircuitOpen { retry_after: None }.retry_after_secs(),
            None
        );
        assert_eq!(ErrorKind::Elapsed.retry_after_secs(), None);
    }

    #[test]
    fn kinds_are_found_down_the_source_chain() {
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        let wrapped = Wrapped(Box::new(Wrapped(elapsed)));
        assert_eq!(ErrorKind::of(&wrapped), Some(ErrorKind::Elapsed));
        let other: BoxError = "connection refused".into();
        assert_eq!(ErrorKind::of(&*other), None);
        let copy = reissue(&tower::timeout::error::Elapsed::new()).unwrap();
        assert!(copy.is::<tower::timeout::error::Elapsed>());
        assert!(reissue(&*other).is_none());
    }

    #[cfg(feature = "http")]
    #[test]
    fn http_answers_name_no_address() {
        let open = ErrorKind::CircuitOpen {
            retry_after: Some(Duration::from_millis(1500)),
        };
        let response: http::Response<String> = open.http_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "2");
        assert_eq!(response.body(), "circuit open");
        let response: http::Response<String> = ErrorKind::NoEndpointAvailable.http_response();
        assert_eq!(response.status(), 503);
        assert!(response.headers().get(http::header::RETRY_AFTER).is_none());
        let other: BoxError = "10.0.0.7:8080 refused".into();
        assert!(http_response::<String>(&*other).is_none());
    }

    #[cfg(all(feature = "grpc", feature = "circuit-breaker"))]
    #[test]
    fn grpc_statuses_keep_the_error_as_their_source() {
        use crate::circuit_breaker::error::CircuitOpen;
        let open: BoxError = Box::new(CircuitOpen::new(Some(Duration::from_millis(250))));
        let status = grpc_status(open);
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(status.message(), "circuit open");
        assert_eq!(
            status.metadata().get("grpc-retry-pushback-ms").unwrap(),
            "250"
        );
        assert!(status.source().unwrap().is::<CircuitOpen>());

        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(grpc_status(elapsed).code(), tonic::Code::DeadlineExceeded);
        let kept: BoxError = Box::new(tonic::Status::not_found("no such user"));
        assert_eq!(grpc_status(kept).code(), tonic::Code::NotFound);
    }
}
