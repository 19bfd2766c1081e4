//! The endpoint set as one snapshot, with what each strategy precomputes.

use std::sync::Arc;

use super::endpoint::Endpoint;

/// The longest smooth weighted round robin cycle kept; larger weights are
/// scaled down to fit, keeping their proportions to within one pick.
const MAX_CYCLE: u64 = 1 << 16;

/// An immutable snapshot of the endpoints. A change builds a new one, so
/// readers never lock: each balancer clone holds the snapshot it last saw.
#[derive(Debug)]
pub(crate) struct EndpointSet<K, S> {
    pub(crate) endpoints: Vec<Arc<Endpoint<K, S>>>,
    /// nginx's smooth weighted round robin order, one cycle of it.
    pub(crate) cycle: Box<[u32]>,
    /// Running sums of the weights, for weighted random picks.
    pub(crate) cumulative: Box<[u64]>,
}

impl<K, S> EndpointSet<K, S> {
    pub(crate) fn new(endpoints: Vec<Arc<Endpoint<K, S>>>) -> Self {
        let weights: Vec<u64> = endpoints.iter().map(|e| u64::from(e.weight)).collect();
        let cumulative = weights
            .iter()
            .scan(0u64, |sum, w| {
                *sum += w;
                Some(*sum)
            })
            .collect();
        EndpointSet {
            cycle: smooth_weighted_cycle(&weights),
            cumulative,
            endpoints,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub(crate) fn total_weight(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The endpoint that owns the point `r` in [0, total weight).
    #[inline]
    pub(crate) fn by_weight(&self, r: u64) -> usize {
        self.cumulative
            .partition_point(|&c| c <= r)
            .min(self.len().saturating_sub(1))
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// One cycle of nginx's smooth weighted round robin: each step adds every
/// weight to its endpoint's running score, picks the highest score (the
/// first on ties) and takes the total off it. Weights 5, 1, 1 give
/// `0 0 1 0 2 0 0`: each endpoint `weight` times per cycle, spread out.
///
/// Computed once per endpoint set, so that a pick is an index into this
/// table: the algorithm itself mutates every score on every pick, which
/// would need a lock shared by all clones of the balancer.
pub(crate) fn smooth_weighted_cycle(weights: &[u64]) -> Box<[u32]> {
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    let mut weights: Vec<u64> = weights.iter().map(|w| w / divisor).collect();
    let total: u64 = weights.iter().sum();
    if total > MAX_CYCLE {
        weights = weights
            .iter()
            .map(|w| (w * MAX_CYCLE / total).max(1))
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
        cycle.push(best as u32);
    }
    cycle.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::smooth_weighted_cycle;

    #[test]
    fn nginx_example() {
        assert_eq!(&*smooth_weighted_cycle(&[5, 1, 1]), &[0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn common_factors_are_divided_out_and_huge_weights_scaled() {
        assert_eq!(&*smooth_weighted_cycle(&[4, 2]), &[0, 1, 0]);
        let cycle = smooth_weighted_cycle(&[1_000_000, 3_000_000, 1]);
        assert!(cycle.len() as u64 <= super::MAX_CYCLE + 3);
        assert!(cycle.contains(&2), "every endpoint stays in the cycle");
    }
}
