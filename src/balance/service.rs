use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use tower::discover::{Change, Discover};
use tower_service::Service;

use super::config::{BalanceConfig, Settings, Strategy};
use super::discover::{ChangeStream, Discovery, Weighted};
use super::endpoint::{Core, Endpoint, EndpointSnapshot, Learning, Ticket, duration_nanos};
use super::error::NoEndpointAvailable;
use super::event::BalanceEvent;
use super::future::ResponseFuture;
use super::hash::{self, HashBy, NoHash, RequestHash};
use super::health::{self, HealthCheck};
use super::pick::{self, Cost};
use super::set::{EndpointSet, Writer};
use super::telemetry::Telemetry;
use crate::BoxError;
use crate::circuit_breaker::state::{Breaker, Gate, Permit, Standing};
use crate::classify::{Classify, DefaultClassifier, Outcome};
use crate::config::{Check, ConfigError};
use crate::event::Emitter;

/// Spreads requests over a set of endpoints. See the [module docs](super).
///
/// Written by hand rather than on tower's `p2c::Balance` and `ReadyCache`:
/// those own their endpoint services (`&mut` access to poll them), so a
/// balancer built on them cannot be cloned and needs a `Buffer` (a task, a
/// channel and an allocation per request) to be shared. Here the endpoint
/// set is shared and immutable, readiness is checked on a clone of the
/// chosen endpoint, and a reservation is a place in the clone's own
/// snapshot, which no change can shift: the clone takes a newer set only
/// once the reservation is used or given up (tower#856, where a removal
/// shifted the index a reservation held). tower's `Discover` and `Change`
/// are used as they are.
///
/// Clones share the endpoint set, the load and health figures, and the
/// round-robin position; each clone keeps its own readiness reservation and
/// random number generator. No `Buffer` is needed: a call clones the chosen
/// endpoint's service (the endpoint services must be `Clone`, as HTTP and
/// gRPC clients are) and drives that clone.
pub struct LoadBalance<K, S, C = DefaultClassifier, H = NoHash> {
    shared: Arc<Shared<K, S>>,
    snapshot: Arc<EndpointSet<K, S>>,
    version: u64,
    /// This clone's number: its random sequence, and its place among the
    /// clones waiting for discovery.
    id: u64,
    /// Whether this clone left a waker with discovery.
    waits: bool,
    rng: SmallRng,
    classifier: C,
    reserved: Option<Reserved<S>>,
    /// Clones of endpoints that were not ready at the last check, kept so
    /// that they wake this task when they are.
    waiting: Vec<S>,
    /// Reads a request's key for consistent hashing ([`NoHash`]: none).
    hasher: H,
}

enum Reserved<S> {
    Endpoint { service: S, held: Held },
    // Boxed: the rare path should not make every reservation larger.
    Unavailable(Box<NoEndpointAvailable>),
}

/// A reserved endpoint: its place in the clone's snapshot, which the clone
/// keeps until the reservation is called or dropped (see `poll_ready`), and
/// the outlier detector's permit. It holds no reference to the endpoint, so
/// that the endpoint's reference count is its calls in flight (see
/// [`Endpoint::pending`]); only the permit of an ejected endpoint's probe,
/// whose slot must be given back if the reservation is dropped unused,
/// keeps the endpoint's core with it.
struct Held {
    index: usize,
    permit: Permit,
    probe: Option<Arc<Core>>,
}

impl Held {
    #[inline]
    fn new<K, S>(index: usize, endpoint: &Endpoint<K, S>, permit: Permit) -> Self {
        let probe = matches!(permit, Permit::Probe { .. }).then(|| endpoint.core().clone());
        Held {
            index,
            permit,
            probe,
        }
    }

    /// Whether the reservation is the probe of an ejected endpoint.
    #[inline]
    fn is_probe(&self) -> bool {
        self.probe.is_some()
    }

    /// Sends the call to `endpoint`, the one at `self.index`: its ticket
    /// (see [`Ticket::send`]). The reservation is then used up: dropping
    /// it gives nothing back.
    #[inline]
    fn send<K, S>(
        &mut self,
        endpoint: &Endpoint<K, S>,
        counts_total: bool,
        learning: Learning,
    ) -> Ticket {
        let core = match self.probe.take() {
            Some(core) => core,
            None => endpoint.core().clone(),
        };
        Ticket::send(core, self.permit, counts_total, learning)
    }
}

impl Drop for Held {
    #[inline]
    fn drop(&mut self) {
        // Dropped unused: a probe's slot is given back.
        if let Some(core) = self.probe.take() {
            core.settle(self.permit, Outcome::Ignored);
        }
    }
}

