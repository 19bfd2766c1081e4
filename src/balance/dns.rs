//! Endpoints from DNS: a [`Discover`](tower::discover::Discover) stream
//! that resolves a name, re-resolves it when its records expire, and
//! reports only what changed.
//!
//! Built on [`hickory_resolver`] (re-exported here), whose resolver the
//! caller builds: from the system's configuration
//! (`TokioResolver::builder_tokio()?.build()`, which reads
//! `/etc/resolv.conf`) or from a list of name servers.
//!
//! - [`DnsDiscover::ip`]: the A and AAAA records of a name, each address
//!   with a fixed port, weight 1.
//! - [`DnsDiscover::srv`]: the SRV records of a name, each target's
//!   addresses with the record's port and weight (a weight of 0 counts as
//!   1). Only the records of the lowest priority present are used: higher
//!   priorities are backups, as RFC 2782 says. A target's addresses come
//!   from the answer's additional records when the server sent them (as
//!   Kubernetes and Consul do), or are looked up.
//!
//! The name is resolved again when the shortest TTL of its records runs
//! out, kept within [`refresh`](DnsDiscover::refresh)'s bounds (by default
//! 1 s to 30 s): a TTL of 0 does not make a query loop, and a day-long TTL
//! does not hide a change for a day. The resolver's own cache honours the
//! TTLs too; to see changes faster than the records' TTL, lower
//! `ResolverOpts::positive_max_ttl` as well.
//!
//! A failed lookup, or an answer with no records, leaves the endpoints as
//! they are (the balancer reports a
//! [`DiscoveryFailed`](super::BalanceEvent::DiscoveryFailed) event) and is
//! tried again after the lower bound: a DNS outage or a mistyped record
//! does not empty the balancer.
//!
//! The changes carry each endpoint's weight: feed them to
//! [`LoadBalance::discover_weighted`](super::LoadBalance::discover_weighted)
//! (or [`ResilienceLayer::discover_weighted`](crate::stack::ResilienceLayer::discover_weighted)).
//!
//! # Kubernetes
//!
//! A headless service (`clusterIP: None`) has an A record per ready pod,
//! and an SRV record per named port:
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use tower_bulwark::balance::dns::{hickory_resolver::TokioResolver, DnsDiscover};
//! use tower_bulwark::balance::{BalanceConfig, LoadBalance};
//! # use std::convert::Infallible;
//! # fn client_for(addr: SocketAddr) -> tower::util::ServiceFn<fn(u32) -> std::future::Ready<Result<u32, Infallible>>> { tower::service_fn(|x| std::future::ready(Ok(x))) }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let resolver = TokioResolver::builder_tokio()?.build()?;
//! // Every ready pod of `users` in namespace `shop`, on port 8080.
//! let pods = DnsDiscover::ip(resolver.clone(), "users.shop.svc.cluster.local.", 8080, client_for)
//!     .refresh(Duration::from_secs(1), Duration::from_secs(10))?;
//! // Or the port named `http` of the service, from its SRV records.
//! let _by_port = DnsDiscover::srv(resolver, "_http._tcp.users.shop.svc.cluster.local.", client_for);
//! let users = LoadBalance::discover_weighted(BalanceConfig::default().service("users"), pods)?;
//! # let _ = users;
//! # Ok(())
//! # }
//! ```
//!
//! # Consul
//!
//! Consul's DNS interface (port 8600 by default) answers for the healthy
//! instances of a service, SRV records included, with weights from the
//! service's `Weights.Passing`:
//!
//! ```no_run
//! use std::net::{Ipv4Addr, SocketAddr};
//! use tower_bulwark::balance::dns::hickory_resolver::config::{
//!     ConnectionConfig, NameServerConfig, ResolverConfig,
//! };
//! use tower_bulwark::balance::dns::hickory_resolver::net::runtime::TokioRuntimeProvider;
//! use tower_bulwark::balance::dns::{hickory_resolver::TokioResolver, DnsDiscover};
//! # use std::convert::Infallible;
//! # fn client_for(addr: SocketAddr) -> tower::util::ServiceFn<fn(u32) -> std::future::Ready<Result<u32, Infallible>>> { tower::service_fn(|x| std::future::ready(Ok(x))) }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut consul = NameServerConfig::udp(Ipv4Addr::LOCALHOST.into());
//! consul.connections[0].port = 8600;
//! let resolver = TokioResolver::builder_with_config(
//!     ResolverConfig::from_name_servers(vec![consul]),
//!     TokioRuntimeProvider::default(),
//! )
//! .build()?;
//! let _orders = DnsDiscover::srv(resolver, "orders.service.consul.", client_for);
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
pub use hickory_resolver;
use hickory_resolver::TokioResolver;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData};
use tower::discover::Change;

