//! Stops calling a failing service, and sends its requests elsewhere.
//!
//! A [`CircuitBreaker`] watches the outcomes of the calls it lets through,
//! as judged by a [`Classify`](crate::classify::Classify) implementation
//! ([`DefaultClassifier`](crate::classify::DefaultClassifier): `Err` is a
//! failure). It is in one of three states:
//!
//! - **Closed**: calls go through; their outcomes fill a sliding window
//!   ([`SlidingWindow`]: the last N calls, or the calls of the last T in
//!   buckets). The breaker trips to Open when the failure rate or the
//!   slow-call rate over the window reaches its threshold (once the window
//!   holds [`minimum_calls`](CircuitBreakerConfig::minimum_calls)), or after
//!   a number of failures in a row.
//! - **Open**: calls are not sent to the inner service. They fail at once
//!   with [`CircuitOpen`](error::CircuitOpen), which says how long until the
//!   next probe, or they go to the fallback service given with
//!   [`CircuitBreakerLayer::fallback`]. `poll_ready` reports ready while open
//!   (fail fast, as tower's `LoadShed` does), so callers never wait on a
//!   broken service. The open period is fixed, or grows exponentially with
//!   jitter over consecutive trips ([`OpenDuration`]).
//! - **HalfOpen**: after the open period, up to
//!   [`half_open_probes`](CircuitBreakerConfig::half_open_probes) probe calls
//!   go through at once; that many successes close the breaker, and one
//!   failure (or slow probe) opens it again. Other calls are rejected.
//!
//! A [`CircuitBreakerHandle`] reads the state and window figures and can
//! force the breaker open or closed, disable it, or reset it.
//!
//! # Semantics worth knowing
//!
//! - **Shared state.** The breaker lives behind an `Arc` created by the
//!   layer. Every service the layer wraps and all their clones share it: axum
//!   clones a service per request, and all those clones see one breaker.
//! - **Readiness is a reservation.** `poll_ready` decides whether the next
//!   call goes through and, while half-open, takes a probe slot; `call` uses
//!   that decision. A clone does not inherit it.
//! - **Ignored and dropped calls.** An [`Ignored`](crate::classify::Outcome::Ignored)
//!   outcome is not counted. A response future dropped before it completes
//!   counts as ignored too, and gives back its probe slot, so cancelled calls
//!   never wedge a half-open breaker. Put the [`Timeout`](crate::timeout)
//!   layer *inside* the breaker so that a timeout is an error the breaker
//!   sees, rather than a drop it ignores.
//! - **Late outcomes.** A call admitted in one state that finishes after the
//!   breaker moved on is not counted in the new state's figures.
//!
//! # Cost
//!
//! While closed, a call does a few atomic operations and allocates nothing;
//! it reads the clock only if a slow-call duration or a time window is set.
//! A rejected call costs one clock read and, without a fallback, the boxing
//! of the error. State transitions take a lock; calls never do.
//!
//! # Metrics
//!
//! With the `metrics` feature (handles resolved when the layer is built):
//! `bulwark_circuit_state`, `bulwark_circuit_transitions_total`,
//! `bulwark_circuit_rejected_total`, `bulwark_circuit_calls_total` and
//! `bulwark_circuit_slow_calls_total`; [the crate's metrics
//! table](crate#metrics) gives their labels and what each counts.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, BoxError, Service, ServiceBuilder, ServiceExt};
//! use tower_bulwark::circuit_breaker::{
//!     error::CircuitOpen, CircuitBreakerConfig, CircuitBreakerLayer, CircuitState, OpenDuration,
//! };
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let layer = CircuitBreakerLayer::new(
//!     CircuitBreakerConfig::default()
//!         .service("inventory")
//!         .consecutive_failures(3)
//!         .open_duration(OpenDuration::fixed(Duration::from_secs(10))),
//! )?;
//! let handle = layer.handle();
//! let mut svc = ServiceBuilder::new()
//!     .layer(layer)
//!     .service(service_fn(|_: ()| async { Err::<(), BoxError>("down".into()) }));
//!
//! for _ in 0..3 {
//!     let _ = svc.ready().await?.call(()).await;
//! }
//! assert_eq!(handle.state(), CircuitState::Open);
//!
//! // The inner service is not called while open.
//! let err = svc.ready().await?.call(()).await.unwrap_err();
//! let open = err.downcast_ref::<CircuitOpen>().unwrap();
//! assert_eq!(open.retry_after(), Some(Duration::from_secs(10)));
//! # Ok(())
//! # }
//! ```

mod config;
mod decide;
pub mod error;
mod event;
pub mod future;
#[cfg(feature = "keyed")]
mod keyed;
mod lanes;
mod layer;
mod service;
pub(crate) mod state;
mod window;

use std::sync::Arc;

pub use self::config::{CircuitBreakerConfig, OpenDuration, SlidingWindow};
pub use self::event::{CircuitEvent, CircuitState, TransitionReason};
#[cfg(feature = "keyed")]
pub use self::keyed::{PerKey, PerKeyLayer};
pub use self::layer::CircuitBreakerLayer;
pub use self::service::CircuitBreaker;
use self::state::Breaker;
pub use self::state::CircuitSnapshot;

/// Reads and steers a breaker shared by a layer and its services.
///
/// Get one from [`CircuitBreakerLayer::handle`] or
/// [`CircuitBreaker::handle`]; clones refer to the same breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreakerHandle {
    breaker: Arc<Breaker>,
}

impl CircuitBreakerHandle {
    fn new(breaker: Arc<Breaker>) -> Self {
        CircuitBreakerHandle { breaker }
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        self.breaker.state()
    }

    /// The state and the window's figures.
    pub fn snapshot(&self) -> CircuitSnapshot {
        self.breaker.snapshot()
    }

    /// The breaker's `service` name.
    pub fn service(&self) -> &str {
        self.breaker.service()
    }

    /// Rejects every call until another state is set by hand.
    pub fn force_open(&self) {
        self.breaker.set_state(CircuitState::ForcedOpen);
    }

    /// Lets every call through and keeps counting, but never trips, until
    /// another state is set by hand.
    pub fn force_closed(&self) {
        self.breaker.set_state(CircuitState::ForcedClosed);
    }

    /// Lets every call through and counts nothing, until another state is
    /// set by hand.
    pub fn disable(&self) {
        self.breaker.set_state(CircuitState::Disabled);
    }

    /// Back to Closed with an empty window, whatever the state; the open
    /// period starts again from its base.
    pub fn reset(&self) {
        self.breaker.set_state(CircuitState::Closed);
    }
}
