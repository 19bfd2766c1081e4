//! What an admission-control layer reports: calls in flight and its limit
//! (a layer with places), and the calls it turned away.

use std::sync::Arc;

use super::AdmissionEvent;
use crate::event::Emitter;
#[cfg(any(feature = "bulkhead", feature = "adaptive"))]
use crate::telemetry::Gauge;
use crate::telemetry::{Counter, Scope};

/// What a layer reports of its places and rejections.
#[derive(Debug)]
pub(crate) struct Telemetry {
    pub(crate) service: Arc<str>,
    pub(crate) layer: &'static str,
    pub(crate) events: Emitter<AdmissionEvent>,
    #[cfg(any(feature = "bulkhead", feature = "adaptive"))]
    pub(crate) in_flight: Gauge,
    #[cfg(any(feature = "bulkhead", feature = "adaptive"))]
    limit: Gauge,
    rejected: Counter,
}

impl Telemetry {
    /// The telemetry of a layer with places: calls in flight, the limit,
    /// rejections.
    #[cfg(any(feature = "bulkhead", feature = "adaptive"))]
    pub(crate) fn new(
        service: Arc<str>,
        layer: &'static str,
        events: Emitter<AdmissionEvent>,
    ) -> Self {
        let scope = Self::scope(&service, layer);
        Telemetry {
            in_flight: scope.gauge("bulwark_admission_in_flight", &[]),
            limit: scope.gauge("bulwark_admission_limit", &[]),
            rejected: scope.counter("bulwark_admission_rejected_total", &[]),
            service,
            layer,
            events,
        }
    }

    /// The telemetry of a layer without places (a rate limiter): rejections.
    #[cfg(feature = "rate-limit")]
    pub(crate) fn rejections(
        service: Arc<str>,
        layer: &'static str,
        events: Emitter<AdmissionEvent>,
    ) -> Self {
        let scope = Self::scope(&service, layer);
        Telemetry {
            #[cfg(any(feature = "bulkhead", feature = "adaptive"))]
            in_flight: Scope::silent().gauge("bulwark_admission_in_flight", &[]),
            #[cfg(any(feature = "bulkhead", feature = "adaptive"))]
            limit: Scope::silent().gauge("bulwark_admission_limit", &[]),
            rejected: scope.counter("bulwark_admission_rejected_total", &[]),
            service,
            layer,
            events,
        }
    }

    fn scope(service: &Arc<str>, layer: &'static str) -> Scope {
        Scope::new(service.clone()).with("layer", layer.into())
    }

    /// Counts a call turned away, and reports it.
    pub(crate) fn rejected(&self) {
        self.rejected.increment(1);
        self.events.emit(|| AdmissionEvent::Rejected {
            service: self.service.clone(),
            layer: self.layer,
        });
    }

    #[cfg(any(feature = "bulkhead", feature = "adaptive"))]
    pub(crate) fn limit(&self, limit: usize) {
        self.limit.set(limit as f64);
    }
}
