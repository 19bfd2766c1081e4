//! A persistent vector with weights: what a balancer's snapshot of its
//! endpoint set is made of.
//!
//! Written by hand rather than taken from a persistent-collections crate:
//! besides copy-on-write paths (a change copies the nodes from the root to
//! one leaf, at most [`FANOUT`] entries each, so O(log n) work; a reader
//! keeps the snapshot it holds without a lock), every node keeps what the
//! weighted strategies need — running sums of its children's weights (a
//! weighted pick descends in O(log n)) and, in leaves when asked, one cycle
//! of nginx's smooth weighted round robin with a cursor — which a general
//! persistent vector has no place for.
//!
//! Weighted round robin over one leaf (up to 64 items) follows nginx's
//! cycle exactly. Over more, a pick descends from the root: each inner node
//! walks its children's total weights by a golden-ratio stride, and the
//! leaf takes the next step of its cycle ([`Tree::next_in_cycle`]). Every
//! item still gets exactly its weight per cycle of the total, the picks
//! stay interleaved at every level, and a change rebuilds one path.
//!
//! The tree is dense: every leaf but the last is full, so an index is read
//! digit by digit (six bits a level) with no counts kept. A removal moves
//! the last item into the hole (`swap_remove`), keeping it dense.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Children per node.
pub(crate) const FANOUT: usize = 64;
const BITS: u32 = 6;
const MASK: usize = FANOUT - 1;

/// The longest smooth weighted round robin cycle a leaf keeps; larger
/// weights are scaled down to fit, keeping their proportions to within one
/// pick in this many.
pub(crate) const MAX_CYCLE: u64 = 1 << 12;

/// A persistent vector of `T` with a weight per item. Cloning it is one
/// reference count; changing a clone copies the nodes on one path.
#[derive(Debug)]
pub(crate) struct Tree<T> {
    root: Node<T>,
    len: usize,
    /// Levels above the leaves: 0 when the root is a leaf.
    height: u32,
    /// Whether nodes keep a round robin cycle (only the weighted round
    /// robin strategy reads it; the others skip its cost).
    cycles: bool,
}

impl<T> Clone for Tree<T> {
    fn clone(&self) -> Self {
        Tree {
            root: self.root.clone(),
            len: self.len,
            height: self.height,
            cycles: self.cycles,
        }
    }
}

#[derive(Debug)]
enum Node<T> {
    Leaf(Arc<Leaf<T>>),
    Inner(Arc<Inner<T>>),
}

impl<T> Clone for Node<T> {
    fn clone(&self) -> Self {
        match self {
            Node::Leaf(leaf) => Node::Leaf(leaf.clone()),
            Node::Inner(inner) => Node::Inner(inner.clone()),
        }
    }
}

#[derive(Debug, Clone)]
struct Leaf<T> {
    items: Vec<T>,
    weights: Vec<u32>,
    table: Table,
    /// Changed since its table was computed.
    dirty: bool,
}

#[derive(Debug, Clone)]
struct Inner<T> {
    children: Vec<Node<T>>,
    table: Table,
    /// Changed (itself or below) since its table was computed.
    dirty: bool,
}

/// What a node precomputes over its entries (items or children).
#[derive(Debug, Default)]
struct Table {
    /// Running sums of the entries' weights.
    cumulative: Vec<u64>,
    /// In a leaf, one cycle of smooth weighted round robin over its items,
    /// when the tree keeps cycles.
    cycle: Box<[u8]>,
    /// In an inner node, the step of its walk through its children's
    /// weights (see [`golden_stride`]).
    stride: u64,
    /// The position in `cycle`, or in the walk; a copy of the node starts
    /// where it was.
    cursor: AtomicUsize,
}

impl Clone for Table {
    fn clone(&self) -> Self {
        Table {
            cumulative: self.cumulative.clone(),
            cycle: self.cycle.clone(),
            stride: self.stride,
            cursor: AtomicUsize::new(self.cursor.load(Relaxed)),
        }
    }
}

