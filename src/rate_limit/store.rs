//! What `governor` needs from us: a clock that is tokio's (so that a paused
//! test clock drives the limiter too), and a keyed state store with a bound
//! on its keys.

use std::hash::Hash;
use std::sync::Arc;

use governor::clock::Clock;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed, StateStore};

/// tokio's clock, in nanoseconds since the limiter was made.
#[derive(Debug, Clone)]
pub(crate) struct TokioClock {
    base: tokio::time::Instant,
}

impl TokioClock {
    pub(crate) fn new() -> Self {
        TokioClock {
            base: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    #[inline]
    fn now(&self) -> Nanos {
        Nanos::from(crate::clock::now().saturating_duration_since(self.base))
    }
}

/// One GCRA state per key, for at most `max_keys` keys, the least recently
/// used forgotten first.
///
/// Written here because `governor`'s own keyed stores (`DashMap`,
/// `HashMap`) grow with every key they see until `retain_recent` is
/// called: keyed by request data, that is unbounded memory. This one keeps
/// its states in a `moka` cache with a fixed capacity, evicting by least
/// recent use (always admitting a new key, so that a key in use is always
/// limited). A key forgotten and seen again starts with a full burst.
/// Clones share the states.
#[derive(Clone)]
pub(crate) struct BoundedStore<K> {
    states: moka::sync::Cache<K, Arc<InMemoryState>>,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> BoundedStore<K> {
    pub(crate) fn new(max_keys: usize) -> Self {
        BoundedStore {
            states: moka::sync::Cache::builder()
                .max_capacity(max_keys as u64)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build(),
        }
    }

    /// Keys held now (after the cache's pending work is done).
    pub(crate) fn len(&self) -> u64 {
        self.states.run_pending_tasks();
        self.states.entry_count()
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let state = self
            .states
            .get_with_by_ref(key, || Arc::new(InMemoryState::default()));
        state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}
