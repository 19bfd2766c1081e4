//! The endpoint set: the snapshot every balancer clone reads without a
//! lock, and the writer that discovery changes go through.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use super::endpoint::Endpoint;
use super::tree::Tree;

/// An immutable snapshot of the endpoints. Readers never lock: each
/// balancer clone holds the snapshot it last saw, and a change publishes a
/// new one that shares all but one path of the old (see [`Tree`]).
#[derive(Debug)]
pub(crate) struct EndpointSet<K, S> {
    tree: Tree<Arc<Endpoint<K, S>>>,
}

impl<K, S> EndpointSet<K, S> {
    pub(crate) fn empty() -> Self {
        EndpointSet {
            tree: Tree::new(false),
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.tree.len()
    }

    /// The endpoint at `index`, below [`len`](Self::len).
    #[inline]
    pub(crate) fn get(&self, index: usize) -> &Arc<Endpoint<K, S>> {
        self.tree.get(index)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Endpoint<K, S>>> {
        self.tree.iter()
    }

    /// The weights' view of the set, for the weighted strategies.
    pub(crate) fn tree(&self) -> &Tree<Arc<Endpoint<K, S>>> {
        &self.tree
    }
}

/// Where changes are made: the set being built, and where each key is in
/// it. One per balancer, behind a lock that readers never take.
#[derive(Debug)]
pub(crate) struct Writer<K, S> {
    tree: Tree<Arc<Endpoint<K, S>>>,
    index: HashMap<K, usize>,
}

impl<K, S> Writer<K, S>
where
    K: Hash + Eq + Clone,
{
    /// An empty set; with `cycles`, it keeps what weighted round robin
    /// reads.
    pub(crate) fn new(cycles: bool) -> Self {
        Writer {
            tree: Tree::new(cycles),
            index: HashMap::new(),
        }
    }

    /// Takes the endpoint with `key` out of the set: O(log n).
    pub(crate) fn remove(&mut self, key: &K) -> Option<Arc<Endpoint<K, S>>> {
        let at = self.index.remove(key)?;
        let removed = self.tree.swap_remove(at)?;
        if at < self.tree.len() {
            // The last endpoint moved into the hole.
            let moved = self.tree.get(at).key.clone();
            self.index.insert(moved, at);
        }
        Some(removed)
    }

    /// Adds `endpoint` at the end: O(log n). Its key must not be in the set.
    pub(crate) fn push(&mut self, endpoint: Arc<Endpoint<K, S>>) {
        self.index.insert(endpoint.key.clone(), self.tree.len());
        let weight = endpoint.weight;
        self.tree.push(endpoint, weight);
    }

    /// The set as it is now, for readers: the tables of what changed
    /// brought up to date, then one reference count.
    pub(crate) fn snapshot(&mut self) -> EndpointSet<K, S> {
        self.tree.seal();
        EndpointSet {
            tree: self.tree.clone(),
        }
    }
}
