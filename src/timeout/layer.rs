use std::time::Duration;

use tower_layer::Layer;

use super::Timeout;
use crate::config::{Check, ConfigError};
use crate::fallback::{NoFallback, WithFallback};

/// Applies a [`Timeout`] to requests. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct TimeoutLayer<F = NoFallback> {
    timeout: Duration,
    fallback: F,
}

impl TimeoutLayer {
    /// A layer whose services fail a request with
    /// [`Elapsed`](super::error::Elapsed) when it takes longer than `timeout`.
    ///
    /// # Errors
    ///
    /// A zero `timeout` is a [`ConfigError`] naming the field `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, ConfigError> {
        Check::layer("timeout").duration("timeout", timeout)?;
        Ok(TimeoutLayer {
            timeout,
            fallback: NoFallback,
        })
    }
}

impl<F> TimeoutLayer<F> {
    /// Answers requests whose deadline passed from `fallback` instead of
    /// failing them.
    ///
    /// The request was moved into the inner call, so each call keeps a clone
    /// of it (and of `fallback`) for the fallback to use: the request type
    /// must be `Clone`. This clone is made only when a fallback is set.
    pub fn fallback<G>(self, fallback: G) -> TimeoutLayer<WithFallback<G>> {
        TimeoutLayer {
            timeout: self.timeout,
            fallback: WithFallback::new(fallback),
        }
    }

    /// Answers requests whose deadline passed by itself, on a server:
    /// with a 504 (or the status set with
    /// [`Respond::timeout_status`](crate::server::Respond::timeout_status)),
    /// or a gRPC `DEADLINE_EXCEEDED`. No copy of the request is kept, and
    /// the inner service's error type is kept (axum's `Infallible`). See
    /// [`crate::server`].
    #[cfg(feature = "http")]
    pub fn respond<P>(
        self,
        respond: crate::server::Respond<P>,
    ) -> TimeoutLayer<crate::server::Respond<P>> {
        TimeoutLayer {
            timeout: self.timeout,
            fallback: respond,
        }
    }

    /// The deadline of each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl<S, F: Clone> Layer<S> for TimeoutLayer<F> {
    type Service = Timeout<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::from_parts(inner, self.timeout, self.fallback.clone())
    }
}