pub(crate) struct Shared<K, S> {
    settings: Settings,
    telemetry: Arc<Telemetry>,
    /// The newest snapshot, for clones to take: held only to swap it.
    set: Mutex<Arc<EndpointSet<K, S>>>,
    /// Where changes are made, apart from readers.
    writer: Mutex<Writer<K, S>>,
    version: AtomicU64,
    cursor: AtomicUsize,
    clones: AtomicU64,
    /// Whether requests are placed by their keys ([`LoadBalance::hash_by`]):
    /// then every call counts among its endpoint's requests in flight, for
    /// the load bound.
    hashing: AtomicBool,
    /// The active health check's number (0: none): a check replaced by
    /// another stops.
    health: AtomicU64,
    /// Where every clone's random sequence starts from: the configured
    /// seed, or one drawn from the OS when the balancer is built.
    seed: u64,
    discovery: Option<Discovery<K, S>>,
}

/// Locks `mutex`; its data stays valid if a holder panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<K, S> LoadBalance<K, S>
where
    K: Clone + Eq + Hash + fmt::Display + Send + Sync + 'static,
    S: Clone + Send + Sync + 'static,
{
    /// A balancer over a fixed list of endpoints, each of weight 1.
    ///
    /// # Errors
    ///
    /// The first invalid field of `config`, as a [`ConfigError`].
    pub fn new(
        config: BalanceConfig,
        endpoints: impl IntoIterator<Item = (K, S)>,
    ) -> Result<Self, ConfigError> {
        Self::weighted(config, endpoints.into_iter().map(|(k, s)| (k, s, 1)))
    }

    /// A balancer over a fixed list of endpoints with weights, for the
    /// weighted strategies (the others ignore weights).
    ///
    /// # Errors
    ///
    /// The first invalid field of `config`, or a zero weight
    /// (`endpoints.weight`), as a [`ConfigError`].
    pub fn weighted(
        config: BalanceConfig,
        endpoints: impl IntoIterator<Item = (K, S, u32)>,
    ) -> Result<Self, ConfigError> {
        let settings = config.validate()?;
        let check = Check::layer("load balance");
        let endpoints: Vec<(K, S, u32)> = endpoints.into_iter().collect();
        for (_, _, weight) in &endpoints {
            check.nonzero("endpoints.weight", (*weight).into())?;
        }
        let lb = Self::from_settings(settings, None);
        lb.shared.insert_all(endpoints);
        Ok(lb.refreshed())
    }

    /// A balancer over the endpoints a [`Discover`] stream reports (DNS,
    /// Consul, Kubernetes, ...), each of weight 1. Endpoints it inserts take
    /// requests at once; endpoints it removes take no new requests, and
    /// their requests in flight finish. An error from the stream is
    /// reported as a [`BalanceEvent::DiscoveryFailed`] and leaves the set as
    /// it is. The set may be empty: requests then fail at once with
    /// [`NoEndpointAvailable`].
    ///
    /// # Errors
    ///
    /// The first invalid field of `config`, as a [`ConfigError`].
    pub fn discover<D>(config: BalanceConfig, discover: D) -> Result<Self, ConfigError>
    where
        D: Discover<Key = K, Service = S> + Send + 'static,
        D::Error: Into<BoxError>,
    {
        Ok(Self::from_discover(config.validate()?, discover))
    }

    pub(crate) fn from_discover<D>(settings: Settings, discover: D) -> Self
    where
        D: Discover<Key = K, Service = S> + Send + 'static,
        D::Error: Into<BoxError>,
    {
        let weigh = |service| (service, 1);
        Self::from_settings(settings, Some(Box::pin(Weighted { discover, weigh })))
    }

    /// A balancer over the endpoints a [`Discover`] stream reports with
    /// their weights (its services are `(service, weight)` pairs), such as
    /// [`DnsDiscover`](super::dns::DnsDiscover)'s from SRV records. As
    /// [`discover`](Self::discover) otherwise; an endpoint inserted again
    /// under its key with another weight replaces the old one.
    ///
    /// # Errors
    ///
    /// The first invalid field of `config`, as a [`ConfigError`]. A zero
    /// weight from the stream counts as 1.
    pub fn discover_weighted<D>(config: BalanceConfig, discover: D) -> Result<Self, ConfigError>
    where
        D: Discover<Key = K, Service = (S, u32)> + Send + 'static,
        D::Error: Into<BoxError>,
    {
        let weigh = |(service, weight): (S, u32)| (service, weight.max(1));
        let stream = Weighted { discover, weigh };
        Ok(Self::from_settings(
            config.validate()?,
            Some(Box::pin(stream)),
        ))
    }

    pub(crate) fn from_settings(settings: Settings, stream: Option<ChangeStream<K, S>>) -> Self {
        let gate = settings
            .outlier()
            .map(|o| Arc::new(Gate::new(o.max_ejection_percent)));
        let ewma = match settings.config.strategy {
            Strategy::P2cPeakEwma { decay, default_rtt } => {
                (duration_nanos(decay), duration_nanos(default_rtt))
            }
            _ => (0.0, 0.0),
        };
        let telemetry = Arc::new(Telemetry::new(
            settings.service.clone(),
            ewma,
            gate,
            settings.config.events.clone(),
            settings.config.endpoint_metrics,
        ));
        let empty = Arc::new(EndpointSet::empty());
        let discovery = stream.map(Discovery::new);
        let cycles = settings.config.strategy == Strategy::WeightedRoundRobin;
        let seed = settings
            .config
            .seed
            .unwrap_or_else(|| rand::rng().random::<u64>());
        let shared = Arc::new(Shared {
            settings,
            telemetry,
            set: Mutex::new(empty.clone()),
            writer: Mutex::new(Writer::new(cycles)),
            version: AtomicU64::new(0),
            cursor: AtomicUsize::new(0),
            clones: AtomicU64::new(0),
            hashing: AtomicBool::new(false),
            health: AtomicU64::new(0),
            seed,
            discovery,
        });
        LoadBalance {
            rng: Shared::<K, S>::rng(seed, 0),
            shared,
            snapshot: empty,
            version: 0,
            id: 0,
            waits: false,
            classifier: DefaultClassifier,
            reserved: None,
            waiting: Vec::new(),
            hasher: NoHash,
        }
    }
}

