use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CircuitState {
    /// Calls go through and their outcomes are counted.
    Closed,
    /// Calls are rejected (or sent to the fallback) until the open period ends.
    Open,
    /// A limited number of probe calls go through; the rest are rejected.
    HalfOpen,
    /// Held open by [`CircuitBreakerHandle::force_open`](super::CircuitBreakerHandle::force_open)
    /// until another state is set by hand.
    ForcedOpen,
    /// Held closed by [`CircuitBreakerHandle::force_closed`](super::CircuitBreakerHandle::force_closed):
    /// outcomes are still counted, but the breaker never trips.
    ForcedClosed,
    /// Switched off by [`CircuitBreakerHandle::disable`](super::CircuitBreakerHandle::disable):
    /// calls go through and nothing is counted.
    Disabled,
}

impl CircuitState {
    /// The name used in metric labels and messages: `closed`, `open`,
    /// `half_open`, `forced_open`, `forced_closed`, `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
            CircuitState::ForcedOpen => "forced_open",
            CircuitState::ForcedClosed => "forced_closed",
            CircuitState::Disabled => "disabled",
        }
    }

    /// The value of the `bulwark_circuit_state` gauge: 0 when calls flow
    /// (closed, forced closed, disabled), 1 half-open, 2 when calls are
    /// rejected (open, forced open).
    pub(crate) fn gauge_value(self) -> f64 {
        match self {
            CircuitState::Closed | CircuitState::ForcedClosed | CircuitState::Disabled => 0.0,
            CircuitState::HalfOpen => 1.0,
            CircuitState::Open | CircuitState::ForcedOpen => 2.0,
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransitionReason {
    /// The failure rate over the window reached its threshold.
    FailureRate,
    /// The slow-call rate over the window reached its threshold.
    SlowCallRate,
    /// The configured number of failures in a row was reached.
    ConsecutiveFailures,
    /// The open period ended; probes may go through.
    OpenElapsed,
    /// A probe failed (or was slow) while half-open.
    ProbeFailed,
    /// Enough probes succeeded while half-open.
    ProbesSucceeded,
    /// Set through a [`CircuitBreakerHandle`](super::CircuitBreakerHandle).
    Manual,
}

/// An event of a circuit breaker, sent to the hub set with
/// [`CircuitBreakerConfig::events`](super::CircuitBreakerConfig::events) as
/// [`Event::Circuit`](crate::event::Event::Circuit).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CircuitEvent {
    /// The breaker went from one state to another.
    StateTransition {
        /// The breaker's `service` name.
        service: Arc<str>,
        /// For one of a layer's breakers per key, the key's label.
        key: Option<Arc<str>>,
        /// The state it left.
        from: CircuitState,
        /// The state it entered.
        to: CircuitState,
        /// Why.
        reason: TransitionReason,
    },
    /// A call was not sent to the inner service (it failed with
    /// [`CircuitOpen`](super::error::CircuitOpen) or went to the fallback).
    CallRejected {
        /// The breaker's `service` name.
        service: Arc<str>,
        /// For one of a layer's breakers per key, the key's label.
        key: Option<Arc<str>>,
        /// Time until the next probe may go through, when known.
        retry_after: Option<Duration>,
    },
}
