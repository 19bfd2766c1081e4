//! The cache's storage (moka) and its single-flight bookkeeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use moka::notification::RemovalCause;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::CacheStatus;
use super::config::Settings;
use crate::classify::Outcome;
use crate::telemetry::{Counter, Gauge, Scope};

/// A stored response and when it was stored (tokio's clock, so that
/// freshness follows a paused clock in tests; moka's own expiry, on the real
/// clock, only bounds memory).
#[derive(Debug, Clone)]
struct Entry<V> {
    response: V,
    stored_at: Instant,
}

/// What a call that other callers waited for ended with.
#[derive(Debug)]
pub(crate) enum Published<V, E> {
    /// Its answer and how the classifier judged it.
    Done {
        value: Result<V, Arc<E>>,
        outcome: Outcome,
    },
    /// It was dropped before it finished.
    Abandoned,
}

/// One call in flight that identical calls wait for.
#[derive(Debug)]
pub(crate) struct Flight<V, E> {
    published: OnceLock<Published<V, E>>,
    notify: Arc<Notify>,
    waiters: AtomicUsize,
}

impl<V, E> Flight<V, E> {
    pub(crate) fn published(&self) -> Option<&Published<V, E>> {
        self.published.get()
    }

    pub(crate) fn notify(&self) -> &Arc<Notify> {
        &self.notify
    }
}

pub(crate) enum Role<V, E> {
    Leader(Arc<Flight<V, E>>),
    Waiter(Arc<Flight<V, E>>),
}

#[derive(Debug)]
struct CacheMetrics {
    // hit, miss, stale, coalesced
    requests: [Counter; 4],
    entries: Gauge,
}

/// Gives an entry's weight, for a store bounded by total weight.
pub(crate) type WeighFn<K, V> = Arc<dyn Fn(&K, &V) -> u32 + Send + Sync>;

/// A cache's shared state.
pub(crate) struct Store<K, V, E> {
    settings: Settings,
    entries: moka::sync::Cache<K, Entry<V>>,
    flights: Mutex<HashMap<K, Arc<Flight<V, E>>>>,
    metrics: CacheMetrics,
}

impl<K, V, E> Store<K, V, E>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A store bounded by entries, or by the total of `weigher` when given
    /// (then `max_entries` is the most total weight).
    pub(crate) fn new(settings: Settings, weigher: Option<WeighFn<K, V>>) -> Self {
        let scope = Scope::new(settings.service.clone());
        let evictions = scope.counter("bulwark_cache_evictions_total", &[]);
        let mut builder = moka::sync::Cache::builder().max_capacity(settings.config.max_entries);
        if let Some(weigher) = weigher {
            builder = builder.weigher(move |k: &K, entry: &Entry<V>| weigher(k, &entry.response));
        }
        let entries = builder
            .time_to_live(
                settings
                    .config
                    .ttl
                    .saturating_add(settings.config.stale_if_error),
            )
            .eviction_listener(move |_key, _value, cause| {
                if cause == RemovalCause::Size {
                    evictions.increment(1);
                }
            })
            .build();
        let requests = [
            CacheStatus::Hit,
            CacheStatus::Miss,
            CacheStatus::Stale,
            CacheStatus::Coalesced,
        ]
        .map(|s| {
            scope.counter(
                "bulwark_cache_requests_total",
                &[("result", s.as_str().into())],
            )
        });
        Store {
            metrics: CacheMetrics {
                requests,
                entries: scope.gauge("bulwark_cache_entries", &[]),
            },
            settings,
            entries,
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh response, or else one still within the stale window.
    pub(crate) fn lookup(&self, key: &K) -> (Option<V>, Option<V>) {
        let Some(entry) = self.entries.get(key) else {
            return (None, None);
        };
        let age = crate::clock::now().saturating_duration_since(entry.stored_at);
        if age < self.settings.config.ttl {
            (Some(entry.response), None)
        } else if age
            < self
                .settings
                .config
                .ttl
                .saturating_add(self.settings.config.stale_if_error)
        {
            (None, Some(entry.response))
        } else {
            (None, None)
        }
    }

    pub(crate) fn store(&self, key: K, response: V) {
        self.entries.insert(
            key,
            Entry {
                response,
                stored_at: crate::clock::now(),
            },
        );
        self.metrics.entries.set(self.entries.entry_count() as f64);
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        let count = self.entries.entry_count();
        self.metrics.entries.set(count as f64);
        count
    }

    /// The total weight stored (the entry count without a weigher).
    pub(crate) fn weighted_size(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
    }
}

impl<K, V, E> Store<K, V, E>
where
    K: Hash + Eq + Clone,
{
    fn flights(&self) -> MutexGuard<'_, HashMap<K, Arc<Flight<V, E>>>> {
        // The map stays consistent whatever a panicking holder did.
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the call in flight for `key`, or becomes it.
    pub(crate) fn join_or_lead(&self, key: &K) -> Role<V, E> {
        let mut flights = self.flights();
        if let Some(flight) = flights.get(key) {
            flight.waiters.fetch_add(1, AcqRel);
            return Role::Waiter(flight.clone());
        }
        let flight = Arc::new(Flight {
            published: OnceLock::new(),
            notify: Arc::new(Notify::new()),
            waiters: AtomicUsize::new(0),
        });
        flights.insert(key.clone(), flight.clone());
        Role::Leader(flight)
    }

    /// Closes `flight` to newcomers. Returns whether anyone joined it.
    pub(crate) fn close(&self, key: &K, flight: &Arc<Flight<V, E>>) -> bool {
        let mut flights = self.flights();
        if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            flights.remove(key);
        }
        flight.waiters.load(Acquire) > 0
    }

    /// Tells those who joined `flight` how it went.
    pub(crate) fn publish(&self, flight: &Flight<V, E>, published: Published<V, E>) {
        let _ = flight.published.set(published);
        flight.notify.notify_waiters();
    }

    pub(crate) fn count(&self, status: CacheStatus) {
        let index = match status {
            CacheStatus::Hit => 0,
            CacheStatus::Miss => 1,
            CacheStatus::Stale => 2,
            CacheStatus::Coalesced => 3,
        };
        self.metrics.requests[index].increment(1);
    }
}

impl<K, V, E> std::fmt::Debug for Store<K, V, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
