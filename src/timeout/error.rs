//! Error types.
//!
//! A timeout fails with tower's own [`Elapsed`], so code that already checks
//! `err.is::<tower::timeout::error::Elapsed>()` keeps working.

pub use tower::timeout::error::Elapsed;
