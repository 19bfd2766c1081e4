//! Retries failed calls, within a budget that keeps an outage from turning
//! into a retry storm.
//!
//! [`Retry`] retries a call whose result the classifier (see
//! [`crate::classify`]) calls a [`Failure`](crate::classify::Outcome::Failure),
//! up to [`max_attempts`](RetryConfig::max_attempts) attempts, waiting an
//! exponentially growing, fully jittered time between attempts. A call the
//! circuit breaker rejected ([`CircuitOpen`](crate::circuit_breaker::error::CircuitOpen))
//! is never retried: put this layer *outside* the breaker, as the crate
//! docs recommend.
//!
//! # The budget
//!
//! Every first attempt deposits [`ratio`](crate::budget::BudgetConfig::ratio) of a token
//! and every retry takes one, with a floor of
//! [`min_per_second`](crate::budget::BudgetConfig::min_per_second) tokens per second (Finagle's and Linkerd's defaults: 20 % plus 10 per second). When
//! a service fails every call, the calls it receives are capped at about
//! 1.2 times the calls offered, instead of `max_attempts` times. An
//! exhausted budget is reported as a [`RetryEvent::BudgetExhausted`] and a
//! metric, and the failure is returned as it is.
//!
//! # What is retried, and the request
//!
//! Retry only requests that are safe to repeat: a request that failed may
//! still have taken effect (the answer was lost, or the timeout fired after
//! the work was done). The request is moved into the first attempt, so a
//! copy is kept when a retry is possible (`max_attempts` > 1): by `Clone`
//! ([`ByClone`](crate::request::ByClone), the default), or by a
//! [`CloneRequest`](crate::request::CloneRequest) given to
//! [`RetryLayer::clone_requests_with`], which returns `None` for requests
//! that must not be sent again (see [`crate::request`]). For HTTP,
//! [`Idempotent`](crate::request::Idempotent) (features `http`, `reqwest`) copies `GET`, `HEAD`,
//! `OPTIONS`, `TRACE`, `PUT` and `DELETE` requests and those with an
//! `Idempotency-Key`, and sends any other once.
//!
//! With the `http` feature, [`RetryLayer::respect_retry_after`] makes a
//! `Retry-After` header (in seconds) on a 429 or 503 response set the next
//! wait, capped at [`backoff_max`](RetryConfig::backoff_max).
//!
//! The layer keeps the inner service's error type; it adds no failure of
//! its own. A retry goes through a clone of the service the layer wrapped,
//! made when the retry is sent: a call carries no service of its own
//! (tower's own `Retry` clones the service into every call's future).
//!
//! # Metrics
//!
//! `bulwark_retry_requests_total`, `bulwark_retry_retries_total` and
//! `bulwark_retry_budget_exhausted_total`; [the crate's metrics
//! table](crate#metrics) says what each counts.
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use tower::{service_fn, BoxError, Layer, Service, ServiceExt};
//! use tower_bulwark::retry::{RetryConfig, RetryLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! // Fails twice, then answers.
//! let calls = Arc::new(AtomicU32::new(0));
//! let counted = calls.clone();
//! let flaky = service_fn(move |id: u32| {
//!     let n = counted.fetch_add(1, Ordering::SeqCst);
//!     async move { if n < 2 { Err::<u32, BoxError>("flaky".into()) } else { Ok(id) } }
//! });
//! let mut svc = RetryLayer::new(RetryConfig::default().max_attempts(3))?.layer(flaky);
//! assert_eq!(svc.ready().await?.call(7).await?, 7);
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! # Ok(())
//! # }
//! ```

mod config;
pub mod future;
mod layer;
mod service;

use std::sync::Arc;
use std::time::Duration;

pub use self::config::RetryConfig;
use self::config::Settings;
pub(crate) use self::config::backoff;
pub use self::layer::RetryLayer;
pub use self::service::Retry;
use crate::budget::Budget;
use crate::request::Template;
use crate::telemetry::{Counter, Scope};

/// An event of a retry layer, sent to the hub set with
/// [`RetryConfig::events`] as [`Event::Retry`](crate::event::Event::Retry).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryEvent {
    /// A retry was refused because the budget is empty.
    BudgetExhausted {
        /// The layer's `service` name.
        service: Arc<str>,
    },
}

/// Reads a server's hint of when to retry from a response: [`NoRetryAfter`],
/// [`HttpRetryAfter`] (feature `http`), or a closure
/// `Fn(&Res) -> Option<Duration>`.
pub trait RetryAfter<Res> {
    /// How long the server asked to wait, if it did.
    fn retry_after(&self, response: &Res) -> Option<Duration>;
}

/// No hints: the backoff alone sets the wait. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRetryAfter;

impl<Res> RetryAfter<Res> for NoRetryAfter {
    #[inline]
    fn retry_after(&self, _: &Res) -> Option<Duration> {
        None
    }
}

impl<F, Res> RetryAfter<Res> for F
where
    F: Fn(&Res) -> Option<Duration>,
{
    #[inline]
    fn retry_after(&self, response: &Res) -> Option<Duration> {
        self(response)
    }
}

/// The `Retry-After` header of a 429 or 503 response, in seconds.
/// (The HTTP-date form is not read; such a response uses the backoff.)
#[cfg(feature = "http")]
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpRetryAfter;

#[cfg(feature = "http")]
impl HttpRetryAfter {
    fn read(status: http::StatusCode, headers: &http::HeaderMap) -> Option<Duration> {
        use http::StatusCode;
        if !matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            return None;
        }
        let seconds: u64 = headers
            .get(http::header::RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some(Duration::from_secs(seconds))
    }
}

#[cfg(feature = "http")]
impl<B> RetryAfter<http::Response<B>> for HttpRetryAfter {
    fn retry_after(&self, response: &http::Response<B>) -> Option<Duration> {
        Self::read(response.status(), response.headers())
    }
}

#[cfg(feature = "reqwest")]
impl RetryAfter<reqwest::Response> for HttpRetryAfter {
    fn retry_after(&self, response: &reqwest::Response) -> Option<Duration> {
        Self::read(response.status(), response.headers())
    }
}

/// What every service a retry layer wraps shares: the settings, the budget
/// and the metric handles.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) settings: Settings,
    pub(crate) budget: Budget,
    pub(crate) requests: Counter,
    pub(crate) retries: Counter,
    pub(crate) exhausted: Counter,
}

impl Core {
    pub(crate) fn new(settings: Settings) -> Self {
        let scope = Scope::new(settings.service.clone());
        Core {
            budget: settings.config.budget.build(),
            requests: scope.counter("bulwark_retry_requests_total", &[]),
            retries: scope.counter("bulwark_retry_retries_total", &[]),
            exhausted: scope.counter("bulwark_retry_budget_exhausted_total", &[]),
            settings,
        }
    }
}

/// What one wrapped service and its clones share: the layer's core, the
/// parts that are code, and the service retries go through. Kept behind
/// one `Arc` so that a call clones one pointer, whatever the classifier,
/// copier and hint are.
#[derive(Debug)]
pub(crate) struct Shared<S, C, R, H> {
    pub(crate) core: Arc<Core>,
    pub(crate) classifier: C,
    pub(crate) cloner: R,
    pub(crate) hint: H,
    pub(crate) service: Template<S>,
}