impl Table {
    /// Recomputes the sums, and with `cycle` (the longest cycle allowed)
    /// the cycle.
    fn rebuild(&mut self, weights: impl Iterator<Item = u64>, cycle: Option<u64>) {
        self.cumulative.clear();
        let mut sum = 0u64;
        for weight in weights {
            sum = sum.saturating_add(weight);
            self.cumulative.push(sum);
        }
        if let Some(max) = cycle {
            let weights: Vec<u64> = self
                .cumulative
                .iter()
                .scan(0, |previous, &c| {
                    let weight = c - *previous;
                    *previous = c;
                    Some(weight)
                })
                .collect();
            self.cycle = smooth_weighted_cycle(&weights, max);
        }
    }

    fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The entry that owns `point` (below the total), and the point within
    /// it.
    #[inline]
    fn locate(&self, point: u64) -> (usize, u64) {
        let slot = self
            .cumulative
            .partition_point(|&c| c <= point)
            .min(self.cumulative.len().saturating_sub(1));
        let before = if slot == 0 {
            0
        } else {
            self.cumulative[slot - 1]
        };
        (slot, point.saturating_sub(before))
    }

    /// The next entry of the cycle.
    #[inline]
    fn next(&self) -> usize {
        let step = self.cursor.fetch_add(1, Relaxed) % self.cycle.len().max(1);
        self.cycle.get(step).map_or(0, |&slot| usize::from(slot))
    }

    /// The next entry of the walk: step `c` lands on the point
    /// `c × stride` modulo the total, and the entry that owns it is next. As
    /// the stride is prime to the total, a walk of `total` steps lands on
    /// every point once, so each entry comes exactly its weight times; as
    /// it is near the golden ratio of the total, the visits to an entry
    /// come round at nearly even gaps (at most three lengths, by the
    /// three-gap theorem).
    #[inline]
    fn walk(&self) -> usize {
        let total = self.total().max(1);
        let step = self.cursor.fetch_add(1, Relaxed) as u64 % total;
        // The product fits in 64 bits while the total does in 32 (the
        // usual case: a 128-bit division costs several times more).
        let point = if total <= u64::from(u32::MAX) {
            step * self.stride % total
        } else {
            (u128::from(step) * u128::from(self.stride) % u128::from(total)) as u64
        };
        self.locate(point).0
    }
}

impl<T: Clone> Node<T> {
    /// Recomputes the tables of the nodes changed since the last time,
    /// bottom up: each once, however many changes it had.
    fn seal(&mut self, cycles: bool) {
        if !self.is_dirty() {
            return;
        }
        match self {
            Node::Leaf(leaf) => Arc::make_mut(leaf).rebuild(cycles),
            Node::Inner(inner) => {
                let inner = Arc::make_mut(inner);
                for child in &mut inner.children {
                    child.seal(cycles);
                }
                inner.rebuild(cycles);
            }
        }
    }
}

impl<T> Node<T> {
    fn empty_leaf() -> Self {
        Node::Leaf(Arc::new(Leaf {
            items: Vec::new(),
            weights: Vec::new(),
            table: Table::default(),
            dirty: false,
        }))
    }

    fn total(&self) -> u64 {
        match self {
            Node::Leaf(leaf) => leaf.table.total(),
            Node::Inner(inner) => inner.table.total(),
        }
    }

    fn is_dirty(&self) -> bool {
        match self {
            Node::Leaf(leaf) => leaf.dirty,
            Node::Inner(inner) => inner.dirty,
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Node::Leaf(leaf) => leaf.items.is_empty(),
            Node::Inner(inner) => inner.children.is_empty(),
        }
    }
}

/// How many items a tree of `height` holds at most.
fn capacity(height: u32) -> usize {
    1usize
        .checked_shl(BITS * (height + 1))
        .unwrap_or(usize::MAX)
}

