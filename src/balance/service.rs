use std::fmt;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use futures_core::Stream;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use tokio::time::Instant;
use tower::discover::{Change, Discover};
use tower_service::Service;

use super::config::{BalanceConfig, Settings, Strategy};
use super::endpoint::{Endpoint, EndpointSnapshot, Ticket, duration_nanos, nanos_since};
use super::error::NoEndpointAvailable;
use super::event::BalanceEvent;
use super::future::ResponseFuture;
use super::set::EndpointSet;
use super::telemetry::Telemetry;
use crate::BoxError;
use crate::circuit_breaker::state::{Breaker, Gate, Permit, Standing};
use crate::classify::{Classify, DefaultClassifier, Outcome};
use crate::config::{Check, ConfigError};

/// Spreads requests over a set of endpoints. See the [module docs](super).
///
/// Written by hand rather than on tower's `p2c::Balance` and `ReadyCache`:
/// those own their endpoint services (`&mut` access to poll them), so a
/// balancer built on them cannot be cloned and needs a `Buffer` (a task, a
/// channel and an allocation per request) to be shared. Here the endpoint
/// set is shared and immutable, readiness is checked on a clone of the
/// chosen endpoint, and a reservation names its endpoint rather than an
/// index that a removal could shift (tower#856). tower's `Discover` and
/// `Change` are used as they are.
///
/// Clones share the endpoint set, the load and health figures, and the
/// round-robin position; each clone keeps its own readiness reservation and
/// random number generator. No `Buffer` is needed: a call clones the chosen
/// endpoint's service (the endpoint services must be `Clone`, as HTTP and
/// gRPC clients are) and drives that clone.
pub struct LoadBalance<K, S, C = DefaultClassifier> {
    shared: Arc<Shared<K, S>>,
    snapshot: Arc<EndpointSet<K, S>>,
    version: u64,
    rng: SmallRng,
    classifier: C,
    reserved: Option<Reserved<K, S>>,
    /// Clones of endpoints that were not ready at the last check, kept so
    /// that they wake this task when they are.
    waiting: Vec<S>,
}

enum Reserved<K, S> {
    Endpoint { service: S, ticket: Ticket<K, S> },
    // Boxed: the rare path should not make every reservation larger.
    Unavailable(Box<NoEndpointAvailable>),
}

type ChangeStream<K, S> = Pin<Box<dyn Stream<Item = Result<Change<K, (S, u32)>, BoxError>> + Send>>;

pub(crate) struct Shared<K, S> {
    settings: Settings,
    telemetry: Arc<Telemetry>,
    set: Mutex<Arc<EndpointSet<K, S>>>,
    version: AtomicU64,
    cursor: AtomicUsize,
    clones: AtomicU64,
    /// Where every clone's random sequence starts from: the configured
    /// seed, or one drawn from the OS when the balancer is built.
    seed: u64,
    discovery: Option<Discovery<K, S>>,
}

struct Discovery<K, S> {
    stream: Mutex<Option<ChangeStream<K, S>>>,
    wake: Arc<DiscoveryWake>,
}

/// The waker the discovery stream is polled with: it raises a flag that
/// the next `poll_ready` of any clone checks with one atomic load, so the
/// stream is polled only when it has something to say, and wakes the
/// clones that are waiting for an endpoint.
#[derive(Default)]
struct DiscoveryWake {
    woken: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
}

impl Wake for DiscoveryWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Release);
        for waker in lock(&self.waiters).drain(..) {
            waker.wake();
        }
    }
}

