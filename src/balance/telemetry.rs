//! The balancer's metrics, events and ejection gate, shared by its endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};

use tokio::time::Instant;

use super::event::BalanceEvent;
use crate::circuit_breaker::state::Gate;
use crate::circuit_breaker::{CircuitEvent, CircuitState};
use crate::event::Emitter;
use crate::telemetry::{Counter, Gauge, LookedUpCounter, Scope};

/// Everything endpoints report to. It refers to no endpoint, so endpoints
/// can hold it without a reference cycle.
#[derive(Debug)]
pub(crate) struct Telemetry {
    pub(crate) service: Arc<str>,
    /// The time origin of the endpoints' response-time figures.
    pub(crate) base: Instant,
    /// The reciprocal of the peak EWMA's time constant, per nanosecond
    /// (unused by the other strategies): a pick multiplies by it twice
    /// where it would divide by the time constant, and a division takes
    /// four or five times as long as a multiplication.
    pub(crate) decay_rate: f64,
    /// The peak EWMA's estimate of an endpoint that has not answered yet,
    /// in nanoseconds.
    pub(crate) default_rtt: f64,
    /// Limits how many endpoints are ejected at once; `None` without
    /// outlier detection.
    pub(crate) gate: Option<Arc<Gate>>,
    pub(crate) events: Emitter<BalanceEvent>,
    scope: Scope,
    endpoints: AtomicUsize,
    busy: AtomicUsize,
    // ready, ejected, pending
    gauges: [Gauge; 3],
    ejections: Counter,
    endpoint_metrics: bool,
    /// Requests in flight over every endpoint, counted for consistent
    /// hashing's load bound only.
    in_flight: AtomicU64,
    /// The latest reading of the clock a call took here, in nanoseconds
    /// since `base`; 0 before the first. See [`Telemetry::recent`].
    recent: AtomicU64,
    /// Endpoints that active health checks found unhealthy.
    unhealthy: AtomicUsize,
}

impl Telemetry {
    pub(crate) fn new(
        service: Arc<str>,
        (decay, default_rtt): (f64, f64),
        gate: Option<Arc<Gate>>,
        events: Emitter<BalanceEvent>,
        endpoint_metrics: bool,
    ) -> Self {
        let scope = Scope::new(service.clone());
        let gauges = ["ready", "ejected", "pending"]
            .map(|state| scope.gauge("bulwark_balance_endpoints", &[("state", state.into())]));
        Telemetry {
            ejections: scope.counter("bulwark_balance_ejections_total", &[]),
            base: Instant::now(),
            decay_rate: decay.recip(),
            default_rtt,
            service,
            gate,
            events,
            scope,
            endpoints: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            gauges,
            endpoint_metrics,
            in_flight: AtomicU64::new(0),
            recent: AtomicU64::new(0),
            unhealthy: AtomicUsize::new(0),
        }
    }

    /// The time a pick decays the endpoints' estimates to, in nanoseconds
    /// since `base`: the latest reading a call took here (sending or
    /// answered), not one of its own, which would cost more than the rest
    /// of the pick (32 ns on the bench machine). Under traffic it is at
    /// most a millisecond and a call old; after a quiet spell the first
    /// pick decays too little, and its answer catches up.
    #[inline]
    pub(crate) fn recent(&self) -> u64 {
        match self.recent.load(Relaxed) {
            0 => super::endpoint::nanos_since(self.base, crate::clock::now()),
            at => at,
        }
    }

    /// The latest reading of the clock a call took here, in nanoseconds
    /// since `base`, without reading it; 0 before the first.
    #[inline]
    pub(crate) fn latest(&self) -> u64 {
        self.recent.load(Relaxed)
    }

    /// Notes a reading of the clock, `at` nanoseconds since `base`; kept
    /// when it is a millisecond past the last one kept, so that callers on
    /// several threads seldom write the shared line.
    #[inline]
    pub(crate) fn note_time(&self, at: u64) {
        if at > self.recent.load(Relaxed).saturating_add(1_000_000) {
            self.recent.store(at, Relaxed);
        }
    }

