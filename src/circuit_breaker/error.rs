//! Error types.

use std::fmt;
use std::time::Duration;

/// The circuit is open: the call was rejected without reaching the inner
/// service.
///
/// [`retry_after`](Self::retry_after) tells how long until the breaker lets
/// a probe through, when that is known: it is `None` while the breaker is
/// forced open or half-open with every probe slot taken. An HTTP server
/// would answer `503 Service Unavailable` with a `Retry-After` header.
///
/// # Example
///
/// ```
/// use tower::BoxError;
/// use tower_bulwark::circuit_breaker::error::CircuitOpen;
///
/// fn status_of(err: &BoxError) -> u16 {
///     if err.is::<CircuitOpen>() { 503 } else { 500 }
/// }
/// # let _ = status_of;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitOpen {
    retry_after: Option<Duration>,
}

impl CircuitOpen {
    pub(crate) fn new(retry_after: Option<Duration>) -> Self {
        CircuitOpen { retry_after }
    }

    /// Time until the next probe may go through, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("circuit open")
    }
}

impl std::error::Error for CircuitOpen {}
