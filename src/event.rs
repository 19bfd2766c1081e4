//! Delivery of typed events to a user callback.
//!
//! Each stateful layer has an `on_event` setter taking a closure over its own
//! event type (for example
//! [`CircuitEvent`](crate::circuit_breaker::CircuitEvent)). Events are the
//! hook for alerting inside the process; metrics are the hook for alerting
//! outside it. The callback runs on the thread that caused the event, after
//! the layer's own bookkeeping, with no lock held: it may call back into the
//! layer (for example through a handle), but it should be quick.

use std::fmt;
use std::sync::Arc;

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