    /// `bulwark_balance_requests_total{endpoint}`, the key the user gave as
    /// the label, looked up per request so that an exporter's idle timeout
    /// removes the series of an endpoint that left; a no-op unless asked
    /// for (see
    /// [`BalanceConfig::endpoint_metrics`](super::BalanceConfig::endpoint_metrics)).
    pub(crate) fn requests_counter(&self, endpoint: &Arc<str>) -> LookedUpCounter {
        let scope = if self.endpoint_metrics {
            &self.scope
        } else {
            &Scope::silent()
        };
        scope.looked_up_counter(
            "bulwark_balance_requests_total",
            &[("endpoint", crate::telemetry::label(endpoint))],
        )
    }

    #[inline]
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    #[inline]
    pub(crate) fn sent(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    #[inline]
    pub(crate) fn answered(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
    }

    #[inline]
    pub(crate) fn ejected(&self) -> usize {
        self.gate.as_ref().map_or(0, |g| g.open_count())
    }

    #[inline]
    pub(crate) fn endpoints(&self) -> usize {
        self.endpoints.load(Acquire)
    }

    /// Whether too few endpoints are healthy to honour ejections (and
    /// the health checks' verdicts): below `panic_threshold` per cent of
    /// them, or none without outlier detection.
    #[inline]
    pub(crate) fn panicking(&self, panic_threshold: Option<f64>, checked: bool) -> bool {
        let mut down = self.ejected();
        if checked {
            // An endpoint can be both ejected and unhealthy: the larger
            // count is the least that are down, and is not counted twice.
            down = down.max(self.unhealthy.load(Relaxed));
        }
        if down == 0 {
            return false;
        }
        let total = self.endpoints();
        let healthy = total.saturating_sub(down);
        match panic_threshold {
            Some(threshold) => (healthy as f64) * 100.0 < threshold * total as f64,
            None => healthy == 0,
        }
    }

    pub(crate) fn unhealthy_changed(&self, unhealthy: bool) {
        if unhealthy {
            self.unhealthy.fetch_add(1, Relaxed);
        } else {
            self.unhealthy.fetch_sub(1, Relaxed);
        }
    }

    pub(crate) fn health_changed(&self, endpoint: &Arc<str>, healthy: bool) {
        let endpoint = endpoint.clone();
        self.emit(|service| match healthy {
            true => BalanceEvent::EndpointHealthy { service, endpoint },
            false => BalanceEvent::EndpointUnhealthy { service, endpoint },
        });
    }

    pub(crate) fn set_endpoints(&self, n: usize) {
        self.endpoints.store(n, Release);
        if let Some(gate) = &self.gate {
            gate.set_members(n);
        }
        self.refresh();
    }

    pub(crate) fn busy_changed(&self, busy: bool) {
        if busy {
            self.busy.fetch_add(1, AcqRel);
        } else {
            let _ = self
                .busy
                .fetch_update(AcqRel, Acquire, |n| n.checked_sub(1));
        }
        self.refresh();
    }

    fn refresh(&self) {
        let total = self.endpoints();
        let ejected = self.ejected().min(total);
        let busy = self.busy.load(Acquire).min(total - ejected);
        let [ready, ejected_gauge, pending] = &self.gauges;
        ready.set((total - ejected - busy) as f64);
        ejected_gauge.set(ejected as f64);
        pending.set(busy as f64);
    }

    /// Turns an endpoint breaker's transition into the balancer's events and
    /// figures.
    pub(crate) fn on_breaker_event(&self, endpoint: &Arc<str>, event: &CircuitEvent) {
        let CircuitEvent::StateTransition { from, to, .. } = event else {
            return;
        };
        match (from, to) {
            (_, CircuitState::Open) => {
                self.ejections.increment(1);
                self.events.emit(|| BalanceEvent::EndpointEjected {
                    service: self.service.clone(),
                    endpoint: endpoint.clone(),
                });
            }
            (CircuitState::Open, CircuitState::HalfOpen | CircuitState::Closed) => {
                self.events.emit(|| BalanceEvent::EndpointReturned {
                    service: self.service.clone(),
                    endpoint: endpoint.clone(),
                });
            }
            _ => {}
        }
        self.refresh();
    }

    pub(crate) fn emit(&self, event: impl FnOnce(Arc<str>) -> BalanceEvent) {
        self.events.emit(|| event(self.service.clone()));
    }
}
