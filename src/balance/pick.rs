//! Each strategy's choice, as a plain function over the endpoint set's
//! size, weights or costs: what the balancer calls on every request, and
//! what the tests call without building a service.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use rand::RngExt;
use rand::rngs::SmallRng;

use super::tree::Tree;

/// Round robin: the next of `n` (at least 1) in turn, shared by every
/// clone through `cursor`.
#[inline]
pub(crate) fn round_robin(n: usize, cursor: &AtomicUsize) -> usize {
    cursor.fetch_add(1, Relaxed) % n
}

/// Smooth weighted round robin: the next of the tree's cycle (the tree
/// keeps cycles, and is not empty; see [`Tree::next_in_cycle`]).
#[inline]
pub(crate) fn weighted_round_robin<T: Clone>(tree: &Tree<T>) -> usize {
    tree.next_in_cycle()
}

/// Uniformly at random, below `n` (at least 1): multiply-high maps the
/// random number onto the range without a division.
#[inline]
pub(crate) fn random(rng: &mut SmallRng, n: usize) -> usize {
    let r: u64 = rng.random();
    ((u128::from(r) * n as u128) >> 64) as usize
}

/// At random in proportion to the weights (the tree is not empty).
#[inline]
pub(crate) fn weighted_random<T: Clone>(tree: &Tree<T>, rng: &mut SmallRng) -> usize {
    let r: u64 = rng.random();
    let point = ((u128::from(r) * u128::from(tree.total_weight())) >> 64) as u64;
    tree.by_weight(point)
}

/// Two distinct indices below `n` (at least 2) from one random number:
/// each half is mapped onto its range as in [`random`].
#[inline]
pub(crate) fn two_random(rng: &mut SmallRng, n: usize) -> (usize, usize) {
    let r: u64 = rng.random();
    let a = (((r >> 32) * n as u64) >> 32) as usize;
    let mut b = (((r & 0xffff_ffff) * (n as u64 - 1)) >> 32) as usize;
    if b >= a {
        b += 1;
    }
    (a, b)
}

/// A P2C candidate's cost: what [`power_of_two`] compares. Least pending
/// compares its counts as integers, peak EWMA its estimates as `f64`: a
/// count turned into `f64` on every pick costs a conversion per candidate
/// for nothing.
pub(crate) trait Cost: Copy + PartialOrd {
    /// The cost of an endpoint that cannot be used.
    const UNUSABLE: Self;
    /// The cost of an endpoint to take at once (an ejected endpoint whose
    /// probe is due).
    const NONE: Self;
}

impl Cost for f64 {
    const UNUSABLE: f64 = f64::INFINITY;
    const NONE: f64 = 0.0;
}

impl Cost for u64 {
    const UNUSABLE: u64 = u64::MAX;
    const NONE: u64 = 0;
}

/// Power of two choices over `n` endpoints (at least 2), by `cost`
/// ([`Cost::UNUSABLE`]: the endpoint cannot be used): the cheaper of two
/// drawn at random first, the other second. A candidate that cannot be
/// used is no choice: a third endpoint is drawn to compare the other with,
/// or a slow endpoint would take every call paired with an ejected one.
#[inline]
pub(crate) fn power_of_two<T: Cost>(
    rng: &mut SmallRng,
    n: usize,
    mut cost: impl FnMut(usize) -> T,
) -> (usize, usize) {
    let (mut a, mut b) = two_random(rng, n);
    let mut cost_a = cost(a);
    let mut cost_b = cost(b);
    if (cost_a == T::UNUSABLE || cost_b == T::UNUSABLE) && n > 2 {
        let mut c = random(rng, n - 2);
        for taken in [a.min(b), a.max(b)] {
            if c >= taken {
                c += 1;
            }
        }
        let cost_c = cost(c);
        if cost_a == T::UNUSABLE {
            (a, cost_a) = (c, cost_c);
        } else {
            (b, cost_b) = (c, cost_c);
        }
    }
    if cost_b < cost_a { (b, a) } else { (a, b) }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::AtomicUsize;

    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn rng() -> SmallRng {
        SmallRng::seed_from_u64(7)
    }

    #[test]
    fn round_robin_takes_each_in_turn() {
        let cursor = AtomicUsize::new(0);
        let picks: Vec<usize> = (0..7).map(|_| round_robin(3, &cursor)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn random_and_two_random_stay_in_range_and_differ() {
        let mut rng = rng();
        for n in [1, 2, 3, 10, 10_000] {
            for _ in 0..1_000 {
                assert!(random(&mut rng, n) < n);
                if n >= 2 {
                    let (a, b) = two_random(&mut rng, n);
                    assert!(a < n && b < n && a != b);
                }
            }
        }
    }

    #[test]
    fn weighted_random_follows_the_weights() {
        let mut tree = Tree::new(false);
        for (item, weight) in [("a", 6), ("b", 3), ("c", 1)] {
            tree.push(item, weight);
        }
        tree.seal();
        let mut rng = rng();
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for _ in 0..100_000 {
            *counts
                .entry(*tree.get(weighted_random(&tree, &mut rng)))
                .or_default() += 1;
        }
        for (item, share) in [("a", 0.6), ("b", 0.3), ("c", 0.1)] {
            let got = f64::from(counts[item]) / 100_000.0;
            assert!((got - share).abs() < 0.01, "{item}: {got}");
        }
    }

    #[test]
    fn power_of_two_prefers_the_cheaper_and_never_an_unusable_one() {
        let mut rng = rng();
        // Costs 0..10: the choice is never the dearer of its pair.
        for _ in 0..1_000 {
            let (first, second) = power_of_two(&mut rng, 10, |i| i as f64);
            assert!(first < second);
        }
        // Endpoint 0 cannot be used: never first while others can.
        let costs = [f64::INFINITY, 5.0, 1.0];
        for _ in 0..1_000 {
            let (first, _) = power_of_two(&mut rng, 3, |i| costs[i]);
            assert_ne!(first, 0);
        }
        // With a third draw, the slow endpoint is not taken for want of a
        // choice: paired with the unusable one, it meets another.
        let costs = [f64::INFINITY, 100.0, 1.0, 1.0];
        let slow = (0..10_000)
            .filter(|_| power_of_two(&mut rng, 4, |i| costs[i]).0 == 1)
            .count();
        assert_eq!(slow, 0, "to the slow one (a sixth without the third draw)");
        // The same with counts, as least pending compares them.
        let counts = [u64::MAX, 100, 1, 1];
        let slow = (0..10_000)
            .filter(|_| power_of_two(&mut rng, 4, |i| counts[i]).0 == 1)
            .count();
        assert_eq!(slow, 0, "to the busy one, by counts");
        for _ in 0..1_000 {
            let (first, second) = power_of_two(&mut rng, 10, |i| i as u64);
            assert!(first < second);
        }
    }
}
