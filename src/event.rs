//! Typed events of the stateful layers, for alerting inside the process.
//!
//! Each stateful layer's configuration has an `on_event` setter taking a
//! closure over its own event type (for example
//! [`CircuitEvent`](crate::circuit_breaker::CircuitEvent)), and an
//! `events` setter that sends them all to one [`Events`] hub instead, as an
//! [`Event`]: one place to subscribe to every breaker, balancer and retry
//! layer of a process. Events are the hook for alerting inside the process;
//! metrics are the hook for alerting outside it.
//!
//! A callback runs on the thread that caused the event, after the layer's
//! own bookkeeping, with no lock of the layer held: it may call back into
//! the layer (for example through a handle), but it should be quick.
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
    #[cfg(any(feature = "bulkhead", feature = "adaptive", feature = "rate-limit"))]
    Admission(crate::admission::AdmissionEvent),
}

#[cfg(any(feature = "bulkhead", feature = "adaptive", feature = "rate-limit"))]
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
#[derive(Clone, Default)]
pub struct Events {
    subscribers: Arc<RwLock<Vec<Subscriber>>>,
}

impl Events {
    /// A hub with no subscriber yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `callback` with every event published from now on.
    pub fn subscribe(&self, callback: impl Fn(&Event) + Send + Sync + 'static) {
        self.subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(callback));
    }

    fn publish(&self, event: &Event) {
        // Callers are cloned out so that a callback may subscribe more.
        let subscribers: Vec<Subscriber> = self
            .subscribers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for subscriber in subscribers {
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

type Callback<E> = Arc<dyn Fn(&E) + Send + Sync>;

/// A callback that receives a layer's events.
pub(crate) struct Emitter<E> {
    callback: Option<Callback<E>>,
}

impl<E> Emitter<E> {
    pub(crate) fn none() -> Self {
        Emitter { callback: None }
    }

    pub(crate) fn new(callback: impl Fn(&E) + Send + Sync + 'static) -> Self {
        Emitter {
            callback: Some(Arc::new(callback)),
        }
    }

    /// Sends every event to `hub`, as an [`Event`].
    pub(crate) fn to_hub(hub: &Events) -> Self
    where
        E: Clone + Into<Event> + 'static,
    {
        let hub = hub.clone();
        Emitter::new(move |event: &E| hub.publish(&event.clone().into()))
    }

    /// Builds the event and calls the callback; with no callback set, costs
    /// one branch and builds nothing.
    #[inline]
    pub(crate) fn emit(&self, event: impl FnOnce() -> E) {
        if let Some(callback) = &self.callback {
            callback(&event());
        }
    }
}

impl<E> Clone for Emitter<E> {
    fn clone(&self) -> Self {
        Emitter {
            callback: self.callback.clone(),
        }
    }
}

impl<E> Default for Emitter<E> {
    fn default() -> Self {
        Self::none()
    }
}

impl<E> fmt::Debug for Emitter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.callback.is_some() {
            "Some(<callback>)"
        } else {
            "None"
        })
    }
}