/// Locks `mutex`; its data stays valid if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
        Self::from_settings(settings, Some(Box::pin(Weighted { discover })))
    }

    pub(crate) fn from_settings(settings: Settings, stream: Option<ChangeStream<K, S>>) -> Self {
        let gate = settings
            .outlier
            .map(|o| Arc::new(Gate::new(o.max_ejection_percent)));
        let ewma = match settings.strategy {
            Strategy::P2cPeakEwma { decay, default_rtt } => {
                (duration_nanos(decay), duration_nanos(default_rtt))
            }
            _ => (0.0, 0.0),
        };
        let telemetry = Arc::new(Telemetry::new(
            settings.service.clone(),
            ewma,
            gate,
            settings.events.clone(),
        ));
        let empty = Arc::new(EndpointSet::new(Vec::new()));
        let discovery = stream.map(|stream| {
            let wake = Arc::new(DiscoveryWake::default());
            // Poll the stream on the first readiness check.
            wake.woken.store(true, Release);
            Discovery {
                stream: Mutex::new(Some(stream)),
                wake,
            }
        });
        let seed = settings.seed.unwrap_or_else(|| rand::rng().random::<u64>());
        let shared = Arc::new(Shared {
            settings,
            telemetry,
            set: Mutex::new(empty.clone()),
            version: AtomicU64::new(0),
            cursor: AtomicUsize::new(0),
            clones: AtomicU64::new(0),
            seed,
            discovery,
        });
        LoadBalance {
            rng: Shared::<K, S>::rng(seed, 0),
            shared,
            snapshot: empty,
            version: 0,
            classifier: DefaultClassifier,
            reserved: None,
            waiting: Vec::new(),
        }
    }
}