use crate::config::{Check, ConfigError};

/// What is resolved.
#[derive(Debug, Clone)]
enum Query {
    Ip { name: String, port: u16 },
    Srv { name: String },
}

impl Query {
    fn name(&self) -> &str {
        match self {
            Query::Ip { name, .. } | Query::Srv { name } => name,
        }
    }
}

/// Endpoints and their weights, and how long the answer holds.
type Answer = (HashMap<SocketAddr, u32>, Instant);

type Lookup = Pin<Box<dyn Future<Output = Result<Answer, NetError>> + Send>>;

enum State {
    Resolving(Lookup),
    Waiting(Pin<Box<tokio::time::Sleep>>),
}

/// A [`Discover`](tower::discover::Discover) stream of the endpoints a DNS
/// name resolves to, keyed by address, each with its weight. See the
/// [module docs](self).
pub struct DnsDiscover<S> {
    resolver: TokioResolver,
    query: Query,
    make: Arc<dyn Fn(SocketAddr) -> S + Send + Sync>,
    min: Duration,
    max: Duration,
    known: HashMap<SocketAddr, u32>,
    changes: VecDeque<Change<SocketAddr, (S, u32)>>,
    state: State,
}

impl<S> DnsDiscover<S> {
    /// The addresses in the A and AAAA records of `name`, each with
    /// `port`; `make` builds the service of each address.
    ///
    /// Write names fully qualified (ending in `.`): one query instead of
    /// one per search domain.
    pub fn ip(
        resolver: TokioResolver,
        name: impl Into<String>,
        port: u16,
        make: impl Fn(SocketAddr) -> S + Send + Sync + 'static,
    ) -> Self {
        let name = name.into();
        Self::new(resolver, Query::Ip { name, port }, Arc::new(make))
    }

    /// The targets of the SRV records of `name` (of the lowest priority
    /// present), each address with the record's port and weight.
    pub fn srv(
        resolver: TokioResolver,
        name: impl Into<String>,
        make: impl Fn(SocketAddr) -> S + Send + Sync + 'static,
    ) -> Self {
        let name = name.into();
        Self::new(resolver, Query::Srv { name }, Arc::new(make))
    }

    fn new(
        resolver: TokioResolver,
        query: Query,
        make: Arc<dyn Fn(SocketAddr) -> S + Send + Sync>,
    ) -> Self {
        let state = State::Resolving(lookup(resolver.clone(), query.clone()));
        DnsDiscover {
            resolver,
            query,
            make,
            min: Duration::from_secs(1),
            max: Duration::from_secs(30),
            known: HashMap::new(),
            changes: VecDeque::new(),
            state,
        }
    }

    /// Resolves again when the records' TTL runs out, but not sooner than
    /// `min` nor later than `max` after the last answer; after a failure,
    /// tries again after `min`. Default: 1 s and 30 s.
    ///
    /// # Errors
    ///
    /// A zero `min` (`refresh.min`), or `max` below `min`
    /// (`refresh.max`), as a [`ConfigError`].
    pub fn refresh(mut self, min: Duration, max: Duration) -> Result<Self, ConfigError> {
        let check = Check::layer("dns discovery");
        check.duration("refresh.min", min)?;
        check.not_smaller("refresh.max", max, "refresh.min", min)?;
        self.min = min;
        self.max = max;
        Ok(self)
    }

    /// Queues the differences between what is known and `answer`.
    fn apply(&mut self, answer: HashMap<SocketAddr, u32>) {
        let mut gone: Vec<SocketAddr> = self
            .known
            .keys()
            .filter(|addr| !answer.contains_key(addr))
            .copied()
            .collect();
        gone.sort_unstable();
        let mut new: Vec<(SocketAddr, u32)> = answer
            .iter()
            .filter(|(addr, weight)| self.known.get(addr) != Some(weight))
            .map(|(addr, weight)| (*addr, *weight))
            .collect();
        new.sort_unstable();
        self.changes.extend(gone.into_iter().map(Change::Remove));
        for (addr, weight) in new {
            self.changes
                .push_back(Change::Insert(addr, ((self.make)(addr), weight)));
        }
        self.known = answer;
    }
}

impl<S> fmt::Debug for DnsDiscover<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsDiscover")
            .field("query", &self.query)
            .field("refresh", &(self.min, self.max))
            .field("endpoints", &self.known.len())
            .finish()
    }
}

impl<S> Unpin for DnsDiscover<S> {}

