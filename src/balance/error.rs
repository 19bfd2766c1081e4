//! Error types.

use std::fmt;

use crate::BoxError;

/// No endpoint could take the request: the set is empty, or every endpoint
/// is ejected or failed its readiness check.
///
/// The balancer reports this at once instead of waiting: a request never
/// hangs on an empty set.
#[derive(Debug)]
pub struct NoEndpointAvailable {
    endpoints: usize,
    ejected: usize,
    failed: usize,
    source: Option<BoxError>,
}

impl NoEndpointAvailable {
    pub(crate) fn new(
        endpoints: usize,
        ejected: usize,
        failed: usize,
        source: Option<BoxError>,
    ) -> Self {
        NoEndpointAvailable {
            endpoints,
            ejected,
            failed,
            source,
        }
    }

    /// The same error for another caller (one that shared the call): the
    /// same figures, and the source's message.
    #[cfg(feature = "cache")]
    pub(crate) fn reissue(&self) -> Self {
        NoEndpointAvailable {
            source: self.source.as_ref().map(|e| e.to_string().into()),
            ..*self
        }
    }

    /// Endpoints in the set when the request came.
    pub fn endpoints(&self) -> usize {
        self.endpoints
    }

    /// Of those, how many were ejected.
    pub fn ejected(&self) -> usize {
        self.ejected
    }

    /// Of those, how many failed their readiness check.
    pub fn failed(&self) -> usize {
        self.failed
    }
}

impl fmt::Display for NoEndpointAvailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.endpoints == 0 {
            f.write_str("no endpoint available: the endpoint set is empty")
        } else {
            write!(
                f,
                "no endpoint available: {} endpoints, {} ejected, {} failed",
                self.endpoints, self.ejected, self.failed
            )
        }
    }
}

impl std::error::Error for NoEndpointAvailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
