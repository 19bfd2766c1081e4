//! Macros for what every middleware of the crate writes the same way.

/// `get_ref`, `get_mut` and `into_inner` for a middleware whose inner
/// service is its `inner` field, of the type parameter `S`; written inside
/// the middleware's `impl` block. A note for `get_mut` or `into_inner`
/// (what a change or an unwrapping does not reach) follows their one line.
macro_rules! inner_service {
    ($(get_mut: $get_mut:literal,)? $(into_inner: $into_inner:literal,)?) => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        $(#[doc = ""] #[doc = $get_mut])?
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consumes `self`, returning the inner service.
        $(#[doc = ""] #[doc = $into_inner])?
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

/// A configuration's `service` setter, over its `service: String` field.
#[cfg(any(
    feature = "adaptive",
    feature = "rate-limit",
    feature = "cache",
    feature = "retry",
    feature = "hedge",
    feature = "circuit-breaker",
    feature = "bulkhead"
))]
macro_rules! service_setter {
    () => {
        /// Sets [`service`](Self::service).
        pub fn service(mut self, name: impl Into<String>) -> Self {
            self.service = name.into();
            self
        }
    };
}

/// A configuration's `events` setter, over its `events: Emitter<_>` field.
#[cfg(bulwark_events)]
macro_rules! events_setter {
    () => {
        /// Sends every event to `hub` (see [`crate::event`]).
        pub fn events(mut self, hub: &crate::event::Events) -> Self {
            self.events = crate::event::Emitter::to_hub(hub);
            self
        }
    };
}
