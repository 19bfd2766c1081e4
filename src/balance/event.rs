use std::sync::Arc;

/// An event of a load balancer, sent to the hub set with
/// [`BalanceConfig::events`](super::BalanceConfig::events) as
/// [`Event::Balance`](crate::event::Event::Balance).
///
/// `endpoint` is the endpoint's key as text (its `Display`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BalanceEvent {
    /// An endpoint joined the set; it takes requests from now on.
    EndpointAdded {
        /// The balancer's `service` name.
        service: Arc<str>,
        /// The endpoint's key.
        endpoint: Arc<str>,
    },
    /// An endpoint left the set; it takes no new requests, and those in
    /// flight finish.
    EndpointRemoved {
        /// The balancer's `service` name.
        service: Arc<str>,
        /// The endpoint's key.
        endpoint: Arc<str>,
    },
    /// Outlier detection ejected an endpoint (again, if it failed on
    /// probation).
    EndpointEjected {
        /// The balancer's `service` name.
        service: Arc<str>,
        /// The endpoint's key.
        endpoint: Arc<str>,
    },
    /// An ejected endpoint's time is up: it is back, on probation.
    EndpointReturned {
        /// The balancer's `service` name.
        service: Arc<str>,
        /// The endpoint's key.
        endpoint: Arc<str>,
    },
    /// Active health checks found an endpoint unhealthy: it takes no
    /// requests until its probes succeed again.
    EndpointUnhealthy {
        /// The balancer's `service` name.
        service: Arc<str>,
        /// The endpoint's key.
        endpoint: Arc<str>,
    },
    /// An unhealthy endpoint's probes succeeded: it takes requests again.
    EndpointHealthy {
        /// The balancer's `service` name.
        service: Arc<str>,
        /// The endpoint's key.
        endpoint: Arc<str>,
    },
    /// The discovery stream reported an error; the endpoint set is unchanged.
    DiscoveryFailed {
        /// The balancer's `service` name.
        service: Arc<str>,
        /// The error's message.
        error: Arc<str>,
    },
}
