//! Consistent hashing: a request's key maps to an endpoint, and keeps
//! mapping to it while the set changes around it.
//!
//! The map is Lamping and Veach's jump consistent hash over the endpoints'
//! places in the set (written out here: ten lines, no memory, no table to
//! rebuild). It needs no ring: a discovery change costs nothing more, and
//! a pick costs O(ln n).
//!
//! - An endpoint added takes its share of keys (1 in n+1) from the others,
//!   and no other key moves.
//! - An endpoint removed gives its keys to the last endpoint, which moves
//!   into its place; the last endpoint's own keys spread over the rest:
//!   about 2 in n move, where a ring moves 1 in n.
//! - An endpoint that cannot take the request (ejected, busy, or over the
//!   load bound) is skipped: the key's next candidate is drawn from a
//!   rehash of the key, so only that endpoint's keys go elsewhere, spread
//!   over the others, and they come back with it.
//! - With a balance factor (`BalanceConfig::hash_balance_factor`, 125 % by
//!   default), an endpoint with more than that share of the average of
//!   the requests in flight is skipped too ("consistent hashing with
//!   bounded loads", Mirrokni, Thorup and Zadimoghaddam): a hot key spills
//!   over instead of overloading its endpoint.
//!
//! Weights are not used.

use std::hash::{Hash, Hasher};

/// What consistent hashing reads from a request: see
/// [`LoadBalance::hash_by`](super::LoadBalance::hash_by).
pub trait RequestHash<Req> {
    /// The request's hash, or `None` for a request the strategy places.
    fn hash(&self, request: &Req) -> Option<u64>;
}

/// No consistent hashing: every request goes where the strategy says.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHash;

impl<Req> RequestHash<Req> for NoHash {
    #[inline(always)]
    fn hash(&self, _: &Req) -> Option<u64> {
        None
    }
}

/// Consistent hashing by the key a closure takes from each request; see
/// [`LoadBalance::hash_by`](super::LoadBalance::hash_by).
#[derive(Clone)]
pub struct HashBy<F>(pub(crate) F);

impl<F> std::fmt::Debug for HashBy<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashBy(..)")
    }
}

impl<Req, F, T> RequestHash<Req> for HashBy<F>
where
    F: Fn(&Req) -> Option<T>,
    T: Hash,
{
    #[inline]
    fn hash(&self, request: &Req) -> Option<u64> {
        let key = (self.0)(request)?;
        let mut hasher = StableHasher::default();
        key.hash(&mut hasher);
        Some(hasher.finish())
    }
}

/// FNV-1a with a final mix. Written here rather than std's
/// `DefaultHasher`, whose algorithm may change between Rust releases: a
/// key must map to the same endpoint in every process that balances over
/// the same set (two gateways sharing a fleet of caches), whichever
/// compiler built it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for StableHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    // Integers as little-endian bytes, and `usize` as 64 bits: the same
    // hash on every platform (std's defaults use the native order).
    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.write(&n.to_le_bytes());
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write(&n.to_le_bytes());
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.write(&n.to_le_bytes());
    }

    #[inline]
    fn write_u128(&mut self, n: u128) {
        self.write(&n.to_le_bytes());
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        mix(self.0)
    }
}

/// SplitMix64's finaliser: every input bit moves every output bit.
#[inline]
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The key's candidate number `attempt`: the first is the key itself, each
/// next one a rehash, so that skipping an endpoint moves only its keys.
#[inline]
pub(crate) fn candidate(hash: u64, attempt: u64) -> u64 {
    if attempt == 0 {
        hash
    } else {
        mix(hash ^ attempt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

/// Jump consistent hash (Lamping and Veach, 2014): the bucket of `key`
/// among `buckets` (at least 1). Growing `buckets` by one moves a key only
/// into the new bucket, with probability 1 / (buckets).
#[inline]
pub(crate) fn jump(mut key: u64, buckets: usize) -> usize {
    let (mut b, mut j) = (0u64, 0u64);
    while j < buckets as u64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as u64;
    }
    b as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_moves_only_into_the_new_bucket_and_spreads_evenly() {
        let keys = 100_000u64;
        let mut counts = vec![0u32; 101];
        let mut moved = 0;
        for key in 0..keys {
            let key = mix(key);
            let before = jump(key, 100);
            let after = jump(key, 101);
            assert!(before < 100 && after < 101);
            if before != after {
                assert_eq!(after, 100, "a key moved between old buckets");
                moved += 1;
            }
            counts[after] += 1;
        }
        // 1 in 101 is 990.
        assert!((890..1_090).contains(&moved), "{moved} keys moved");
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 850 && *max < 1_150, "{min}..{max}");
    }

    #[test]
    fn the_hash_of_a_key_is_stable() {
        let hash = |key: &str| {
            let mut hasher = StableHasher::default();
            key.hash(&mut hasher);
            hasher.finish()
        };
        // Fixed values: a change here re-maps every user's keys.
        assert_eq!(hash("user-42"), 3_187_500_886_272_966_307);
        assert_ne!(hash("user-42"), hash("user-43"));
        assert_eq!(jump(0, 1), 0);
        assert_eq!(candidate(7, 0), 7);
        assert_ne!(candidate(7, 1), candidate(7, 2));
    }
}