impl<K, S, C, H> LoadBalance<K, S, C, H> {
    /// Judges results with `classifier` (see [`crate::classify`]) for
    /// outlier detection.
    pub fn classify<C2>(self, classifier: C2) -> LoadBalance<K, S, C2, H>
    where
        H: Clone,
    {
        let hasher = self.hasher.clone();
        self.rebuilt(classifier, hasher)
    }

    /// This clone with another classifier and hasher; `self`, dropped
    /// here, takes back any waker it left.
    fn rebuilt<C2, H2>(self, classifier: C2, hasher: H2) -> LoadBalance<K, S, C2, H2> {
        LoadBalance {
            shared: self.shared.clone(),
            snapshot: self.snapshot.clone(),
            version: self.version,
            id: self.id,
            waits: false,
            rng: self.rng.clone(),
            classifier,
            reserved: None,
            waiting: Vec::new(),
            hasher,
        }
    }

    /// Sends each request to the endpoint its key maps to (consistent
    /// hashing), for cache affinity and sticky sessions: `key` reads the
    /// key from the request, and a request without one (`None`) goes where
    /// the strategy says. See [`hash`](super::hash) for how keys move when
    /// the set changes, and how ejected, busy and overloaded endpoints are
    /// skipped.
    ///
    /// The key's endpoint is used when it can take the request at once;
    /// otherwise the key's next candidates are tried, and when none can,
    /// the endpoint the strategy reserved in `poll_ready` takes it: a
    /// request never waits for its key's endpoint, and never fails for it.
    ///
    /// Under the whole stack, give the hashed balancer to the layer:
    /// `ResilienceLayer::new(config)?.layer(balancer.hash_by(key))`.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use tower::{service_fn, BoxError, Service, ServiceExt};
    /// use tower_bulwark::balance::{BalanceConfig, LoadBalance};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), BoxError> {
    /// let cache = |name: &'static str| service_fn(move |user: String| async move { Ok::<_, Infallible>((name, user)) });
    /// let mut caches = LoadBalance::new(
    ///     BalanceConfig::default(),
    ///     [("a", cache("a")), ("b", cache("b")), ("c", cache("c"))],
    /// )?
    /// .hash_by(|user: &String| Some(user.clone()));
    /// let (first, _) = caches.ready().await?.call("user-42".to_owned()).await?;
    /// for _ in 0..10 {
    ///     let (again, _) = caches.ready().await?.call("user-42".to_owned()).await?;
    ///     assert_eq!(again, first);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn hash_by<F, Req, T>(self, key: F) -> LoadBalance<K, S, C, HashBy<F>>
    where
        F: Fn(&Req) -> Option<T> + Clone,
        T: Hash,
        C: Clone,
    {
        self.shared.hashing.store(true, Relaxed);
        let classifier = self.classifier.clone();
        self.rebuilt(classifier, HashBy(key))
    }