impl<K, S, C> LoadBalance<K, S, C> {
    /// Judges results with `classifier` (see [`crate::classify`]) for
    /// outlier detection.
    pub fn classify<C2>(self, classifier: C2) -> LoadBalance<K, S, C2> {
        LoadBalance {
            shared: self.shared,
            snapshot: self.snapshot,
            version: self.version,
            rng: self.rng,
            classifier,
            reserved: None,
            waiting: Vec::new(),
        }
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
            self.snapshot = lock(&self.shared.set).clone();
            self.version = version;
        }
    }

    /// The endpoints and their figures, in the set's order.
    pub fn endpoints(&self) -> Vec<EndpointState<K>>
    where
        K: Clone,
    {
        let set = lock(&self.shared.set).clone();
        set.endpoints
            .iter()
            .map(|e| {
                let EndpointSnapshot {
                    key,
                    weight,
                    pending,
                    ejected,
                } = e.snapshot();
                EndpointState {
                    key: key.clone(),
                    weight,
                    pending,
                    ejected,
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
    /// Requests in flight, as counted for the P2C strategies (0 with the
    /// others, which do not need the count and skip its cost).
    pub pending: u64,
    /// Whether outlier detection has it ejected (or on probation).
    pub ejected: bool,
}

impl<K, S> Shared<K, S> {
    /// Clone number `clone`'s own random sequence, from the balancer's
    /// seed: no draw from the OS or the thread's generator per clone (the
    /// layers above a balancer clone it on every call).
    fn rng(seed: u64, clone: u64) -> SmallRng {
        SmallRng::seed_from_u64(seed ^ clone.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

impl<K, S> Shared<K, S>
where
    K: Eq + fmt::Display,
{
    fn make_endpoint(&self, key: K, service: S, weight: u32) -> Arc<Endpoint<K, S>> {
        let label: Arc<str> = Arc::from(key.to_string());
        let breaker = self.settings.endpoint_breaker().and_then(|config| {
            let telemetry = self.telemetry.clone();
            let endpoint = label.clone();
            let mut settings = config
                .service(label.to_string())
                .on_event(move |event| telemetry.on_breaker_event(&endpoint, event))
                .validate()
                // Derived from validated outlier settings; cannot fail.
                .ok()?;
            settings.metrics = false;
            settings.gate = self.telemetry.gate.clone();
            settings.trip_memory = self
                .settings
                .outlier
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

    /// Applies changes and publishes a new set.
    fn update(&self, changes: impl IntoIterator<Item = Change<K, (S, u32)>>) {
        let mut events = Vec::new();
        let mut set = lock(&self.set);
        let mut endpoints = set.endpoints.clone();
        for change in changes {
            let key = match &change {
                Change::Insert(key, _) | Change::Remove(key) => key,
            };
            if let Some(i) = endpoints.iter().position(|e| e.key == *key) {
                let old = endpoints.remove(i);
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
                endpoints.push(endpoint);
            }
        }
        let n = endpoints.len();
        *set = Arc::new(EndpointSet::new(endpoints));
        self.version.fetch_add(1, Release);
        drop(set);
        self.telemetry.set_endpoints(n);
        for event in events {
            self.telemetry.emit(|_| event);
        }
    }

    /// Applies what the discovery stream has, if its waker fired since the
    /// last look.
    #[inline]
    fn poll_discovery(&self) {
        let Some(discovery) = &self.discovery else {
            return;
        };
        if !discovery.wake.woken.load(Acquire) {
            return;
        }
        let mut stream = match discovery.stream.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            // Another clone is applying the changes.
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        if !discovery.wake.woken.swap(false, AcqRel) {
            return;
        }
        let waker = Waker::from(discovery.wake.clone());
        let mut cx = Context::from_waker(&waker);
        let mut changes = Vec::new();
        while let Some(s) = stream.as_mut() {
            match s.as_mut().poll_next(&mut cx) {
                Poll::Ready(Some(Ok(change))) => changes.push(change),
                Poll::Ready(Some(Err(error))) => {
                    let error: Arc<str> = Arc::from(error.to_string());
                    self.telemetry
                        .emit(|service| BalanceEvent::DiscoveryFailed { service, error });
                }
                Poll::Ready(None) => *stream = None,
                Poll::Pending => break,
            }
        }
        drop(stream);
        if !changes.is_empty() {
            self.update(changes);
        }
    }

    /// Wakes `waker` when discovery reports a change.
    fn wait_for_discovery(&self, waker: &Waker) {
        if let Some(discovery) = &self.discovery {
            let mut waiters = lock(&discovery.wake.waiters);
            if !waiters.iter().any(|w| w.will_wake(waker)) {
                waiters.push(waker.clone());
            }
        }
    }
}

/// What trying one endpoint gave.
enum Attempt {
    /// Reserved in `self.reserved`.
    Ready,
    Ejected,
    Busy,
    Failed(BoxError),
}

/// Two distinct indices below `n` (at least 2) from one random number:
/// multiply-high maps each half onto its range without a division.
#[inline]
fn two_indices(rng: &mut SmallRng, n: usize) -> (usize, usize) {
    let r: u64 = rng.random();
    let a = (((r >> 32) * n as u64) >> 32) as usize;
    let mut b = (((r & 0xffff_ffff) * (n as u64 - 1)) >> 32) as usize;
    if b >= a {
        b += 1;
    }
    (a, b)
}

/// An index below `n` (at least 1), as in [`two_indices`].
#[inline]
fn one_index(rng: &mut SmallRng, n: u64) -> u64 {
    let r: u64 = rng.random();
    ((u128::from(r) * u128::from(n)) >> 64) as u64
}

impl<K, S, C> LoadBalance<K, S, C>
where
    K: Eq + fmt::Display,
    S: Clone,
{
    /// Tries the endpoint at `index`: admitted by its outlier detector (or
    /// not, unless the balancer is panicking), and ready. A ready endpoint
    /// is reserved in place.
    #[inline]
    fn attempt<Req>(&mut self, index: usize, panicking: bool, cx: &mut Context<'_>) -> Attempt
    where
        S: Service<Req>,
        S::Error: Into<BoxError>,
    {
        let endpoint = &self.snapshot.endpoints[index];
        let permit = match endpoint.admit() {
            Permit::Rejected { .. } if !panicking => return Attempt::Ejected,
            Permit::Rejected { .. } => Permit::Untracked,
            permit => permit,
        };
        let mut service = endpoint.service.clone();
        match service.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                endpoint.set_busy(false);
                let ticket = Ticket::new(endpoint.clone(), permit);
                self.reserved = Some(Reserved::Endpoint { service, ticket });
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
    #[inline]
    fn candidates(&mut self, panicking: bool, now: &mut Option<u64>) -> (usize, Option<usize>) {
        let set = &*self.snapshot;
        let n = set.len();
        match self.shared.settings.strategy {
            Strategy::RoundRobin => (self.shared.cursor.fetch_add(1, Relaxed) % n, None),
            Strategy::WeightedRoundRobin => {
                let step = self.shared.cursor.fetch_add(1, Relaxed) % set.cycle.len();
                (set.cycle[step] as usize, None)
            }
            Strategy::Random => (one_index(&mut self.rng, n as u64) as usize, None),
            Strategy::WeightedRandom => {
                let point = one_index(&mut self.rng, set.total_weight());
                (set.by_weight(point), None)
            }
            Strategy::P2cLeastPending | Strategy::P2cPeakEwma { .. } if n == 1 => (0, None),
            strategy => {
                let (a, mut b) = two_indices(&mut self.rng, n);
                let base = self.shared.telemetry.base;
                let mut cost = |e: &Endpoint<K, S>| {
                    if !panicking {
                        match e.standing() {
                            Standing::Admits => {}
                            // An ejected endpoint whose time is up gets its
                            // probe at once, whatever its old figures say.
                            Standing::ProbeDue => return 0.0,
                            Standing::Rejects => return f64::INFINITY,
                        }
                    }
                    match strategy {
                        Strategy::P2cPeakEwma { .. } => {
                            let at = *now.get_or_insert_with(|| nanos_since(base, Instant::now()));
                            // In nanoseconds as `f64`, converted once when
                            // built: a `u128` conversion per pick costs more
                            // than the rest of the cost.
                            let telemetry = &self.shared.telemetry;
                            e.ewma_cost(at, telemetry.default_rtt, telemetry.decay)
                        }
                        _ => e.pending() as f64,
                    }
                };
                let mut a = a;
                let mut cost_a = cost(&set.endpoints[a]);
                let mut cost_b = cost(&set.endpoints[b]);
                // An ejected candidate is no choice: draw a third endpoint
                // to compare the other with, or a slow endpoint would take
                // every call paired with an ejected one.
                if (cost_a.is_infinite() || cost_b.is_infinite()) && n > 2 {
                    let mut c = one_index(&mut self.rng, n as u64 - 2) as usize;
                    for taken in [a.min(b), a.max(b)] {
                        if c >= taken {
                            c += 1;
                        }
                    }
                    let cost_c = cost(&set.endpoints[c]);
                    if cost_a.is_infinite() {
                        (a, cost_a) = (c, cost_c);
                    } else {
                        (b, cost_b) = (c, cost_c);
                    }
                }
                if cost_b < cost_a {
                    (b, Some(a))
                } else {
                    (a, Some(b))
                }
            }
        }
    }

    /// Bookkeeping once an endpoint is reserved, `skipped` candidates after
    /// the strategy's first choice.
    #[inline]
    fn reserved_after(&mut self, skipped: usize, now: Option<u64>) {
        let strategy = self.shared.settings.strategy;
        if skipped > 0 && strategy == Strategy::RoundRobin {
            // The turn moves past the endpoints skipped, so that the one
            // after a skipped endpoint does not get its share as well as
            // its own.
            self.shared.cursor.fetch_add(skipped, Relaxed);
        }
        if let (
            Some(Reserved::Endpoint { ticket, .. }),
            Strategy::P2cLeastPending | Strategy::P2cPeakEwma { .. },
        ) = (&mut self.reserved, strategy)
        {
            ticket.count_pending();
            if let Strategy::P2cPeakEwma { .. } = strategy {
                let base = self.shared.telemetry.base;
                ticket.measure(now.unwrap_or_else(|| nanos_since(base, Instant::now())));
            }
        }
    }

    /// Picks a ready endpoint and reserves it in `self.reserved`; or there
    /// the error to answer with; or pending while every usable endpoint is
    /// busy.
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
        let panicking = self
            .shared
            .settings
            .outlier
            .is_some_and(|o| self.shared.telemetry.panicking(o.panic_threshold));
        let mut now = None;
        let (first, second) = self.candidates(panicking, &mut now);
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
        if tally(self.attempt(first, panicking, cx)) {
            self.reserved_after(0, now);
            return Poll::Ready(());
        }
        let rest = (1..n)
            .map(|k| (first + k) % n)
            .filter(|&i| Some(i) != second);
        for (k, index) in second.into_iter().chain(rest).enumerate() {
            if tally(self.attempt(index, panicking, cx)) {
                self.reserved_after(k + 1, now);
                return Poll::Ready(());
            }
        }
        if busy > 0 {
            // Every busy endpoint has this task's waker; so does discovery.
            self.shared.wait_for_discovery(cx.waker());
            return Poll::Pending;
        }
        let error = NoEndpointAvailable::new(n, ejected, failed, last_error);
        self.reserved = Some(Reserved::Unavailable(Box::new(error)));
        Poll::Ready(())
    }
}

impl<K, S, C, Req> Service<Req> for LoadBalance<K, S, C>
where
    K: Eq + fmt::Display + Send + Sync + 'static,
    S: Service<Req> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
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
        self.refresh();
        match &self.reserved {
            Some(Reserved::Endpoint { ticket, .. }) if !ticket.endpoint().is_removed() => {
                return Poll::Ready(Ok(()));
            }
            _ => self.reserved = None,
        }
        if !self.waiting.is_empty() {
            self.waiting.clear();
        }
        let ready = self.select(cx);
        if ready.is_ready() && !self.waiting.is_empty() {
            self.waiting.clear();
        }
        ready.map(Ok)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        if self.reserved.is_none() {
            // `call` without `poll_ready`: try once, without waiting.
            if self
                .select(&mut Context::from_waker(Waker::noop()))
                .is_pending()
            {
                self.waiting.clear();
            }
        }
        let reserved = self.reserved.take().unwrap_or_else(|| {
            let n = self.snapshot.len();
            Reserved::Unavailable(Box::new(NoEndpointAvailable::new(n, 0, 0, None)))
        });
        match reserved {
            Reserved::Endpoint {
                mut service,
                mut ticket,
            } => {
                ticket.send();
                ResponseFuture::called(service.call(req), ticket, self.classifier.clone())
            }
            Reserved::Unavailable(error) => ResponseFuture::unavailable(error),
        }
    }
}

impl<K, S, C: Clone> Clone for LoadBalance<K, S, C> {
    fn clone(&self) -> Self {
        let clone = self.shared.clones.fetch_add(1, Relaxed) + 1;
        LoadBalance {
            rng: Shared::<K, S>::rng(self.shared.seed, clone),
            shared: self.shared.clone(),
            snapshot: self.snapshot.clone(),
            version: self.version,
            classifier: self.classifier.clone(),
            reserved: None,
            waiting: Vec::new(),
        }
    }
}

impl<K: fmt::Debug, S, C: fmt::Debug> fmt::Debug for LoadBalance<K, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadBalance")
            .field("service", &self.shared.settings.service)
            .field("strategy", &self.shared.settings.strategy)
            .field(
                "endpoints",
                &self
                    .snapshot
                    .endpoints
                    .iter()
                    .map(|e| &e.key)
                    .collect::<Vec<_>>(),
            )
            .field("classifier", &self.classifier)
            .finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// A [`Discover`] stream as a stream of weighted changes, errors boxed.
    struct Weighted<D> {
        #[pin]
        discover: D,
    }
}

impl<D> Stream for Weighted<D>
where
    D: Discover,
    D::Error: Into<BoxError>,
{
    type Item = Result<Change<D::Key, (D::Service, u32)>, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().discover.poll_discover(cx).map(|change| {
            change.map(|change| {
                change.map_err(Into::into).map(|change| match change {
                    Change::Insert(key, service) => Change::Insert(key, (service, 1)),
                    Change::Remove(key) => Change::Remove(key),
                })
            })
        })
    }
}