impl<S> Stream for DnsDiscover<S> {
    type Item = Result<Change<SocketAddr, (S, u32)>, DnsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(change) = this.changes.pop_front() {
                return Poll::Ready(Some(Ok(change)));
            }
            match &mut this.state {
                State::Waiting(sleep) => {
                    std::task::ready!(sleep.as_mut().poll(cx));
                    this.state =
                        State::Resolving(lookup(this.resolver.clone(), this.query.clone()));
                }
                State::Resolving(lookup) => {
                    let result = std::task::ready!(lookup.as_mut().poll(cx));
                    let (wait, failure) = match result {
                        Ok((answer, _)) if answer.is_empty() => (this.min, Some(None)),
                        Ok((answer, valid_until)) => {
                            this.apply(answer);
                            (
                                next_lookup(valid_until, Instant::now(), this.min, this.max),
                                None,
                            )
                        }
                        Err(error) => (this.min, Some(Some(error))),
                    };
                    this.state = State::Waiting(Box::pin(tokio::time::sleep(wait)));
                    if let Some(source) = failure {
                        return Poll::Ready(Some(Err(DnsError {
                            name: this.query.name().to_owned(),
                            source,
                        })));
                    }
                }
            }
        }
    }
}

/// How long to wait before resolving again: until the answer expires,
/// but at least `min` and at most `max`.
fn next_lookup(valid_until: Instant, now: Instant, min: Duration, max: Duration) -> Duration {
    valid_until.saturating_duration_since(now).clamp(min, max)
}

/// Resolves `query` once.
fn lookup(resolver: TokioResolver, query: Query) -> Lookup {
    Box::pin(async move {
        match query {
            Query::Ip { name, port } => {
                let found = resolver.lookup_ip(name.as_str()).await?;
                let endpoints = found
                    .iter()
                    .map(|ip| (SocketAddr::new(ip, port), 1))
                    .collect();
                Ok((endpoints, found.valid_until()))
            }
            Query::Srv { name } => {
                let found = resolver.srv_lookup(name.as_str()).await?;
                let mut valid_until = found.valid_until();
                let records: Vec<_> = found
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::SRV(srv) => Some(srv),
                        _ => None,
                    })
                    .collect();
                let Some(first) = records.iter().map(|srv| srv.priority).min() else {
                    return Ok((HashMap::new(), valid_until));
                };
                let mut endpoints = HashMap::new();
                for srv in records.into_iter().filter(|srv| srv.priority == first) {
                    let weight = u32::from(srv.weight.max(1));
                    for ip in addresses(&resolver, &found, &srv.target, &mut valid_until).await? {
                        let weight_so_far =
                            endpoints.entry(SocketAddr::new(ip, srv.port)).or_insert(0);
                        *weight_so_far = weight.max(*weight_so_far);
                    }
                }
                Ok((endpoints, valid_until))
            }
        }
    })
}

/// The addresses of an SRV target: from the answer's additional records,
/// or looked up.
async fn addresses(
    resolver: &TokioResolver,
    found: &hickory_resolver::lookup::Lookup,
    target: &Name,
    valid_until: &mut Instant,
) -> Result<Vec<std::net::IpAddr>, NetError> {
    let given: Vec<_> = found
        .additionals()
        .iter()
        .filter(|record| record.name == *target)
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(std::net::IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect();
    if !given.is_empty() {
        return Ok(given);
    }
    let looked_up = resolver.lookup_ip(target.clone()).await?;
    *valid_until = (*valid_until).min(looked_up.valid_until());
    Ok(looked_up.iter().collect())
}

/// A DNS lookup failed, or found no records; the endpoints stay as they
/// were.
#[derive(Debug)]
pub struct DnsError {
    name: String,
    source: Option<NetError>,
}

impl DnsError {
    /// The name that was resolved.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(_) => write!(f, "resolving `{}` failed", self.name),
            None => write!(f, "`{}` resolved to no endpoints", self.name),
        }
    }
}

impl Error for DnsError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::next_lookup;

    #[test]
    fn the_next_lookup_follows_the_ttl_within_the_bounds() {
        let now = Instant::now();
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(30));
        let at = |ttl: u64| next_lookup(now + Duration::from_secs(ttl), now, min, max);
        assert_eq!(at(10), Duration::from_secs(10));
        // A TTL of 0 does not make a query loop; a day does not hide a change.
        assert_eq!(at(0), min);
        assert_eq!(at(86_400), max);
        // An answer that expired already.
        assert_eq!(
            next_lookup(now, now + Duration::from_secs(5), min, max),
            min
        );
    }
}