impl<T: Clone> Tree<T> {
    /// An empty tree; with `cycles`, it keeps what weighted round robin
    /// reads.
    pub(crate) fn new(cycles: bool) -> Self {
        Tree {
            root: Node::empty_leaf(),
            len: 0,
            height: 0,
            cycles,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Brings the weights' tables up to date after changes: what the
    /// weighted reads ([`total_weight`](Self::total_weight),
    /// [`by_weight`](Self::by_weight), [`next_in_cycle`](Self::next_in_cycle))
    /// need. A batch of changes costs one rebuild of each node it touched.
    pub(crate) fn seal(&mut self) {
        self.root.seal(self.cycles);
    }

    /// The sum of the weights.
    pub(crate) fn total_weight(&self) -> u64 {
        self.root.total()
    }

    /// The item at `index`, which must be below [`len`](Self::len).
    #[inline(always)]
    pub(crate) fn get(&self, index: usize) -> &T {
        let mut node = &self.root;
        let mut height = self.height;
        loop {
            match node {
                Node::Leaf(leaf) => return &leaf.items[index & MASK],
                Node::Inner(inner) => {
                    node = &inner.children[(index >> (BITS * height)) & MASK];
                    height -= 1;
                }
            }
        }
    }

    /// The weight of the item at `index`.
    #[cfg(test)]
    pub(crate) fn weight(&self, index: usize) -> u32 {
        let mut node = &self.root;
        let mut height = self.height;
        loop {
            match node {
                Node::Leaf(leaf) => return leaf.weights[index & MASK],
                Node::Inner(inner) => {
                    node = &inner.children[(index >> (BITS * height)) & MASK];
                    height -= 1;
                }
            }
        }
    }

    /// The index of the item that owns `point` in [0, total weight): each
    /// item owns as many points as its weight, in order.
    #[inline]
    pub(crate) fn by_weight(&self, point: u64) -> usize {
        let mut node = &self.root;
        let mut point = point;
        let mut index = 0;
        loop {
            match node {
                Node::Leaf(leaf) => return index | leaf.table.locate(point).0,
                Node::Inner(inner) => {
                    let (slot, within) = inner.table.locate(point);
                    index = (index | slot) << BITS;
                    point = within;
                    node = &inner.children[slot];
                }
            }
        }
    }

    /// The next index of smooth weighted round robin: each item `weight`
    /// times per cycle, interleaved. The tree must keep cycles, be sealed
    /// and not be empty. Each inner node on the way down takes the next
    /// step of its walk, the leaf the next of its cycle.
    #[inline]
    pub(crate) fn next_in_cycle(&self) -> usize {
        let mut node = &self.root;
        let mut index = 0;
        loop {
            match node {
                Node::Leaf(leaf) => return index | leaf.table.next(),
                Node::Inner(inner) => {
                    let slot = inner.table.walk();
                    index = (index | slot) << BITS;
                    node = &inner.children[slot];
                }
            }
        }
    }

    /// The items in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        (0..self.len).map(|i| self.get(i))
    }

    /// Appends `item`.
    pub(crate) fn push(&mut self, item: T, weight: u32) {
        if self.len == capacity(self.height) {
            let old = std::mem::replace(&mut self.root, Node::empty_leaf());
            self.root = Node::Inner(Arc::new(Inner {
                children: vec![old],
                table: Table::default(),
                dirty: true,
            }));
            self.height += 1;
        }
        push_at(&mut self.root, self.height, self.len, item, weight);
        self.len += 1;
    }

    /// Replaces the item at `index` (below [`len`](Self::len)), and gives
    /// the old one back.
    pub(crate) fn set(&mut self, index: usize, item: T, weight: u32) -> T {
        set_at(&mut self.root, self.height, index, item, weight)
    }

    /// Removes the last item, and gives it back with its weight.
    pub(crate) fn pop(&mut self) -> Option<(T, u32)> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let popped = pop_at(&mut self.root, self.height, self.len);
        // Keep the root as low as the items allow.
        while self.height > 0 && self.len <= capacity(self.height - 1) {
            let child = match &self.root {
                Node::Inner(inner) => inner.children.first().cloned(),
                Node::Leaf(_) => None,
            };
            self.root = child.unwrap_or_else(Node::empty_leaf);
            self.height -= 1;
        }
        popped
    }

    /// Removes the item at `index` (below [`len`](Self::len)), moves the
    /// last item into its place, and gives the removed one back.
    pub(crate) fn swap_remove(&mut self, index: usize) -> Option<T> {
        let (last, weight) = self.pop()?;
        if index >= self.len {
            return Some(last);
        }
        Some(self.set(index, last, weight))
    }
}

impl<T> Inner<T> {
    fn rebuild(&mut self, cycles: bool) {
        let totals: Vec<u64> = self.children.iter().map(Node::total).collect();
        self.table.rebuild(totals.into_iter(), None);
        if cycles {
            self.table.stride = golden_stride(self.table.total());
        }
        self.dirty = false;
    }
}

impl<T> Leaf<T> {
    fn rebuild(&mut self, cycles: bool) {
        let weights: Vec<u64> = self.weights.iter().map(|&w| u64::from(w)).collect();
        self.table
            .rebuild(weights.into_iter(), cycles.then_some(MAX_CYCLE));
        self.dirty = false;
    }
}

