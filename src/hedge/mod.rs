//! Sends a second attempt when the first is slow, and takes whichever
//! answers first.
//!
//! [`Hedge`] measures the latency of recent calls. When a call takes longer
//! than a percentile of them ([`HedgeDelay::Percentile`], the 95th by
//! default) or a fixed delay, it sends the same request once more to a
//! clone of the service the layer wrapped, made then. The first *success* wins and the other
//! attempt is dropped (cancelled); a failure (as the classifier judges it,
//! see [`crate::classify`]) wins only once every attempt sent has failed,
//! so a hedge that fails fast never beats a first attempt that would have
//! answered. A budget caps the extra load at 5 % of requests by default.
//! Use it for idempotent requests only (see [`crate::request`]); the
//! request is copied when a hedge is possible.
//!
//! Put it inside the circuit breaker and outside the timeout, so that each
//! attempt has its own deadline.
//!
//! The layer keeps the inner service's error type; it adds no failure of
//! its own. A hedge whose service fails to get ready is not sent.
//!
//! # Metrics
//!
//! `bulwark_hedge_sent_total` and `bulwark_hedge_won_total`; [the crate's
//! metrics table](crate#metrics) says what each counts.
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
mod service;

use std::sync::Arc;

use self::config::Settings;
pub use self::config::{HedgeConfig, HedgeDelay};
use self::histogram::Histogram;
pub use self::layer::HedgeLayer;
pub use self::service::Hedge;
use crate::budget::Budget;
use crate::request::Template;
use crate::telemetry::{Counter, Scope};

/// What every service a hedge layer wraps shares: the latency figures, the
/// budget and the metric handles.
#[derive(Debug)]
pub(crate) struct Core {
    settings: Settings,
    histogram: Histogram,
    budget: Budget,
    sent: Counter,
    won: Counter,
}

impl Core {
    pub(crate) fn new(settings: Settings) -> Self {
        let scope = Scope::new(settings.service.clone());
        let percentile = match settings.config.delay {
            HedgeDelay::Percentile(p) => p,
            HedgeDelay::Fixed(_) => 1.0,
        };
        Core {
            histogram: Histogram::new(percentile, settings.config.minimum_samples),
            budget: settings.config.budget.build(),
            sent: scope.counter("bulwark_hedge_sent_total", &[]),
            won: scope.counter("bulwark_hedge_won_total", &[]),
            settings,
        }
    }

    /// How long to wait before hedging, if a hedge is possible.
    #[inline]
    fn delay(&self) -> Option<std::time::Duration> {
        match self.settings.config.delay {
            HedgeDelay::Fixed(delay) => Some(delay),
            HedgeDelay::Percentile(_) => self.histogram.threshold(),
        }
    }
}

/// What one wrapped service and its clones share: the layer's core, the
/// parts that are code, and the service hedges go through, behind one
/// `Arc` (a call clones one pointer).
#[derive(Debug)]
pub(crate) struct Shared<S, R, C> {
    core: Arc<Core>,
    cloner: R,
    classifier: C,
    service: Template<S>,
}
