//! Sends a second attempt when the first is slow, and takes whichever
//! answers first.
//!
//! [`Hedge`] measures the latency of recent calls. When a call takes longer
//! than a percentile of them ([`HedgeDelay::Percentile`], the 95th by
//! default) or a fixed delay, it sends the same request once more to a
//! clone of the inner service; the first answer wins and the other attempt
//! is dropped (cancelled). A budget caps the extra load at 5 % of requests
//! by default. Use it for idempotent requests only (see
//! [`crate::request`]); the request is copied when a hedge is possible.
//!
//! Put it inside the circuit breaker and outside the timeout, so that each
//! attempt has its own deadline.
//!
//! The layer keeps the inner service's error type; it adds no failure of
//! its own. A hedge whose service fails to get ready is not sent.
//!
//! # Metrics
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `bulwark_hedge_sent_total` | counter | `service` | second attempts sent |
//! | `bulwark_hedge_won_total` | counter | `service` | second attempts that answered first |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, BoxError, Layer, Service, ServiceExt};
//! use tower_bulwark::hedge::{HedgeConfig, HedgeDelay, HedgeLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let slow_then_fast = {
//!     let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//!     service_fn(move |id: u32| {
//!         let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
//!         async move {
//!             let delay = if first { 1_000 } else { 10 };
//!             tokio::time::sleep(Duration::from_millis(delay)).await;
//!             Ok::<_, BoxError>((id, first))
//!         }
//!     })
//! };
//! let layer = HedgeLayer::new(HedgeConfig::default().delay(HedgeDelay::Fixed(Duration::from_millis(50))))?;
//! let mut svc = layer.layer(slow_then_fast);
//! let start = tokio::time::Instant::now();
//! let (id, from_first) = svc.ready().await?.call(7).await?;
//! assert_eq!((id, from_first), (7, false), "the hedge answered");
//! assert_eq!(start.elapsed(), Duration::from_millis(60));
//! # Ok(())
//! # }
//! ```

mod config;
pub mod future;
mod histogram;
mod layer;

use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;

use self::config::Settings;
pub use self::config::{HedgeConfig, HedgeDelay};
use self::future::ResponseFuture;
use self::histogram::Histogram;
pub use self::layer::HedgeLayer;
use crate::budget::Budget;
pub use crate::budget::BudgetConfig;
pub use crate::request::{ByClone, CloneRequest};
use crate::telemetry::{Counter, Scope};

/// What all clones of a hedge layer's services share.
#[derive(Debug)]
pub(crate) struct Shared {
    settings: Settings,
    histogram: Histogram,
    budget: Budget,
    sent: Counter,
    won: Counter,
}

impl Shared {
    pub(crate) fn new(settings: Settings) -> Self {
        let scope = Scope::new(settings.service.clone());
        let percentile = match settings.delay {
            HedgeDelay::Percentile(p) => p,
            HedgeDelay::Fixed(_) => 1.0,
        };
        Shared {
            histogram: Histogram::new(percentile, settings.minimum_samples),
            budget: settings.budget.build(),
            sent: scope.counter("bulwark_hedge_sent_total", &[]),
            won: scope.counter("bulwark_hedge_won_total", &[]),
            settings,
        }
    }

    /// How long to wait before hedging, if a hedge is possible.
    #[inline]
    fn delay(&self) -> Option<std::time::Duration> {
        match self.settings.delay {
            HedgeDelay::Fixed(delay) => Some(delay),
            HedgeDelay::Percentile(_) => self.histogram.threshold(),
        }
    }
}

/// Hedges slow calls. See the [module docs](self).
///
/// Clones share the latency figures and the budget (created by the layer).
#[derive(Debug, Clone)]
pub struct Hedge<S, R = ByClone> {
    inner: S,
    shared: Arc<Shared>,
    cloner: R,
}

impl<S, R> Hedge<S, R> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Shared>, cloner: R) -> Self {
        Hedge {
            inner,
            shared,
            cloner,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R, Req> Service<Req> for Hedge<S, R>
where
    S: Service<Req> + Clone,
    R: CloneRequest<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, S::Future, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.shared.budget.deposit();
        let hedge = self
            .shared
            .delay()
            .and_then(|delay| self.cloner.clone_request(&req).map(|copy| (delay, copy)));
        // The ready service makes this call; a clone takes its place, and
        // another goes with the future for the hedge.
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        let future = service.call(req);
        ResponseFuture::new(
            future,
            Instant::now(),
            hedge.map(|(d, r)| (d, r, service)),
            self.shared.clone(),
        )
    }
}
