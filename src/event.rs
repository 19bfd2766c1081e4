//! Typed events of the stateful layers, for alerting inside the process.
//!
//! Each stateful layer's configuration (breaker, balancer, retry,
//! bulkhead, adaptive limit, rate limiter, and the stack's builders) has an
//! `events` setter that sends its events to an [`Events`] hub, as an
//! [`Event`] that wraps the layer's own type (for example
//! [`CircuitEvent`](crate::circuit_breaker::CircuitEvent)): one place to
//! subscribe to every layer of a process. Events are the hook for alerting
//! inside the process; metrics are the hook for alerting outside it.
//!
//! A subscriber runs on the thread that caused the event, after the layer's
//! own bookkeeping, with no lock of the layer held: it may call back into
//! the layer (for example through a handle), but it should be quick.
//! Delivering an event allocates nothing, and a layer with no hub builds
//! none.
//!
//! With the `tracing` feature, every layer's events are also `tracing`
//! events (whether or not it has a hub), with the layer's `service` as a
//! field and the target `tower_bulwark::<layer>`: state changes at `INFO`
//! (`WARN` for an opened breaker, an ejected or unhealthy endpoint, a failed
//! discovery), what happens per call (a rejected call, a refused retry, a
//! moved concurrency limit) at `DEBUG`.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "circuit-breaker")] {
//! use std::sync::{Arc, Mutex};
//! use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
//! use tower_bulwark::event::{Event, Events};
//!
//! let events = Events::new();
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let log = seen.clone();
//! events.subscribe(move |event: &Event| log.lock().unwrap().push(format!("{event:?}")));
//!
//! let layer = CircuitBreakerLayer::new(CircuitBreakerConfig::default().service("users").events(&events))?;
//! layer.handle().force_open();
//! assert_eq!(seen.lock().unwrap().len(), 1);
//! # }
//! # Ok::<_, tower_bulwark::ConfigError>(())
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

/// An event of any stateful layer, as delivered by an [`Events`] hub.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A circuit breaker's.
    #[cfg(feature = "circuit-breaker")]
    Circuit(crate::circuit_breaker::CircuitEvent),
    /// A load balancer's.
    #[cfg(feature = "balance")]
    Balance(crate::balance::BalanceEvent),
    /// A retry layer's.
    #[cfg(feature = "retry")]
    Retry(crate::retry::RetryEvent),
    /// An admission-control layer's (bulkhead, adaptive limit, rate limiter).
    #[cfg(bulwark_admission)]
    Admission(crate::admission::AdmissionEvent),
}

#[cfg(bulwark_admission)]
impl From<crate::admission::AdmissionEvent> for Event {
    fn from(event: crate::admission::AdmissionEvent) -> Self {
        Event::Admission(event)
    }
}

#[cfg(feature = "circuit-breaker")]
impl From<crate::circuit_breaker::CircuitEvent> for Event {
    fn from(event: crate::circuit_breaker::CircuitEvent) -> Self {
        Event::Circuit(event)
    }
}

#[cfg(feature = "balance")]
impl From<crate::balance::BalanceEvent> for Event {
    fn from(event: crate::balance::BalanceEvent) -> Self {
        Event::Balance(event)
    }
}

#[cfg(feature = "retry")]
impl From<crate::retry::RetryEvent> for Event {
    fn from(event: crate::retry::RetryEvent) -> Self {
        Event::Retry(event)
    }
}

type Subscriber = Arc<dyn Fn(&Event) + Send + Sync>;

/// One place to subscribe to the events of many layers. Clones share the
/// subscribers; give it to each layer's configuration with `events(&hub)`.
///
/// Delivering an event allocates nothing: the subscribers are kept as one
/// shared list, replaced (not copied per event) when one is added.
#[derive(Clone, Default)]
pub struct Events {
    subscribers: Arc<RwLock<Arc<[Subscriber]>>>,
}

impl Events {
    /// A hub with no subscriber yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `callback` with every event published from now on.
    pub fn subscribe(&self, callback: impl Fn(&Event) + Send + Sync + 'static) {
        let mut subscribers = self.subscribers.write().unwrap_or_else(|p| p.into_inner());
        let mut list = subscribers.to_vec();
        list.push(Arc::new(callback));
        *subscribers = list.into();
    }

    fn publish(&self, event: &Event) {
        // The list is taken out of the lock (a reference count, not a
        // copy) so that a callback may subscribe more.
        let subscribers = self
            .subscribers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for subscriber in subscribers.iter() {
            subscriber(event);
        }
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.subscribers.read().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("Events").field("subscribers", &n).finish()
    }
}

/// Where a layer's events go.
pub(crate) enum Emitter<E> {
    /// A layer of the user's: to its [`Events`] hub if it has one, and as
    /// `tracing` events with the `tracing` feature.
    Public(Option<Events>, PhantomData<fn(&E)>),
    /// A layer inside another of the crate's (a balancer's endpoint
    /// breakers): to the outer layer alone, which reports in its own terms.
    #[cfg(feature = "balance")]
    Inner(Arc<dyn Fn(&E) + Send + Sync>),
}

impl<E: Into<Event>> Emitter<E> {
    /// No hub: `tracing` alone, with the feature.
    pub(crate) fn none() -> Self {
        Emitter::Public(None, PhantomData)
    }

    /// To `hub` (and `tracing`, with the feature).
    pub(crate) fn to_hub(hub: &Events) -> Self {
        Emitter::Public(Some(hub.clone()), PhantomData)
    }

    /// To the layer around this one.
    #[cfg(feature = "balance")]
    pub(crate) fn inner(callback: impl Fn(&E) + Send + Sync + 'static) -> Self {
        Emitter::Inner(Arc::new(callback))
    }

