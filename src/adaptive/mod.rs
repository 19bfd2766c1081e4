//! A cap on concurrent calls learned from their latency: past it, a call
//! fails at once with [`Overloaded`](crate::error::Overloaded).
//!
//! A fixed [`Bulkhead`](crate::bulkhead::Bulkhead) needs its limit chosen
//! by hand, and the right one moves with the backend (a deploy, a cold
//! cache, a noisy neighbour). [`AdaptiveConcurrency`] finds it: it watches
//! the latency of the calls that succeed, and lowers the limit when latency
//! rises (a queue is forming in the backend) and raises it while latency
//! holds, as Netflix's `concurrency-limits` and Envoy's adaptive concurrency
//! filter do. Offered more than the backend can serve, it turns the excess
//! away at once instead of letting every call wait in the backend's queue
//! until its deadline; the calls it admits keep a latency close to the
//! unloaded one, and the backend keeps serving at its capacity.
//!
//! # How it learns, and how fast
//!
//! Calls are gathered in windows: a window lasts twice its calls' average
//! latency, at least [`min_window`](AdaptiveConfig::min_window) (100 ms) and
//! at most [`max_window`](AdaptiveConfig::max_window) (1 s), and holds at
//! least [`window_samples`](AdaptiveConfig::window_samples) (10) calls. At
//! the end of each window the limit moves once, from the window's average
//! latency, the most calls that were in flight, and whether any call failed:
//!
//! - [`Algorithm::Gradient2`] (the default, Netflix's Gradient2): the
//!   limit is multiplied by the ratio of the long-term average latency (an
//!   exponential average over 600 windows) to the window's, times the
//!   [`tolerance`](AdaptiveConfig::tolerance) (1), kept in [0.5, 1], plus a
//!   queue of 4; the limit moves a fifth of the way there
//!   ([`smoothing`](AdaptiveConfig::smoothing), 0.2). So once latency rises
//!   over its long-term average the limit falls, by at most 10 % per window
//!   (to half in about 7 windows: 0.7 s at the shortest windows), and while
//!   latency holds it grows by 0.8 place per window. It reacts to latency
//!   alone; failures do not move it. Against a backend that queues what it
//!   cannot serve at once, it settles a little over the backend's
//!   concurrency plus 4.
//! - [`Algorithm::Aimd`]: one more place per window that used half of them;
//!   after a window with a failure, a call cut off by the crate's own
//!   timeout, or an average latency over
//!   [`slow_call`](AdaptiveConfig::slow_call), the limit times
//!   [`backoff`](AdaptiveConfig::backoff) (0.9). It reacts to failures and
//!   timeouts, within one window, and not to latency under `slow_call`: it
//!   lets a queue grow up to there.
//! - [`Algorithm::Vegas`]: the backend's queue is estimated as
//!   `limit × (1 − latency without a queue / window latency)`; the limit
//!   grows by 6·log₁₀(limit) places per window while that queue is under
//!   log₁₀(limit), shrinks by log₁₀(limit) when it is over 6·log₁₀(limit)
//!   or a call failed.
//!
//! Gradient2 and Vegas learn a baseline latency, and under load that never
//! lets up they would learn it from loaded windows and let the limit climb
//! without end (in the goodput bench, Gradient2's limit for a backend that
//! serves 16 at once went from 33 after a minute to 75 after ten). So,
//! as Envoy's adaptive concurrency filter does, they probe: after 20 loaded
//! windows, then every 600, the limit drops to a quarter for two windows,
//! the first to drain the backend's queue and the second to measure the
//! latency without one, which becomes the baseline; then the limit comes
//! back. A probe costs a few calls turned away; the limit then stays near
//! the backend's concurrency however long the load lasts.
//!
//! A window in which the calls in flight never reached half the limit
//! leaves it where it is: a limit the callers do not use says nothing. The
//! limit stays within [`min_limit`](AdaptiveConfig::min_limit) and
//! [`max_limit`](AdaptiveConfig::max_limit).
//!
//! What counts is the [classifier](crate::classify)'s verdict: a success
//! gives its latency; a failure, or a call cut off by the crate's own
//! [`Timeout`](crate::timeout::Timeout), is a drop; a call its caller
//! drops, an [`Ignored`](crate::classify::Outcome::Ignored) result and a
//! local rejection beneath teach nothing.
//!
//! # Cost
//!
//! The place is taken with one compare-and-swap in `poll_ready` and given
//! back with one subtraction; a timed call adds its latency to the window
//! with one atomic addition. While windows see fewer than 256 calls every
//! call is timed; past that, one in a power of two (on each thread), so
//! that a window keeps about 256 latencies and a busy service reads the
//! clock on few of its calls. No lock and no allocation on that path: the
//! one call that closes a window takes the limit's lock, once per window,
//! and a call that finds it taken goes on. The state belongs to the layer:
//! every service it wraps, and their clones, share one limit.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, BoxError, Layer, Service, ServiceExt};
//! use tower_bulwark::adaptive::{AdaptiveConcurrencyLayer, AdaptiveConfig};
//! use tower_bulwark::error::Overloaded;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let backend = service_fn(|x: u32| async move {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//!     Ok::<_, BoxError>(x)
//! });
//! let layer = AdaptiveConcurrencyLayer::new(AdaptiveConfig::default().limits(1, 2, 100))?;
//! let mut service = layer.layer(backend);
//! let first = service.ready().await?.call(1);
//! let second = service.clone().ready().await?.call(2);
//! // Two places, both taken: the third call fails at once.
//! let err = service.ready().await?.call(3).await.unwrap_err();
//! assert!(err.is::<Overloaded>());
//! assert_eq!((first.await?, second.await?), (1, 2));
//! # Ok(())
//! # }
//! ```

mod config;
pub mod future;
mod layer;
mod learner;
mod limit;
mod service;

pub use self::config::{AdaptiveConfig, Algorithm};
pub use self::layer::AdaptiveConcurrencyLayer;
#[cfg(feature = "stack")]
pub(crate) use self::learner::Learner;
pub use self::service::AdaptiveConcurrency;
