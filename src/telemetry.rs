//! The crate's one metrics scheme, behind the `metrics` feature.
//!
//! Every layer resolves its handles here once, when it is built, so a call
//! only increments an existing handle: no registration, no label formatting
//! and no allocation per request. One exception, opted into: the
//! balancer's per-endpoint counter is looked up per request (no allocation
//! either), so that an exporter can drop the series of an endpoint that
//! left (`LookedUpCounter`). Names carry the `bulwark_` prefix and follow
//! Prometheus conventions; every series has the `service` label the user set,
//! and any other label takes values from a fixed set.
//!
//! Handles bind to the recorder installed when the layer is built: install
//! yours (e.g. `metrics-exporter-prometheus`) before building layers.
//! Without the feature, `Scope` and the handles are zero-sized no-ops.

#[cfg(feature = "metrics")]
pub(crate) use self::recorded::*;
#[cfg(not(feature = "metrics"))]
pub(crate) use self::silent::*;

/// A label value: a fixed string, or one chosen by the user when the layer
/// is built (an endpoint's key), never request data.
#[cfg(feature = "metrics")]
pub(crate) type Label = ::metrics::SharedString;
#[cfg(not(feature = "metrics"))]
pub(crate) type Label = std::sync::Arc<str>;

/// The label value of a name the user gave (an endpoint's or a breaker's
/// key): without the `metrics` feature the name itself.
#[cfg(feature = "circuit-breaker")]
#[inline]
pub(crate) fn label(name: &std::sync::Arc<str>) -> Label {
    #[cfg(feature = "metrics")]
    return Label::from(name.clone());
    #[cfg(not(feature = "metrics"))]
    return name.clone();
}

/// Through the `metrics` facade.
#[cfg(feature = "metrics")]
mod recorded {
    use std::sync::Arc;

    pub(crate) use ::metrics::{Counter, Gauge, Histogram};

    use super::Label;

    /// What every metric of the crate measures: the HELP text each series is
    /// registered with, in one place. A test checks that every metric a layer
    /// emits is here, and that the crate docs' table lists the same names.
    pub(crate) const DESCRIPTIONS: &[(&str, &str)] = &[
        (
            "bulwark_requests_total",
            "Calls through the Metrics layer, by outcome (success, failure, ignored, cancelled).",
        ),
        (
            "bulwark_request_duration_seconds",
            "Time from call to answer of the calls that finished.",
        ),
        ("bulwark_requests_in_flight", "Calls under way."),
        (
            "bulwark_cache_requests_total",
            "Cache lookups by result (hit, miss, stale, coalesced).",
        ),
        ("bulwark_cache_entries", "Entries stored in the cache."),
        (
            "bulwark_cache_evictions_total",
            "Cache entries evicted to make room.",
        ),
        (
            "bulwark_retry_requests_total",
            "First attempts seen by the retry layer.",
        ),
        ("bulwark_retry_retries_total", "Retries sent."),
        (
            "bulwark_retry_budget_exhausted_total",
            "Retries the retry budget refused.",
        ),
        (
            "bulwark_circuit_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
        ),
        (
            "bulwark_circuit_transitions_total",
            "Circuit breaker state changes, by from and to.",
        ),
        (
            "bulwark_circuit_rejected_total",
            "Calls the circuit breaker did not send on.",
        ),
        (
            "bulwark_circuit_calls_total",
            "Calls the circuit breaker let through, by outcome.",
        ),
        (
            "bulwark_circuit_slow_calls_total",
            "Calls slower than the breaker's slow-call duration.",
        ),
        ("bulwark_hedge_sent_total", "Second attempts (hedges) sent."),
        ("bulwark_hedge_won_total", "Hedges that answered first."),
        (
            "bulwark_balance_endpoints",
            "Endpoints of the balancer, by state (ready, ejected, pending).",
        ),
        (
            "bulwark_balance_ejections_total",
            "Endpoints ejected by outlier detection.",
        ),
        (
            "bulwark_balance_requests_total",
            "Requests sent to each endpoint.",
        ),
        (
            "bulwark_admission_in_flight",
            "Calls holding a place of an admission-control layer.",
        ),
        (
            "bulwark_admission_limit",
            "The admission-control layer's cap on calls in flight (fixed or learned).",
        ),
        (
            "bulwark_admission_rejected_total",
            "Calls an admission-control layer turned away with Overloaded.",
        ),
    ];