    /// Builds the event and delivers it; with nowhere to deliver it, costs
    /// a branch or two and builds nothing.
    #[inline]
    pub(crate) fn emit(&self, event: impl FnOnce() -> E) {
        match self {
            #[cfg(feature = "balance")]
            Emitter::Inner(callback) => callback(&event()),
            Emitter::Public(hub, _) => {
                if hub.is_some() || trace::wanted() {
                    deliver(hub.as_ref(), event().into());
                }
            }
        }
    }
}

#[inline(never)]
fn deliver(hub: Option<&Events>, event: Event) {
    trace::event(&event);
    if let Some(hub) = hub {
        hub.publish(&event);
    }
}

impl<E> Clone for Emitter<E> {
    fn clone(&self) -> Self {
        match self {
            Emitter::Public(hub, _) => Emitter::Public(hub.clone(), PhantomData),
            #[cfg(feature = "balance")]
            Emitter::Inner(callback) => Emitter::Inner(callback.clone()),
        }
    }
}

impl<E> fmt::Debug for Emitter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Emitter::Public(hub, _) => hub.fmt(f),
            #[cfg(feature = "balance")]
            Emitter::Inner(_) => f.write_str("<the outer layer>"),
        }
    }
}

/// Events as `tracing` events (feature `tracing`).
#[cfg(feature = "tracing")]
mod trace {
    use tracing::level_filters::LevelFilter;

    use super::Event;

    /// Whether a subscriber could want any of the events (the least of
    /// their levels is `DEBUG`): one load of a global.
    #[inline]
    pub(super) fn wanted() -> bool {
        LevelFilter::current() >= LevelFilter::DEBUG
    }

    /// Each event at a level of its own: state changes at `INFO` (`WARN`
    /// for an open breaker, an ejected or unhealthy endpoint, a failed
    /// discovery), what happens per call (a rejected call, a refused
    /// retry, a moved limit) at `DEBUG`.
    pub(super) fn event(event: &Event) {
        match event {
            #[cfg(feature = "circuit-breaker")]
            Event::Circuit(event) => circuit(event),
            #[cfg(feature = "balance")]
            Event::Balance(event) => balance(event),
            #[cfg(feature = "retry")]
            Event::Retry(crate::retry::RetryEvent::BudgetExhausted { service }) => {
                tracing::debug!(target: "tower_bulwark::retry", %service, "retry refused: budget exhausted");
            }
            #[cfg(bulwark_admission)]
            Event::Admission(event) => admission(event),
            // (No variant without a layer that has events.)
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    #[cfg(feature = "circuit-breaker")]
    fn circuit(event: &crate::circuit_breaker::CircuitEvent) {
        use crate::circuit_breaker::{CircuitEvent, CircuitState};
        const TARGET: &str = "tower_bulwark::circuit_breaker";
        match event {
            CircuitEvent::StateTransition {
                service,
                key,
                from,
                to,
                reason,
            } => {
                let key = key.as_deref();
                if matches!(to, CircuitState::Open | CircuitState::ForcedOpen) {
                    tracing::warn!(target: TARGET, %service, key, %from, %to, ?reason, "circuit opened");
                } else {
                    tracing::info!(target: TARGET, %service, key, %from, %to, ?reason, "circuit state changed");
                }
            }
            CircuitEvent::CallRejected {
                service,
                key,
                retry_after,
            } => {
                let key = key.as_deref();
                tracing::debug!(target: TARGET, %service, key, ?retry_after, "call rejected: circuit open");
            }
        }
    }

    #[cfg(feature = "balance")]
    fn balance(event: &crate::balance::BalanceEvent) {
        use crate::balance::BalanceEvent::*;
        const TARGET: &str = "tower_bulwark::balance";
        match event {
            EndpointAdded { service, endpoint } => {
                tracing::info!(target: TARGET, %service, %endpoint, "endpoint added");
            }
            EndpointRemoved { service, endpoint } => {
                tracing::info!(target: TARGET, %service, %endpoint, "endpoint removed");
            }
            EndpointEjected { service, endpoint } => {
                tracing::warn!(target: TARGET, %service, %endpoint, "endpoint ejected");
            }
            EndpointReturned { service, endpoint } => {
                tracing::info!(target: TARGET, %service, %endpoint, "endpoint returned");
            }
            EndpointUnhealthy { service, endpoint } => {
                tracing::warn!(target: TARGET, %service, %endpoint, "endpoint unhealthy");
            }
            EndpointHealthy { service, endpoint } => {
                tracing::info!(target: TARGET, %service, %endpoint, "endpoint healthy");
            }
            DiscoveryFailed { service, error } => {
                tracing::warn!(target: TARGET, %service, %error, "discovery failed");
            }
        }
    }

    #[cfg(bulwark_admission)]
    fn admission(event: &crate::admission::AdmissionEvent) {
        use crate::admission::AdmissionEvent;
        const TARGET: &str = "tower_bulwark::admission";
        match event {
            AdmissionEvent::Rejected { service, layer } => {
                tracing::debug!(target: TARGET, %service, layer, "call rejected: overloaded");
            }
            AdmissionEvent::LimitChanged { service, from, to } => {
                tracing::debug!(target: TARGET, %service, from, to, "concurrency limit changed");
            }
        }
    }
}

/// Without the `tracing` feature: no event is wanted, none is sent.
#[cfg(not(feature = "tracing"))]
mod trace {
    #[inline(always)]
    pub(super) fn wanted() -> bool {
        false
    }

    #[inline(always)]
    pub(super) fn event(_: &super::Event) {}
}