    /// Probes every endpoint at an interval with `check`, apart from the
    /// requests, and takes those that fail it out until they pass again
    /// (see [`health`](super::health)). Replaces an earlier check. The
    /// probes run on a task of the current Tokio runtime, which ends when
    /// the last clone of the balancer is dropped.
    ///
    /// # Errors
    ///
    /// The first invalid field of `check`, or no Tokio runtime to run the
    /// probes on (`health_check.runtime`), as a [`ConfigError`].
    pub fn health_check(self, check: HealthCheck<K>) -> Result<Self, ConfigError>
    where
        K: Eq + Hash + Clone + fmt::Display + Send + Sync + 'static,
        S: Send + Sync + 'static,
    {
        check.validate()?;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(Check::layer("load balance").missing(
                "health_check.runtime",
                "a Tokio runtime to run the probes on: call it from within one",
            ));
        };
        let number = self.shared.health.fetch_add(1, AcqRel) + 1;
        let shared = Arc::downgrade(&self.shared);
        let seed = self.shared.seed ^ number;
        runtime.spawn(health::run(shared, check, number, seed));
        Ok(self)
    }

    fn refreshed(mut self) -> Self {
        self.refresh();
        self
    }

    /// Takes the newest endpoint set if it changed: one atomic load when it
    /// did not.
    #[inline(always)]
    fn refresh(&mut self) {
        let version = self.shared.version.load(Acquire);
        if version != self.version {
            self.snapshot = self.shared.current();
            self.version = version;
        }
    }

    /// The endpoints and their figures, in the set's order.
    pub fn endpoints(&self) -> Vec<EndpointState<K>>
    where
        K: Clone,
    {
        let set = self.shared.current();
        set.iter()
            .map(|e| {
                let EndpointSnapshot {
                    key,
                    weight,
                    pending,
                    ejected,
                    healthy,
                } = e.snapshot();
                EndpointState {
                    key: key.clone(),
                    weight,
                    pending,
                    ejected,
                    healthy,
                }
            })
            .collect()
    }
}

/// An endpoint's figures, from [`LoadBalance::endpoints`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointState<K> {
    /// The key the endpoint was given.
    pub key: K,
    /// Its weight.
    pub weight: u32,
    /// Requests in flight: called and not yet answered (or, for an
    /// outcome known at the end of the body, whose body has not ended),
    /// with any strategy; an ejected endpoint's probe counts from its
    /// reservation.
    pub pending: u64,
    /// Whether outlier detection has it ejected (or on probation).
    pub ejected: bool,
    /// Whether it passes its active health checks (true without them, or
    /// before its first probes).
    pub healthy: bool,
}

impl<K, S> Shared<K, S> {
    /// What picks honour now: ejections and health checks, unless too few
    /// endpoints are healthy (the panic threshold): then every endpoint
    /// is used.
    #[inline]
    fn honour(&self) -> Honour {
        let checks = self.checked();
        let outlier = self.settings.outlier();
        if outlier.is_none() && !checks {
            return Honour {
                ejections: true,
                checks: false,
            };
        }
        let threshold = outlier.map(|o| o.panic_threshold);
        let panicking = self.telemetry.panicking(threshold, checks);
        Honour {
            ejections: !panicking,
            checks: checks && !panicking,
        }
    }

    /// Whether active health checks run.
    #[inline]
    fn checked(&self) -> bool {
        self.health.load(Relaxed) != 0
    }

    /// The newest endpoint set.
    pub(crate) fn current(&self) -> Arc<EndpointSet<K, S>> {
        lock(&self.set).clone()
    }

    /// Whether health check number `number` is still the balancer's.
    pub(crate) fn checks(&self, number: u64) -> bool {
        self.health.load(Relaxed) == number
    }

