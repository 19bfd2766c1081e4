//! Error types.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

/// The error of an identical call that this one waited for (single-flight).
///
/// Every caller that waited gets one, sharing the original error, which
/// [`get_ref`](Self::get_ref) returns. The caller that made the call gets
/// the original error itself when nobody waited for it.
pub struct SharedError<E>(pub(crate) Arc<E>);

impl<E> SharedError<E> {
    /// The original error.
    pub fn get_ref(&self) -> &E {
        &self.0
    }
}

impl<E: fmt::Display> fmt::Display for SharedError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shared call failed: {}", self.0)
    }
}

impl<E: fmt::Debug> fmt::Debug for SharedError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedError").field(&self.0).finish()
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for SharedError<E> {}

/// A service that cannot fail never shares an error.
impl From<SharedError<Infallible>> for Infallible {
    fn from(error: SharedError<Infallible>) -> Infallible {
        match *error.0 {}
    }
}
