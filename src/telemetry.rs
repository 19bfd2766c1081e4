//! The crate's one metrics scheme, behind the `metrics` feature.
//!
//! Every layer resolves its handles here once, when it is built, so a call
//! only increments an existing handle: no registration, no label formatting
//! and no allocation per request. Names carry the `bulwark_` prefix and follow
//! Prometheus conventions; every series has the `service` label the user set,
//! and any other label takes values from a fixed set.
//!
//! Handles bind to the recorder installed when the layer is built: install
//! yours (e.g. `metrics-exporter-prometheus`) before building layers.
//! Without the feature these are zero-sized no-ops.

use std::sync::Arc;

#[cfg(feature = "metrics")]
pub(crate) use ::metrics::{Counter, Gauge, Histogram};

/// A label value: a fixed string, or one chosen by the user when the layer
/// is built (an endpoint's key), never request data.
#[cfg(feature = "metrics")]
pub(crate) type Label = ::metrics::SharedString;
#[cfg(not(feature = "metrics"))]
pub(crate) type Label = Arc<str>;

#[cfg(not(feature = "metrics"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct Counter;

#[cfg(not(feature = "metrics"))]
impl Counter {
    #[inline(always)]
    pub(crate) fn increment(&self, _value: u64) {}
}

#[cfg(not(feature = "metrics"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct Gauge;

#[cfg(not(feature = "metrics"))]
impl Gauge {
    #[inline(always)]
    pub(crate) fn set(&self, _value: f64) {}
}

#[cfg(not(feature = "metrics"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct Histogram;

/// The `service` label of one layer's series, and the factory of its handles.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    // `None` for a scope whose handles are all no-ops.
    service: Option<Arc<str>>,
}

impl Scope {
    pub(crate) fn new(service: Arc<str>) -> Self {
        Scope {
            service: Some(service),
        }
    }

    /// A scope that registers nothing.
    pub(crate) fn silent() -> Self {
        Scope { service: None }
    }

    #[cfg(feature = "metrics")]
    fn labels(service: &Arc<str>, extra: &[(&'static str, Label)]) -> Vec<::metrics::Label> {
        std::iter::once(::metrics::Label::new("service", service.clone()))
            .chain(
                extra
                    .iter()
                    .map(|(k, v)| ::metrics::Label::new(*k, v.clone())),
            )
            .collect()
    }

    /// A counter `name{service, extra...}`; a no-op for a silent scope.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn counter(&self, name: &'static str, extra: &[(&'static str, Label)]) -> Counter {
        #[cfg(feature = "metrics")]
        return match &self.service {
            Some(service) => ::metrics::counter!(name, Self::labels(service, extra)),
            None => Counter::noop(),
        };
        #[cfg(not(feature = "metrics"))]
        Counter
    }

    /// A histogram `name{service, extra...}`; a no-op for a silent scope.
    #[cfg(feature = "metrics")]
    pub(crate) fn histogram(
        &self,
        name: &'static str,
        extra: &[(&'static str, Label)],
    ) -> Histogram {
        match &self.service {
            Some(service) => ::metrics::histogram!(name, Self::labels(service, extra)),
            None => Histogram::noop(),
        }
    }

    /// A gauge `name{service, extra...}`; a no-op for a silent scope.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn gauge(&self, name: &'static str, extra: &[(&'static str, Label)]) -> Gauge {
        #[cfg(feature = "metrics")]
        return match &self.service {
            Some(service) => ::metrics::gauge!(name, Self::labels(service, extra)),
            None => Gauge::noop(),
        };
        #[cfg(not(feature = "metrics"))]
        Gauge
    }
}