fn push_at<T: Clone>(node: &mut Node<T>, height: u32, index: usize, item: T, weight: u32) {
    match node {
        Node::Leaf(leaf) => {
            let leaf = Arc::make_mut(leaf);
            leaf.items.push(item);
            leaf.weights.push(weight);
            leaf.dirty = true;
        }
        Node::Inner(inner) => {
            let inner = Arc::make_mut(inner);
            let slot = (index >> (BITS * height)) & MASK;
            if slot == inner.children.len() {
                inner.children.push(empty_node(height - 1));
            }
            push_at(&mut inner.children[slot], height - 1, index, item, weight);
            inner.dirty = true;
        }
    }
}

/// An empty node `height` levels above the leaves.
fn empty_node<T>(height: u32) -> Node<T> {
    let mut node = Node::empty_leaf();
    for _ in 0..height {
        node = Node::Inner(Arc::new(Inner {
            children: vec![node],
            table: Table::default(),
            dirty: true,
        }));
    }
    node
}

fn set_at<T: Clone>(node: &mut Node<T>, height: u32, index: usize, item: T, weight: u32) -> T {
    match node {
        Node::Leaf(leaf) => {
            let leaf = Arc::make_mut(leaf);
            let slot = index & MASK;
            leaf.weights[slot] = weight;
            let old = std::mem::replace(&mut leaf.items[slot], item);
            leaf.dirty = true;
            old
        }
        Node::Inner(inner) => {
            let inner = Arc::make_mut(inner);
            let slot = (index >> (BITS * height)) & MASK;
            let old = set_at(&mut inner.children[slot], height - 1, index, item, weight);
            inner.dirty = true;
            old
        }
    }
}

fn pop_at<T: Clone>(node: &mut Node<T>, height: u32, index: usize) -> Option<(T, u32)> {
    match node {
        Node::Leaf(leaf) => {
            let leaf = Arc::make_mut(leaf);
            // A dense tree's last leaf holds the last item.
            let popped = leaf.items.pop().zip(leaf.weights.pop());
            leaf.dirty = true;
            popped
        }
        Node::Inner(inner) => {
            let inner = Arc::make_mut(inner);
            let slot = (index >> (BITS * height)) & MASK;
            let item = pop_at(&mut inner.children[slot], height - 1, index);
            if inner.children[slot].is_empty() {
                inner.children.pop();
            }
            inner.dirty = true;
            item
        }
    }
}

/// One cycle of nginx's smooth weighted round robin: each step adds every
/// weight to its entry's running score, picks the highest score (the first
/// on ties) and takes the total off it. Weights 5, 1, 1 give
/// `0 0 1 0 2 0 0`: each entry `weight` times per cycle, spread out.
///
/// Computed when a node changes, so that a pick is an index into this
/// table: the algorithm itself mutates every score on every pick, which
/// would need a lock shared by all clones of the balancer.
pub(crate) fn smooth_weighted_cycle(weights: &[u64], max: u64) -> Box<[u8]> {
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    let mut weights: Vec<u64> = weights.iter().map(|w| w / divisor).collect();
    let total: u64 = weights.iter().sum();
    if total > max {
        weights = weights
            .iter()
            .map(|&w| (u128::from(w) * u128::from(max) / u128::from(total)).max(1) as u64)
            .collect();
    }
    let total: i64 = weights.iter().sum::<u64>() as i64;
    let mut scores = vec![0i64; weights.len()];
    let mut cycle = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            scores[i] += *w as i64;
            if scores[i] > scores[best] {
                best = i;
            }
        }
        scores[best] -= total;
        // At most `FANOUT` entries: an index fits a byte.
        cycle.push(best as u8);
    }
    cycle.into_boxed_slice()
}