    /// The HELP text of `name`.
    fn description(name: &str) -> &'static str {
        DESCRIPTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, help)| help)
    }

    /// A counter that the recorder is asked for at each increment, rather than
    /// held: for series that come and go (an endpoint's), so that an exporter
    /// that drops idle series (`metrics-exporter-prometheus`'s `idle_timeout`)
    /// drops those whose subject left, and brings back a quiet one when it is
    /// counted again. A held handle, once dropped by the exporter, would count
    /// into nothing. It costs a lookup in the recorder's registry per
    /// increment, and no allocation.
    #[cfg(feature = "balance")]
    #[derive(Debug, Clone)]
    pub(crate) struct LookedUpCounter(Option<::metrics::Key>);

    #[cfg(feature = "balance")]
    impl LookedUpCounter {
        #[inline]
        pub(crate) fn increment(&self, value: u64) {
            static METADATA: ::metrics::Metadata<'static> = ::metrics::Metadata::new(
                module_path!(),
                ::metrics::Level::INFO,
                Some(module_path!()),
            );
            if let Some(key) = &self.0 {
                ::metrics::with_recorder(|recorder| {
                    recorder.register_counter(key, &METADATA).increment(value);
                });
            }
        }
    }

    /// The `service` label of one layer's series (and one more fixed label,
    /// such as a breaker's `key`), and the factory of its handles. Every
    /// series is registered with its HELP text.
    #[derive(Debug, Clone)]
    pub(crate) struct Scope {
        // `None` for a scope whose handles are all no-ops.
        service: Option<Arc<str>>,
        fixed: Vec<(&'static str, Label)>,
    }

    impl Scope {
        pub(crate) fn new(service: Arc<str>) -> Self {
            Scope {
                service: Some(service),
                fixed: Vec::new(),
            }
        }

        /// A scope that registers nothing.
        #[cfg(bulwark_silent_scope)]
        pub(crate) fn silent() -> Self {
            Scope {
                service: None,
                fixed: Vec::new(),
            }
        }

        /// The same scope, with `name="value"` on every series.
        #[cfg(any(
            all(feature = "metrics", feature = "keyed", feature = "http"),
            feature = "circuit-breaker",
            feature = "bulkhead",
            feature = "adaptive",
            feature = "rate-limit"
        ))]
        pub(crate) fn with(mut self, name: &'static str, value: Label) -> Self {
            self.fixed.push((name, value));
            self
        }

        fn labels(
            &self,
            service: &Arc<str>,
            extra: &[(&'static str, Label)],
        ) -> Vec<::metrics::Label> {
            std::iter::once(::metrics::Label::new("service", service.clone()))
                .chain(
                    self.fixed
                        .iter()
                        .chain(extra)
                        .map(|(k, v)| ::metrics::Label::new(*k, v.clone())),
                )
                .collect()
        }

        /// A counter `name{service, extra...}` looked up at each increment
        /// rather than held; a no-op for a silent scope.
        #[cfg(feature = "balance")]
        pub(crate) fn looked_up_counter(
            &self,
            name: &'static str,
            extra: &[(&'static str, Label)],
        ) -> LookedUpCounter {
            let counter = LookedUpCounter(self.service.as_ref().map(|service| {
                ::metrics::describe_counter!(name, description(name));
                ::metrics::Key::from_parts(name, self.labels(service, extra))
            }));
            // The series shows from now, at zero, as the held ones do.
            counter.increment(0);
            counter
        }

        /// A counter `name{service, extra...}`; a no-op for a silent scope.
        pub(crate) fn counter(
            &self,
            name: &'static str,
            extra: &[(&'static str, Label)],
        ) -> Counter {
            match &self.service {
                Some(service) => {
                    ::metrics::describe_counter!(name, description(name));
                    ::metrics::counter!(name, self.labels(service, extra))
                }
                None => Counter::noop(),
            }
        }

        /// A histogram `name{service, extra...}`; a no-op for a silent scope.
        pub(crate) fn histogram(
            &self,
            name: &'static str,
            extra: &[(&'static str, Label)],
        ) -> Histogram {
            match &self.service {
                Some(service) => {
                    ::metrics::describe_histogram!(
                        name,
                        ::metrics::Unit::Seconds,
                        description(name)
                    );
                    ::metrics::histogram!(name, self.labels(service, extra))
                }
                None => Histogram::noop(),
            }
        }

        /// A gauge `name{service, extra...}`; a no-op for a silent scope.
        #[cfg(any(feature = "metrics", bulwark_gauges))]
        pub(crate) fn gauge(&self, name: &'static str, extra: &[(&'static str, Label)]) -> Gauge {
            match &self.service {
                Some(service) => {
                    ::metrics::describe_gauge!(name, description(name));
                    ::metrics::gauge!(name, self.labels(service, extra))
                }
                None => Gauge::noop(),
            }
        }
    }
}

/// Without the `metrics` feature: zero-sized no-ops, with the same names.
#[cfg(not(feature = "metrics"))]
mod silent {
    use std::sync::Arc;

    use super::Label;

    #[derive(Debug, Clone, Default)]
    pub(crate) struct Counter;

    impl Counter {
        #[inline(always)]
        pub(crate) fn increment(&self, _value: u64) {}
    }

    #[cfg(bulwark_gauges)]
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Gauge;

    #[cfg(bulwark_gauges)]
    impl Gauge {
        #[inline(always)]
        pub(crate) fn set(&self, _value: f64) {}
    }

    #[cfg(feature = "balance")]
    #[derive(Debug, Clone, Default)]
    pub(crate) struct LookedUpCounter;

    #[cfg(feature = "balance")]
    impl LookedUpCounter {
        #[inline(always)]
        pub(crate) fn increment(&self, _value: u64) {}
    }

    #[derive(Debug, Clone)]
    pub(crate) struct Scope;

    impl Scope {
        pub(crate) fn new(_service: Arc<str>) -> Self {
            Scope
        }

        #[cfg(bulwark_silent_scope)]
        pub(crate) fn silent() -> Self {
            Scope
        }

        #[cfg(any(
            feature = "circuit-breaker",
            feature = "bulkhead",
            feature = "adaptive",
            feature = "rate-limit"
        ))]
        pub(crate) fn with(self, _name: &'static str, _value: Label) -> Self {
            self
        }

        #[cfg(feature = "balance")]
        pub(crate) fn looked_up_counter(
            &self,
            _name: &'static str,
            _extra: &[(&'static str, Label)],
        ) -> LookedUpCounter {
            LookedUpCounter
        }

        pub(crate) fn counter(
            &self,
            _name: &'static str,
            _extra: &[(&'static str, Label)],
        ) -> Counter {
            Counter
        }

        #[cfg(bulwark_gauges)]
        pub(crate) fn gauge(&self, _name: &'static str, _extra: &[(&'static str, Label)]) -> Gauge {
            Gauge
        }
    }
}
