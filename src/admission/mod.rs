//! What the admission-control layers share: their place in a stack, their
//! events and their metrics.
//!
//! Three layers turn work away before it reaches a service that cannot take
//! it, with [`Overloaded`](crate::error::Overloaded):
//!
//! - [`Bulkhead`](crate::bulkhead::Bulkhead) (feature `bulkhead`): a fixed
//!   cap on calls running at once, with an optional bounded wait;
//! - [`AdaptiveConcurrency`](crate::adaptive::AdaptiveConcurrency) (feature
//!   `adaptive`): a cap learned from latency (Gradient2, AIMD or Vegas);
//! - [`RateLimiter`](crate::rate_limit::RateLimiter) (feature `rate-limit`):
//!   calls per unit of time, global or per key.
//!
//! # Their place in a stack
//!
//! On a client, admission control sits **below the cache and above the
//! retry layer and the circuit breaker** (the order
//! [`ResilienceLayer`](crate::stack::ResilienceLayer) builds):
//!
//! - below the cache, so that a cache hit takes no place and no token;
//! - above retries, so that one call takes one place for all its attempts,
//!   and a call turned away is not retried at once into the same full
//!   backend;
//! - above the breaker and the balancer, so that a local rejection, which
//!   says nothing of the backend's health, never reaches their failure
//!   counts. Placed lower by hand, it is still not counted: the breaker and
//!   outlier detection take an [`Overloaded`](crate::error::Overloaded)
//!   error as [`Ignored`](crate::classify::Outcome::Ignored), and a retry
//!   layer does not resend it.
//!
//! On a server, it comes after Metrics and before Timeout (see
//! [`ServerLayer`](crate::stack::ServerLayer)): the metrics see the calls
//! turned away, and the time a call waits for a place does not count
//! against its deadline. A rejection becomes `503 Service Unavailable` with
//! `Retry-After`, or gRPC `RESOURCE_EXHAUSTED`, as
//! [`ErrorKind`](crate::error::ErrorKind) maps it.
//!
//! # Metrics
//!
//! With the `metrics` feature, each layer reports
//! `bulwark_admission_in_flight` (not the rate limiter),
//! `bulwark_admission_limit` and `bulwark_admission_rejected_total`,
//! labelled `service` and `layer` (`bulkhead`, `adaptive_concurrency` or
//! `rate_limit`); [the crate's metrics table](crate#metrics) says what each
//! counts.

#[cfg(any(feature = "bulkhead", feature = "adaptive"))]
pub(crate) mod places;
pub(crate) mod telemetry;

use std::sync::Arc;

/// An event of an admission-control layer; see [`crate::event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdmissionEvent {
    /// A call was turned away with [`Overloaded`](crate::error::Overloaded).
    Rejected {
        /// The layer's `service`.
        service: Arc<str>,
        /// The layer: `bulkhead`, `adaptive_concurrency` or `rate_limit`.
        layer: &'static str,
    },
    /// An adaptive concurrency limit moved.
    LimitChanged {
        /// The layer's `service`.
        service: Arc<str>,
        /// The limit before.
        from: usize,
        /// The limit now.
        to: usize,
    },
}