    /// Clone number `clone`'s own random sequence, from the balancer's
    /// seed: no draw from the OS or the thread's generator per clone (the
    /// layers above a balancer clone it on every call).
    fn rng(seed: u64, clone: u64) -> SmallRng {
        SmallRng::seed_from_u64(seed ^ clone.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

impl<K, S> Shared<K, S>
where
    K: Eq + Hash + Clone + fmt::Display,
{
    fn make_endpoint(&self, key: K, service: S, weight: u32) -> Arc<Endpoint<K, S>> {
        let label: Arc<str> = Arc::from(key.to_string());
        let breaker = self.settings.endpoint_breaker().and_then(|config| {
            let telemetry = self.telemetry.clone();
            let endpoint = label.clone();
            let mut settings = config
                .service(label.to_string())
                .validate()
                // Derived from validated outlier settings; cannot fail.
                .ok()?;
            settings.config.events =
                Emitter::inner(move |event| telemetry.on_breaker_event(&endpoint, event));
            settings.metrics = false;
            // Without a failure-rate rule, failures in a row alone eject:
            // no window, and a success writes nothing.
            settings.rates = self
                .settings
                .outlier()
                .is_some_and(|o| o.failure_rate.is_some());
            settings.gate = self.telemetry.gate.clone();
            settings.trip_memory = self
                .settings
                .outlier()
                .map(|o| o.max_ejection_time)
                .unwrap_or_default();
            Some(Breaker::new(settings))
        });
        Arc::new(Endpoint::new(
            key,
            label,
            service,
            weight,
            breaker,
            self.telemetry.clone(),
        ))
    }

    fn insert_all(&self, endpoints: Vec<(K, S, u32)>) {
        self.update(
            endpoints
                .into_iter()
                .map(|(k, s, w)| Change::Insert(k, (s, w))),
        );
    }

    /// Applies changes and publishes a new set: O(log n) per change (see
    /// [`super::tree`]), under a lock that readers never take; they wait
    /// at most for the swap of the published snapshot.
    fn update(&self, changes: impl IntoIterator<Item = Change<K, (S, u32)>>) {
        let mut events = Vec::new();
        let mut writer = lock(&self.writer);
        for change in changes {
            let key = match &change {
                Change::Insert(key, _) | Change::Remove(key) => key,
            };
            if let Some(old) = writer.remove(key) {
                old.remove();
                events.push(BalanceEvent::EndpointRemoved {
                    service: self.telemetry.service.clone(),
                    endpoint: old.label.clone(),
                });
            }
            if let Change::Insert(key, (service, weight)) = change {
                let endpoint = self.make_endpoint(key, service, weight);
                events.push(BalanceEvent::EndpointAdded {
                    service: self.telemetry.service.clone(),
                    endpoint: endpoint.label.clone(),
                });
                writer.push(endpoint);
            }
        }
        let snapshot = Arc::new(writer.snapshot());
        let n = snapshot.len();
        *lock(&self.set) = snapshot;
        self.version.fetch_add(1, Release);
        drop(writer);
        self.telemetry.set_endpoints(n);
        for event in events {
            self.telemetry.emit(|_| event);
        }
    }

    /// Applies what the discovery stream has, if its waker fired since the
    /// last look.
    #[inline]
    pub(crate) fn poll_discovery(&self) {
        let Some(discovery) = &self.discovery else {
            return;
        };
        let changes = discovery.poll_changes(|error| {
            let error: Arc<str> = Arc::from(error.to_string());
            self.telemetry
                .emit(|service| BalanceEvent::DiscoveryFailed { service, error });
        });
        if !changes.is_empty() {
            self.update(changes);
        }
    }
}

/// Which verdicts a pick honours: when too few endpoints are healthy, none.
#[derive(Debug, Clone, Copy)]
struct Honour {
    /// Outlier detection's ejections.
    ejections: bool,
    /// The active health checks' verdicts.
    checks: bool,
}

/// A P2C candidate's cost ([`Cost::UNUSABLE`]: it cannot be used): what
/// `load` reads of it (its pending count, or its EWMA cost), unless its
/// health or its ejection settles the cost first. Always inlined, as is the closure that calls it: kept out of line (the pick
/// calls it from two or three places), it cost a fifth of a pick.
#[inline(always)]
fn cost<K, S, T: Cost>(
    e: &Endpoint<K, S>,
    honour: Honour,
    load: impl FnOnce(&Endpoint<K, S>) -> T,
) -> T {
    if honour.checks && !e.passes_checks() {
        return T::UNUSABLE;
    }
    if honour.ejections {
        match e.standing() {
            Standing::Admits => {}
            // An ejected endpoint whose time is up gets its probe at once,
            // whatever its old figures say.
            Standing::ProbeDue => return T::NONE,
            Standing::Rejects => return T::UNUSABLE,
        }
    }
    load(e)
}

/// What trying one endpoint gave.
enum Attempt {
    /// Reserved in `self.reserved`.
    Ready,
    Ejected,
    Busy,
    Failed(BoxError),
}

impl<K, S, C, H> LoadBalance<K, S, C, H>
where
    K: Eq + fmt::Display,
    S: Clone,
{
    /// Tries the endpoint at `index`: passing its health checks and
    /// admitted by its outlier detector (as far as `honour` says), and
    /// ready. A ready endpoint
    /// is reserved in place. Always inlined: out of line, the call costs a
    /// sixth of a pick.
    #[inline(always)]
    fn attempt<Req>(&mut self, index: usize, honour: Honour, cx: &mut Context<'_>) -> Attempt
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
    {
        let endpoint = self.snapshot.get(index);
        if honour.checks && !endpoint.passes_checks() {
            return Attempt::Ejected;
        }
        let permit = match endpoint.admit() {
            Permit::Rejected { .. } if honour.ejections => return Attempt::Ejected,
            Permit::Rejected { .. } => Permit::Untracked,
            permit => permit,
        };
        let mut service = endpoint.service.clone();
        match service.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                endpoint.set_busy(false);
                let held = Held::new(index, endpoint, permit);
                // Nothing is reserved here (`poll_ready` and `steer` take the
                // reservation first): kept, not replaced, so that no drop of
                // an old one is compiled in.
                debug_assert!(self.reserved.is_none());
                self.reserved
                    .get_or_insert(Reserved::Endpoint { service, held });
                Attempt::Ready
            }
            Poll::Ready(Err(error)) => {
                endpoint.set_busy(false);
                endpoint.settle(permit, Outcome::Failure);
                Attempt::Failed(error.into())
            }
            Poll::Pending => {
                endpoint.set_busy(true);
                // The call goes elsewhere: a probe slot is given back.
                endpoint.settle(permit, Outcome::Ignored);
                self.waiting.push(service);
                Attempt::Busy
            }
        }
    }

    /// The strategy's first choice, and for P2C the other candidate.
    #[inline(always)]
    fn candidates(&mut self, honour: Honour, now: &mut Option<u64>) -> (usize, Option<usize>) {
        let set = &*self.snapshot;
        let n = set.len();
        match self.shared.settings.config.strategy {
            Strategy::RoundRobin => (pick::round_robin(n, &self.shared.cursor), None),
            Strategy::WeightedRoundRobin => (pick::weighted_round_robin(set.tree()), None),
            Strategy::Random => (pick::random(&mut self.rng, n), None),
            Strategy::WeightedRandom => (pick::weighted_random(set.tree(), &mut self.rng), None),
            Strategy::P2cLeastPending | Strategy::P2cPeakEwma { .. } if n == 1 => (0, None),
            Strategy::P2cLeastPending => {
                let (first, second) = pick::power_of_two(
                    &mut self.rng,
                    n,
                    #[inline(always)]
                    |i| cost(set.get(i), honour, Endpoint::pending),
                );
                (first, Some(second))
            }
            Strategy::P2cPeakEwma { .. } => {
                let telemetry = &self.shared.telemetry;
                let (first, second) = pick::power_of_two(
                    &mut self.rng,
                    n,
                    #[inline(always)]
                    |i| {
                        cost(set.get(i), honour, |e| {
                            let at = *now.get_or_insert_with(|| telemetry.recent());
                            // In nanoseconds as `f64`, converted once when
                            // built: a `u128` conversion per pick costs more
                            // than the rest of the cost.
                            e.ewma_cost(at, telemetry.default_rtt, telemetry.decay_rate)
                        })
                    },
                );
                (first, Some(second))
            }
        }
    }

    /// Once an endpoint is reserved, `skipped` candidates after the
    /// strategy's first choice: round robin's turn moves past those skipped.
    /// (What the call counts and measures is settled at `call`.)
    #[inline]
    fn reserved_after(&mut self, skipped: usize) {
        let strategy = self.shared.settings.config.strategy;
        if skipped > 0 && strategy == Strategy::RoundRobin {
            // The turn moves past the endpoints skipped, so that the one
            // after a skipped endpoint does not get its share as well as
            // its own.
            self.shared.cursor.fetch_add(skipped, Relaxed);
        }
    }

    /// Moves the reservation to the endpoint `hash` maps to, or to the
    /// first of its next candidates that can take the request at once: not
    /// ejected, ready, and under the load bound. The candidates are a few
    /// rehashes of the key (so that the keys of an endpoint skipped spread
    /// over the others), then the endpoints after the last one in turn
    /// (one is always under the bound, which is above the average). When
    /// none of those asked is ready, the strategy's reservation stays: the
    /// request is never held back for its key.
    fn steer<Req>(&mut self, hash: u64)
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
    {
        /// Rehashes tried before walking on: with a quarter of the
        /// endpoints unusable, 1 key in 65 000 walks.
        const REHASHES: u64 = 8;
        /// Endpoints asked whether they are ready, at most: when that many
        /// are busy or failing, the strategy's choice serves.
        const ATTEMPTS: usize = 16;
        let n = self.snapshot.len();
        let Some(Reserved::Endpoint { held, .. }) = &self.reserved else {
            return;
        };
        let reserved = held.index;
        let settings = &self.shared.settings;
        let telemetry = &self.shared.telemetry;
        let honour = self.shared.honour();
        // At most `factor` times the average of the requests in flight,
        // this one included, rounded up.
        let bound = settings.config.hash_balance_factor.map(|percent| {
            let total = telemetry.in_flight() + 1;
            (total * u64::from(percent)).div_ceil(n as u64 * 100)
        });
        let mut cx = Context::from_waker(Waker::noop());
        let last = hash::jump(hash::candidate(hash, REHASHES - 1), n);
        let rehashes = (0..REHASHES).map(|attempt| hash::jump(hash::candidate(hash, attempt), n));
        let walk = (1..n).map(|k| (last + k) % n);
        let mut attempts = 0;
        for index in rehashes.chain(walk) {
            let endpoint = self.snapshot.get(index);
            if bound.is_some_and(|bound| endpoint.pending() >= bound) {
                continue;
            }
            if index == reserved {
                return;
            }
            attempts += 1;
            if attempts > ATTEMPTS {
                return;
            }
            let strategy = self.reserved.take();
            if let Attempt::Ready = self.attempt(index, honour, &mut cx) {
                // The strategy's reservation, dropped, gives a probe's
                // permit back.
                drop(strategy);
                return;
            }
            self.reserved = strategy;
            self.waiting.clear();
        }
    }

    /// Picks a ready endpoint and reserves it in `self.reserved`; or there
    /// the error to answer with; or pending while every usable endpoint is
    /// busy. Inlined, with [`candidates`](Self::candidates), into
    /// `poll_ready`, its one caller on the hot path (as a call of its own
    /// it saved and restored six registers per pick, and the compiler kept
    /// the candidates' costs out of line), and into the cold
    /// [`select_now`](Self::select_now).
    #[inline(always)]
    fn select<Req>(&mut self, cx: &mut Context<'_>) -> Poll<()>
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
    {
        let n = self.snapshot.len();
        if n == 0 {
            self.reserved = Some(Reserved::Unavailable(Box::new(NoEndpointAvailable::new(
                0, 0, 0, None,
            ))));
            return Poll::Ready(());
        }
        let honour = self.shared.honour();
        let mut now = None;
        let (first, second) = self.candidates(honour, &mut now);
        // The strategy's choice is usually usable: try it before building
        // the order of the others.
        let (mut ejected, mut busy, mut failed, mut last_error) = (0, 0, 0, None);
        let mut tally = |attempt: Attempt| match attempt {
            Attempt::Ready => true,
            Attempt::Ejected => {
                ejected += 1;
                false
            }
            Attempt::Busy => {
                busy += 1;
                false
            }
            Attempt::Failed(error) => {
                failed += 1;
                last_error = Some(error);
                false
            }
        };
        if tally(self.attempt(first, honour, cx)) {
            self.reserved_after(0);
            return Poll::Ready(());
        }
        let rest = (1..n)
            .map(|k| (first + k) % n)
            .filter(|&i| Some(i) != second);
        for (k, index) in second.into_iter().chain(rest).enumerate() {
            if tally(self.attempt(index, honour, cx)) {
                self.reserved_after(k + 1);
                return Poll::Ready(());
            }
        }
        if busy > 0 {
            // Every busy endpoint has this task's waker; so does discovery.
            if let Some(discovery) = &self.shared.discovery {
                discovery.wait(self.id, cx.waker());
                self.waits = true;
            }
            return Poll::Pending;
        }
        let error = NoEndpointAvailable::new(n, ejected, failed, last_error);
        self.reserved = Some(Reserved::Unavailable(Box::new(error)));
        Poll::Ready(())
    }

    /// `call` without `poll_ready`: tries once, without waiting.
    #[cold]
    #[inline(never)]
    fn select_now<Req>(&mut self)
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
    {
        if self
            .select(&mut Context::from_waker(Waker::noop()))
            .is_pending()
        {
            self.waiting.clear();
        }
    }
}

impl<K, S, C, H, Req> Service<Req> for LoadBalance<K, S, C, H>
where
    H: RequestHash<Req>,
    K: Eq + Hash + Clone + fmt::Display + Send + Sync + 'static,
    S: Service<Req> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError> + 'static,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, K, S, C>;

    /// Reserves a ready endpoint. Ready at once with an error to come when
    /// no endpoint can take the request (an empty set, all ejected or
    /// failed); pending only while every usable endpoint is busy.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.shared.poll_discovery();
        match &self.reserved {
            // A reservation is a place in this snapshot: the newest set is
            // taken only once it is used or given up.
            Some(Reserved::Endpoint { held, .. })
                if !self.snapshot.get(held.index).is_removed() =>
            {
                return Poll::Ready(Ok(()));
            }
            Some(_) => self.reserved = None,
            None => {}
        }
        self.refresh();
        if !self.waiting.is_empty() {
            self.waiting.clear();
        }
        let ready = self.select(cx);
        if ready.is_ready() {
            if !self.waiting.is_empty() {
                self.waiting.clear();
            }
            if self.waits {
                self.forget_waker();
            }
        }
        ready.map(Ok)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        if self.reserved.is_none() {
            self.select_now::<Req>();
        }
        if let Some(hash) = self.hasher.hash(&req) {
            self.steer(hash);
        }
        // Used where it lies, not moved out first: poll_ready has just
        // written the reservation field by field, and reading it back
        // whole had to wait for those writes.
        if let Some(Reserved::Endpoint { service, held }) = &mut self.reserved {
            let endpoint = self.snapshot.get(held.index);
            let learning = match self.shared.settings.config.strategy {
                // A probe is always timed: its answer restarts the
                // estimate.
                Strategy::P2cPeakEwma { .. }
                    if held.is_probe() || endpoint.times(|| self.rng.random()) =>
                {
                    Learning::ResponseTime
                }
                Strategy::P2cPeakEwma { .. } => Learning::Failures,
                _ => Learning::Nothing,
            };
            let counts_total = self.shared.hashing.load(Relaxed);
            let ticket = held.send(endpoint, counts_total, learning);
            let future = service.call(req);
            self.reserved = None;
            return ResponseFuture::called(future, ticket, self.classifier.clone());
        }
        let error = match self.reserved.take() {
            Some(Reserved::Unavailable(error)) => error,
            _ => Box::new(NoEndpointAvailable::new(self.snapshot.len(), 0, 0, None)),
        };
        ResponseFuture::unavailable(error)
    }
}

impl<K, S, C, H> LoadBalance<K, S, C, H> {
    /// Takes this clone's waker back from discovery.
    #[cold]
    fn forget_waker(&mut self) {
        if let Some(discovery) = &self.shared.discovery {
            discovery.forget(self.id);
        }
        self.waits = false;
    }
}

impl<K, S, C, H> Drop for LoadBalance<K, S, C, H> {
    #[inline]
    fn drop(&mut self) {
        // A caller that gave up leaves no waker behind.
        if self.waits {
            self.forget_waker();
        }
    }
}

impl<K, S, C: Clone, H: Clone> Clone for LoadBalance<K, S, C, H> {
    fn clone(&self) -> Self {
        let clone = self.shared.clones.fetch_add(1, Relaxed) + 1;
        LoadBalance {
            rng: Shared::<K, S>::rng(self.shared.seed, clone),
            shared: self.shared.clone(),
            snapshot: self.snapshot.clone(),
            version: self.version,
            id: clone,
            waits: false,
            classifier: self.classifier.clone(),
            reserved: None,
            waiting: Vec::new(),
            hasher: self.hasher.clone(),
        }
    }
}

impl<K: fmt::Debug, S, C: fmt::Debug, H> fmt::Debug for LoadBalance<K, S, C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadBalance")
            .field("service", &self.shared.settings.service)
            .field("strategy", &self.shared.settings.config.strategy)
            .field(
                "endpoints",
                &self.snapshot.iter().map(|e| &e.key).collect::<Vec<_>>(),
            )
            .field("classifier", &self.classifier)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tower::ServiceExt;
    use tower::discover::ServiceList;
    use tower_service::Service;

