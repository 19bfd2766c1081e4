//! Global and keyed limiters, behind one sealed trait.

use std::hash::Hash;
use std::marker::PhantomData;
use std::time::Duration;

use governor::clock::Clock;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};

use super::store::{BoundedStore, TokioClock};

type Gcra<K, S> =
    governor::RateLimiter<K, S, TokioClock, governor::middleware::NoOpMiddleware<Nanos>>;

mod sealed {
    pub trait Sealed {}
}

/// What a [`RateLimiter`](super::RateLimiter) checks a request against:
/// [`Global`] or [`Keyed`]. Sealed: made by
/// [`RateLimitLayer`](super::RateLimitLayer)'s constructors only.
pub trait Limiter<Req>: sealed::Sealed {
    /// `Ok` if `req` may go now, else how long until its turn.
    #[doc(hidden)]
    fn check(&self, req: &Req) -> Result<(), Duration>;
}

/// One limit for every call.
pub struct Global(Gcra<NotKeyed, InMemoryState>);

impl Global {
    pub(crate) fn new(quota: governor::Quota) -> Self {
        Global(governor::RateLimiter::new(
            quota,
            InMemoryState::default(),
            TokioClock::new(),
        ))
    }
}

impl sealed::Sealed for Global {}

impl<Req> Limiter<Req> for Global {
    #[inline]
    fn check(&self, _req: &Req) -> Result<(), Duration> {
        self.0
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.0.clock().now()))
    }
}

impl std::fmt::Debug for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Global").finish_non_exhaustive()
    }
}

/// One limit per key, the key read from each request by a function.
pub struct Keyed<F, K: Hash + Eq + Clone + Send + Sync + 'static> {
    key: F,
    limiter: Gcra<K, BoundedStore<K>>,
    store: BoundedStore<K>,
    _key: PhantomData<fn() -> K>,
}

impl<F, K: Hash + Eq + Clone + Send + Sync + 'static> Keyed<F, K> {
    pub(crate) fn new(quota: governor::Quota, key: F, max_keys: usize) -> Self {
        let store = BoundedStore::new(max_keys);
        Keyed {
            key,
            limiter: governor::RateLimiter::new(quota, store.clone(), TokioClock::new()),
            store,
            _key: PhantomData,
        }
    }

    /// Keys held now.
    pub(crate) fn keys(&self) -> u64 {
        self.store.len()
    }
}

impl<F, K: Hash + Eq + Clone + Send + Sync + 'static> sealed::Sealed for Keyed<F, K> {}

impl<F, K, Req> Limiter<Req> for Keyed<F, K>
where
    F: Fn(&Req) -> K,
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    #[inline]
    fn check(&self, req: &Req) -> Result<(), Duration> {
        let key = (self.key)(req);
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }
}

impl<F, K: Hash + Eq + Clone + Send + Sync + 'static> std::fmt::Debug for Keyed<F, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyed").finish_non_exhaustive()
    }
}