/// The integer nearest 0.618 of `total` that is prime to it (1 below 3).
fn golden_stride(total: u64) -> u64 {
    if total < 3 {
        return 1;
    }
    let mut stride = ((total as f64) * 0.618_033_988_749_894_9).round() as u64;
    stride = stride.clamp(1, total - 1);
    // Numbers prime to `total` are dense: a few steps find one.
    while gcd(stride, total) != 1 {
        stride += 1;
    }
    stride
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{FANOUT, MAX_CYCLE, Tree, smooth_weighted_cycle};

    #[test]
    fn nginx_example() {
        assert_eq!(
            &*smooth_weighted_cycle(&[5, 1, 1], MAX_CYCLE),
            &[0, 0, 1, 0, 2, 0, 0]
        );
        let mut tree = Tree::new(true);
        for (item, weight) in [("a", 5), ("b", 1), ("c", 1)] {
            tree.push(item, weight);
        }
        tree.seal();
        let picks: Vec<&str> = (0..14).map(|_| *tree.get(tree.next_in_cycle())).collect();
        assert_eq!(picks.concat(), "aabacaaaabacaa");
    }

    #[test]
    fn common_factors_are_divided_out_and_huge_weights_scaled() {
        assert_eq!(&*smooth_weighted_cycle(&[4, 2], MAX_CYCLE), &[0, 1, 0]);
        let cycle = smooth_weighted_cycle(&[1_000_000, 3_000_000, 1], MAX_CYCLE);
        assert!(cycle.len() as u64 <= MAX_CYCLE + 3);
        assert!(cycle.contains(&2), "every entry stays in the cycle");
    }

    #[test]
    fn a_cycle_over_many_leaves_gives_each_item_its_weight() {
        // 1 500 items over 24 leaves, weights 1 to 3.
        let mut tree = Tree::new(true);
        for i in 0..1_500u32 {
            tree.push(i, 1 + i % 3);
        }
        tree.seal();
        let total = tree.total_weight();
        assert_eq!(total, 3_000);
        let mut counts = vec![0u32; 1_500];
        for _ in 0..total {
            counts[tree.next_in_cycle()] += 1;
        }
        for (i, count) in counts.iter().enumerate() {
            assert_eq!(*count, 1 + i as u32 % 3, "item {i}");
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u32),
        Pop,
        SwapRemove(usize),
        Set(usize, u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u32..50).prop_map(Op::Push),
            1 => Just(Op::Pop),
            2 => any::<usize>().prop_map(Op::SwapRemove),
            1 => (any::<usize>(), 1u32..50).prop_map(|(i, w)| Op::Set(i, w)),
        ]
    }

    fn check(tree: &Tree<u64>, model: &[(u64, u32)]) {
        assert_eq!(tree.len(), model.len());
        let total: u64 = model.iter().map(|(_, w)| u64::from(*w)).sum();
        assert_eq!(tree.total_weight(), total);
        let mut point = 0;
        for (i, (item, weight)) in model.iter().enumerate() {
            assert_eq!(tree.get(i), item);
            assert_eq!(tree.weight(i), *weight);
            // The first and the last point an item owns.
            assert_eq!(tree.by_weight(point), i);
            point += u64::from(*weight);
            assert_eq!(tree.by_weight(point - 1), i);
        }
        assert!(tree.iter().eq(model.iter().map(|(item, _)| item)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The tree behaves as a vector of (item, weight) under every
        /// change, across leaves and levels; a clone taken before a change
        /// keeps what it had.
        #[test]
        fn behaves_as_a_vector_and_snapshots_stay(
            start in 0usize..(FANOUT * FANOUT + 2 * FANOUT),
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            let mut tree = Tree::new(false);
            let mut model = Vec::new();
            for i in 0..start as u64 {
                let weight = 1 + (i % 7) as u32;
                tree.push(i, weight);
                model.push((i, weight));
            }
            let mut next = start as u64;
            tree.seal();
            for op in ops {
                let before = (tree.clone(), model.clone());
                match op {
                    Op::Push(weight) => {
                        tree.push(next, weight);
                        model.push((next, weight));
                        next += 1;
                    }
                    Op::Pop => {
                        prop_assert_eq!(tree.pop(), model.pop());
                    }
                    Op::SwapRemove(i) if !model.is_empty() => {
                        let i = i % model.len();
                        prop_assert_eq!(tree.swap_remove(i), Some(model.swap_remove(i).0));
                    }
                    Op::Set(i, weight) if !model.is_empty() => {
                        let i = i % model.len();
                        let old = tree.set(i, next, weight);
                        prop_assert_eq!(old, model[i].0);
                        model[i] = (next, weight);
                        next += 1;
                    }
                    _ => {}
                }
                tree.seal();
                check(&before.0, &before.1);
            }
            check(&tree, &model);
        }
    }
}
