//! Error types.

use std::any::Any;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use crate::BoxError;

/// The error of an identical call that this one waited for (single-flight).
///
/// Every caller that shared the call gets one, sharing the original error,
/// which [`get_ref`](Self::get_ref) returns and, for a [`BoxError`],
/// [`source`](std::error::Error::source) too. The caller that made the call
/// gets the original error itself when nobody waited for it.
///
/// The crate's own errors are not wrapped: a shared `Elapsed`,
/// `CircuitOpen` or `NoEndpointAvailable` reaches every caller as an error
/// of its own type, so `err.is::<Elapsed>()` holds for each (see
/// [`crate::error`]).
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

impl<E: fmt::Debug + fmt::Display + 'static> std::error::Error for SharedError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let error: &dyn Any = &*self.0;
        error
            .downcast_ref::<BoxError>()
            .map(|boxed| &**boxed as &(dyn std::error::Error + 'static))
    }
}

/// `shared` for one of the callers that shared the call: a new error of
/// the same type when it is one of the crate's own, or else a
/// [`SharedError`].
pub(crate) fn share<E>(shared: &Arc<E>) -> E
where
    E: From<SharedError<E>> + 'static,
{
    let error: &dyn Any = &**shared;
    let reissued = error
        .downcast_ref::<BoxError>()
        .and_then(|boxed| crate::error::reissue(&**boxed));
    if let Some(reissued) = reissued {
        let reissued: Box<dyn Any> = Box::new(reissued);
        if let Ok(error) = reissued.downcast::<E>() {
            return *error;
        }
    }
    E::from(SharedError(shared.clone()))
}

/// A service that cannot fail never shares an error.
impl From<SharedError<Infallible>> for Infallible {
    fn from(error: SharedError<Infallible>) -> Infallible {
        match *error.0 {}
    }
}
