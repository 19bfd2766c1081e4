//! The budget of extra attempts (retries, hedges): at most a share of
//! first attempts, plus a small floor per second.
//!
//! Written by hand rather than taken from tower's `TpsBudget`, which takes a
//! mutex and reads the clock on every deposit, that is on every request's
//! success path. Here a deposit is one compare-and-swap (none once the
//! bucket is full), and the clock is read only when a retry asks for a
//! token, to add the floor's share for the time since the last refill.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::*};

use tokio::time::Instant;

use crate::config::{Check, ConfigError};

/// A budget of extra attempts (retries, hedges): at most `ratio` of them
/// per first attempt, plus `min_per_second` whatever the traffic, with at
/// most `max` saved up (the budget starts full).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct BudgetConfig {
    /// Extra attempts per first attempt, in [0, 1].
    pub ratio: f64,
    /// Extra attempts per second whatever the traffic.
    pub min_per_second: u32,
    /// Extra attempts that can be saved up; at least 1.
    pub max: u32,
}

impl BudgetConfig {
    /// A budget of `ratio` per first attempt, `min_per_second`, and `max`
    /// saved up.
    pub fn new(ratio: f64, min_per_second: u32, max: u32) -> Self {
        BudgetConfig {
            ratio,
            min_per_second,
            max,
        }
    }

    pub(crate) fn validate(&self, check: Check) -> Result<(), ConfigError> {
        check.ratio("budget.ratio", self.ratio)?;
        check.nonzero("budget.max", self.max.into())
    }

    pub(crate) fn build(&self) -> Budget {
        Budget::new(self.ratio, self.min_per_second, self.max)
    }
}

/// One retry's worth of tokens.
const UNIT: i64 = 1_000;

#[derive(Debug)]
pub(crate) struct Budget {
    tokens: AtomicI64,
    deposit: i64,
    cap: i64,
    /// Tokens added per second, whatever the traffic.
    floor_per_second: i64,
    base: Instant,
    /// Nanoseconds since `base` of the last floor refill.
    refilled: AtomicU64,
}

impl Budget {
    /// `ratio` extra attempts per first attempt, `min_per_second` per
    /// second at least, and at most `max` saved up (the bucket starts full).
    pub(crate) fn new(ratio: f64, min_per_second: u32, max: u32) -> Self {
        let cap = i64::from(max) * UNIT;
        Budget {
            tokens: AtomicI64::new(cap),
            deposit: (ratio * UNIT as f64).round() as i64,
            cap,
            floor_per_second: i64::from(min_per_second) * UNIT,
            base: Instant::now(),
            refilled: AtomicU64::new(0),
        }
    }

    /// A first attempt: adds its share, up to the cap.
    #[inline]
    pub(crate) fn deposit(&self) {
        let (deposit, cap) = (self.deposit, self.cap);
        let _ = self.tokens.fetch_update(Relaxed, Relaxed, |t| {
            (t < cap).then(|| (t + deposit).min(cap))
        });
    }

    /// An extra attempt: takes one token if there is one.
    pub(crate) fn try_withdraw(&self, now: Instant) -> bool {
        self.refill(now);
        self.tokens
            .fetch_update(Relaxed, Relaxed, |t| (t >= UNIT).then_some(t - UNIT))
            .is_ok()
    }

    fn refill(&self, now: Instant) {
        let now =
            u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        let last = self.refilled.load(Relaxed);
        if now <= last
            || self
                .refilled
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_err()
        {
            return;
        }
        let add =
            i64::try_from(u128::from(now - last) * self.floor_per_second as u128 / 1_000_000_000)
                .unwrap_or(i64::MAX);
        if add > 0 {
            let cap = self.cap;
            let _ = self
                .tokens
                .fetch_update(Relaxed, Relaxed, |t| Some(t.saturating_add(add).min(cap)));
        }
    }

    /// Extra attempts that could be made now.
    #[cfg(feature = "retry")]
    pub(crate) fn balance(&self) -> f64 {
        self.tokens.load(Relaxed) as f64 / UNIT as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn retries_are_a_share_of_first_attempts_plus_a_floor() {
        let budget = Budget::new(0.2, 10, 100);
        let now = Instant::now();
        // The reserve: 100 retries.
        assert_eq!((0..150).filter(|_| budget.try_withdraw(now)).count(), 100);
        // Then one retry per five first attempts.
        for _ in 0..50 {
            budget.deposit();
        }
        assert_eq!((0..50).filter(|_| budget.try_withdraw(now)).count(), 10);
        // And ten per second, whatever the traffic.
        let later = now + Duration::from_secs(2);
        assert_eq!((0..50).filter(|_| budget.try_withdraw(later)).count(), 20);
        // Never more than the cap saved up.
        let much_later = later + Duration::from_secs(3600);
        assert_eq!(
            (0..500).filter(|_| budget.try_withdraw(much_later)).count(),
            100
        );
    }
}