    use super::LoadBalance;
    use crate::balance::{BalanceConfig, Strategy};

    /// An endpoint that is never ready.
    #[derive(Clone)]
    struct Busy;

    impl Service<u32> for Busy {
        type Response = u32;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<u32, Infallible>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Pending
        }

        fn call(&mut self, request: u32) -> Self::Future {
            Box::pin(async move { Ok(request) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn callers_that_give_up_leave_no_waker_behind() {
        let config = BalanceConfig::default().strategy(Strategy::RoundRobin);
        let lb = LoadBalance::discover(config, ServiceList::new(vec![Busy, Busy])).unwrap();
        let waiting = || lb.shared.discovery.as_ref().map_or(0, |d| d.waiting());
        // Ten thousand callers, each a task of its own, wait for an
        // endpoint and give up.
        let callers: Vec<_> = (0..10_000)
            .map(|_| {
                let mut clone = lb.clone();
                tokio::spawn(async move {
                    tokio::time::timeout(Duration::from_millis(1), clone.ready())
                        .await
                        .is_err()
                })
            })
            .collect();
        for caller in callers {
            assert!(caller.await.unwrap(), "gave up");
        }
        assert_eq!(waiting(), 0, "each took its waker back when dropped");
        // One caller polling again and again leaves one waker.
        let mut clone = lb.clone();
        for _ in 0..100 {
            let _ = tokio::time::timeout(Duration::from_millis(1), clone.ready()).await;
        }
        assert_eq!(waiting(), 1);
        drop(clone);
        assert_eq!(waiting(), 0);
    }
}
