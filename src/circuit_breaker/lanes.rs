//! Several reference counts to one breaker, so that calls on different
//! threads do not all change the same one.
//!
//! Each call's response future holds a reference to its breaker until the
//! outcome is recorded: one `Arc` clone and drop per call. With one `Arc`,
//! every core calling changes the same counter, and its cache line moves
//! from core to core on every call: with 8 tasks on 2 threads, that was
//! the shared breaker's largest cost once its window stopped writing on
//! success. Here a breaker is reached through a few [`Lane`]s, each an
//! `Arc` of its own (on lines of its own) that keeps the breaker alive; a
//! call takes the lane of its thread. Written by hand: sharded counters
//! exist as crates, but not one that hands out owned references.

use std::cell::Cell;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use super::state::Breaker;

/// What one lane counts: a reference to the breaker, aligned so that no
/// two lanes' counts share a line.
#[derive(Debug)]
#[repr(align(128))]
struct Counted(Arc<Breaker>);

/// A reference to a breaker through one lane's count.
#[derive(Debug, Clone)]
pub(crate) struct Lane(Arc<Counted>);

impl Lane {
    /// A lane of its own to `breaker`, for one caller that does not share
    /// it across threads much (a breaker per key).
    pub(crate) fn single(breaker: Arc<Breaker>) -> Lane {
        Lane(Arc::new(Counted(breaker)))
    }

    /// The breaker, for a handle.
    #[cfg(any(feature = "keyed", test))]
    pub(crate) fn shared(&self) -> &Arc<Breaker> {
        &self.0.0
    }
}

impl Deref for Lane {
    type Target = Breaker;

    #[inline]
    fn deref(&self) -> &Breaker {
        &self.0.0
    }
}

/// The lanes of one breaker; clones share them.
#[derive(Debug, Clone)]
pub(crate) struct Lanes(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    /// The breaker, reached directly for what a service decides itself.
    breaker: Arc<Breaker>,
    /// A power of two of lanes.
    lanes: Box<[Lane]>,
}

impl Lanes {
    /// Lanes to `breaker`: twice the cores, so that threads seldom share
    /// one, as a power of two, at most 16 (4 KiB a breaker: with more cores
    /// a few threads share a lane, which still spreads the counting).
    pub(crate) fn new(breaker: Arc<Breaker>) -> Self {
        static COUNT: OnceLock<usize> = OnceLock::new();
        let count = *COUNT.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            (2 * cores).next_power_of_two().min(16)
        });
        let lanes = (0..count).map(|_| Lane::single(breaker.clone())).collect();
        Lanes(Arc::new(Shared { breaker, lanes }))
    }

    /// The lane of the calling thread, for a call to hold.
    #[inline]
    pub(crate) fn lane(&self) -> Lane {
        let lanes = &self.0.lanes;
        // A power of two: the mask is the modulo.
        lanes[thread_index() & (lanes.len() - 1)].clone()
    }

    /// The breaker, for a handle.
    pub(crate) fn shared(&self) -> &Arc<Breaker> {
        &self.0.breaker
    }
}

impl Deref for Lanes {
    type Target = Breaker;

    #[inline]
    fn deref(&self) -> &Breaker {
        &self.0.breaker
    }
}

/// A number per thread, given out in turn when a thread first asks.
#[inline]
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| match index.get() {
        usize::MAX => {
            let given = NEXT.fetch_add(1, Relaxed) % (usize::MAX - 1);
            index.set(given);
            given
        }
        given => given,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit_breaker::CircuitBreakerConfig;

    #[test]
    fn each_thread_takes_its_own_lane_to_the_one_breaker() {
        let breaker = Arc::new(Breaker::new(
            CircuitBreakerConfig::default().validate().unwrap(),
        ));
        let lanes = Lanes::new(breaker.clone());
        let mask = lanes.0.lanes.len() - 1;
        let (here, there) = (
            thread_index(),
            std::thread::spawn(thread_index).join().unwrap(),
        );
        assert_ne!(here, there);
        let lane = lanes.lane();
        assert!(Arc::ptr_eq(&lane.0, &lanes.0.lanes[here & mask].0));
        // A thread keeps its lane, and every lane leads to the breaker.
        assert!(Arc::ptr_eq(&lane.0, &lanes.lane().0));
        assert!(
            lanes
                .0
                .lanes
                .iter()
                .all(|l| Arc::ptr_eq(l.shared(), &breaker))
        );
        // A lane keeps the breaker alive on its own.
        drop((lanes, breaker));
        assert_eq!(Arc::strong_count(lane.shared()), 1);
    }
}
