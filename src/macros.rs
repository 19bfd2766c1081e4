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
