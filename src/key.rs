//! Keys that split one layer's state: a breaker, or a set of metric
//! labels, per route or per key of a request.
//!
//! A [`Keyer`] gives a request's key: a closure `Fn(&Req) -> Option<K>`
//! (`None`: the request goes to the layer's shared state), or, with the
//! `axum` feature, [`ByRoute`]: the route pattern axum matched
//! (`/users/{id}`, never the path a client sent). The layers keep the state
//! of at most `max_keys` keys: past that, the least recently used key's
//! state is dropped (approximately: eviction runs as the store is used),
//! and a request with that key later starts afresh. Keys derived from
//! requests therefore cannot grow memory without bound.
//!
//! Metric series are bounded too: a key's label (its `Display`, or the
//! route pattern) is given to at most `max_keys` distinct keys over the
//! layer's life; further keys share the label `other`. A label is never
//! request data beyond what the keyer makes of it: choose keys from a
//! small set (routes, tenants, downstream names), not from user input.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Gives a request's key. See the [module docs](self).
///
/// A layer keeps its state per key under a hash of the key, made with a
/// hasher seeded at random when the layer is built (so keys from requests
/// cannot be chosen to collide), and the key's label.
pub trait Keyer<Req> {
    /// Feeds the key of `req` to `state`; `false` when `req` has none.
    fn hash_key<H: Hasher>(&self, req: &Req, state: &mut H) -> bool;

    /// The key's label in metrics and events, made once, when a key is
    /// first seen (from the request that brought it).
    fn label(&self, req: &Req) -> Arc<str>;
}

impl<F, Req, K> Keyer<Req> for F
where
    F: Fn(&Req) -> Option<K>,
    K: Hash + fmt::Display,
{
    #[inline]
    fn hash_key<H: Hasher>(&self, req: &Req, state: &mut H) -> bool {
        match self(req) {
            Some(key) => {
                key.hash(state);
                true
            }
            None => false,
        }
    }

    fn label(&self, req: &Req) -> Arc<str> {
        match self(req) {
            Some(key) => Arc::from(key.to_string()),
            None => Arc::from(OTHER),
        }
    }
}

/// The route pattern axum matched for a request (`MatchedPath`, such as
/// `/users/{id}`), for layers added with `Router::layer` or
/// `Router::route_layer`. Requests that matched no route (a 404) have no
/// key. No allocation per call.
#[cfg(feature = "axum")]
#[derive(Debug, Clone, Copy, Default)]
pub struct ByRoute;

#[cfg(feature = "axum")]
impl ByRoute {
    fn path<B>(req: &http::Request<B>) -> Option<&str> {
        req.extensions()
            .get::<axum::extract::MatchedPath>()
            .map(axum::extract::MatchedPath::as_str)
    }
}

#[cfg(feature = "axum")]
impl<B> Keyer<http::Request<B>> for ByRoute {
    #[inline]
    fn hash_key<H: Hasher>(&self, req: &http::Request<B>, state: &mut H) -> bool {
        match Self::path(req) {
            Some(path) => {
                path.hash(state);
                true
            }
            None => false,
        }
    }

    fn label(&self, req: &http::Request<B>) -> Arc<str> {
        Arc::from(Self::path(req).unwrap_or(OTHER))
    }
}

/// The hash of `req`'s key under `hasher`, if it has one.
#[cfg(feature = "circuit-breaker")]
#[inline]
pub(crate) fn key_of<Req, Kr: Keyer<Req>>(
    keyer: &Kr,
    hasher: &std::collections::hash_map::RandomState,
    req: &Req,
) -> Option<u64> {
    let mut state = std::hash::BuildHasher::build_hasher(hasher);
    keyer.hash_key(req, &mut state).then(|| state.finish())
}

/// State per key, at most `max` keys (least recently used evicted), each
/// with a label from a bounded set.
#[cfg(bulwark_registry)]
pub(crate) struct Registry<K, V> {
    entries: moka::sync::Cache<K, V>,
    labels_given: std::sync::atomic::AtomicUsize,
    max: usize,
}

/// The label of keys past the bound.
pub(crate) const OTHER: &str = "other";

/// The label of requests without a key.
#[cfg(bulwark_registry)]
pub(crate) const NONE: &str = "none";

#[cfg(bulwark_registry)]
impl<K, V> Registry<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(max: usize) -> Self {
        Registry {
            entries: moka::sync::Cache::builder()
                .max_capacity(max as u64)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build(),
            labels_given: std::sync::atomic::AtomicUsize::new(0),
            max,
        }
    }

    /// The state of `key`, made by `make` with the key's label when the key
    /// is new (or was evicted). A label of `None` is a fixed value that
    /// does not count against the bound: `none`.
    #[inline]
    pub(crate) fn get_or_make(
        &self,
        key: &K,
        label: impl FnOnce() -> Option<Arc<str>>,
        make: impl FnOnce(Arc<str>) -> V,
    ) -> V {
        if let Some(value) = self.entries.get(key) {
            return value;
        }
        self.entries
            .get_with_by_ref(key, || make(self.label(label)))
    }

    /// `label()` while the bound of distinct labels allows, `other` after.
    fn label(&self, label: impl FnOnce() -> Option<Arc<str>>) -> Arc<str> {
        match label() {
            Some(label)
                if self
                    .labels_given
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    < self.max =>
            {
                label
            }
            Some(_) => Arc::from(OTHER),
            None => Arc::from(NONE),
        }
    }

    /// The state of `key`, if it is kept.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.entries.get(key)
    }

    /// Every key kept and its state, after pending evictions.
    #[cfg(feature = "circuit-breaker")]
    pub(crate) fn entries(&self) -> Vec<(Arc<K>, V)> {
        self.entries.run_pending_tasks();
        self.entries.iter().collect()
    }
}

#[cfg(bulwark_registry)]
impl<K, V> fmt::Debug for Registry<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, bulwark_registry))]
mod tests {
    use super::*;

    #[test]
    fn keys_past_the_bound_are_evicted_least_recently_used_first() {
        let registry: Registry<u32, Arc<str>> = Registry::new(3);
        for key in 0..3 {
            registry.get_or_make(&key, || Some(Arc::from(key.to_string())), |label| label);
        }
        // Key 0 is used again: 1 is now the least recently used. (Uses are
        // recorded in batches; the test applies them before going on.)
        registry.entries.run_pending_tasks();
        assert!(registry.get(&0).is_some());
        registry.entries.run_pending_tasks();
        registry.get_or_make(&3, || Some(Arc::from("3")), |label| label);
        let kept: Vec<u32> = {
            let mut keys: Vec<u32> = registry.entries().into_iter().map(|(k, _)| *k).collect();
            keys.sort_unstable();
            keys
        };
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert!(!kept.contains(&1), "{kept:?}");
    }

    #[test]
    fn labels_past_the_bound_are_other() {
        let registry: Registry<u32, Arc<str>> = Registry::new(2);
        let labels: Vec<Arc<str>> = (0..4)
            .map(|key| {
                registry.get_or_make(&key, || Some(Arc::from(key.to_string())), |label| label)
            })
            .collect();
        assert_eq!(
            labels.iter().map(|l| &**l).collect::<Vec<_>>(),
            vec!["0", "1", OTHER, OTHER]
        );
    }
}
