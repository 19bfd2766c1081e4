//! The breaker's decisions as plain functions over plain values: when it
//! trips, whether a half-open breaker admits one more probe and what a
//! finished probe decides, how long it stays open. No atomics, no clock,
//! no events or metrics: [`state`](super::state) reads the shared words,
//! asks these, and publishes what they decide.

use std::time::Duration;

use super::event::{CircuitState, TransitionReason};
use super::window::Totals;

/// What makes a closed breaker trip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TripRules {
    /// Calls the window must hold before its rates are judged.
    pub(crate) minimum_calls: u64,
    /// The failure rate that trips, in [0, 1].
    pub(crate) failure_rate: f64,
    /// The slow-call rate that trips, when slow calls are tracked.
    pub(crate) slow_call_rate: Option<f64>,
    /// Failures in a row that trip, whatever the window says.
    pub(crate) consecutive_failures: Option<u32>,
}

/// Why a closed breaker trips after a failure or a slow call, with
/// `totals` in its window and `consecutive` failures in a row; `None` if
/// it does not.
pub(crate) fn trip_reason(
    rules: &TripRules,
    totals: Totals,
    consecutive: u64,
) -> Option<TransitionReason> {
    let rate = |part: u64| part as f64 / totals.calls as f64;
    if totals.calls >= rules.minimum_calls && totals.calls > 0 {
        // Dividing keeps exact ratios exact: 3 / 10 is the same f64 as 0.3.
        if rate(totals.failures) >= rules.failure_rate {
            return Some(TransitionReason::FailureRate);
        }
        if rules
            .slow_call_rate
            .is_some_and(|threshold| rate(totals.slow) >= threshold)
        {
            return Some(TransitionReason::SlowCallRate);
        }
    }
    match rules.consecutive_failures {
        Some(limit) if consecutive >= u64::from(limit) => {
            Some(TransitionReason::ConsecutiveFailures)
        }
        _ => None,
    }
}

/// The probes of one half-open round, in one word so that a probe is
/// admitted, and its end counted, with one compare-and-swap: the round's
/// generation (low 32 bits of the breaker's), successes (16 bits) and
/// probes in flight (16 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProbeWord(u64);

impl ProbeWord {
    const GENERATION_SHIFT: u32 = 32;
    const SUCCESS_SHIFT: u32 = 16;
    const FIELD: u64 = 0xffff;

    /// A new round for the breaker's generation `epoch`: no probe yet.
    pub(crate) fn round(epoch: u64) -> Self {
        ProbeWord((epoch & 0xffff_ffff) << Self::GENERATION_SHIFT)
    }

    pub(crate) fn from_bits(bits: u64) -> Self {
        ProbeWord(bits)
    }

    pub(crate) fn bits(self) -> u64 {
        self.0
    }

    /// Whether this word counts the round of generation `epoch`.
    pub(crate) fn belongs_to(self, epoch: u64) -> bool {
        self.0 >> Self::GENERATION_SHIFT == epoch & 0xffff_ffff
    }

    /// Probes under way.
    pub(crate) fn in_flight(self) -> u64 {
        self.0 & Self::FIELD
    }

    /// Probes that succeeded.
    pub(crate) fn successes(self) -> u64 {
        (self.0 >> Self::SUCCESS_SHIFT) & Self::FIELD
    }

    /// The word with one more probe under way, if it counts the round of
    /// `epoch` and fewer than `slots` are under way.
    pub(crate) fn admit(self, epoch: u64, slots: u32) -> Option<Self> {
        (self.belongs_to(epoch) && self.in_flight() < u64::from(slots.min(0xffff)))
            .then_some(ProbeWord(self.0 + 1))
    }

    /// The word once a probe of the round of `epoch` has ended, a success
    /// or not; `None` for a probe of a round that is over.
    pub(crate) fn finish(self, epoch: u64, success: bool) -> Option<Self> {
        (self.belongs_to(epoch) && self.in_flight() > 0).then(|| {
            let success = if success { 1 << Self::SUCCESS_SHIFT } else { 0 };
            ProbeWord(self.0 - 1 + success)
        })
    }
}

/// What the end of a probe decides, `before` being the round as it was
/// when the probe ended: a failed (or slow) probe opens the breaker again;
/// the success that makes `needed` closes it; anything else waits for the
/// other probes.
pub(crate) fn after_probe(
    before: ProbeWord,
    failed: bool,
    succeeded: bool,
    needed: u32,
) -> Option<(CircuitState, TransitionReason)> {
    if failed {
        Some((CircuitState::Open, TransitionReason::ProbeFailed))
    } else if succeeded && before.successes() + 1 >= u64::from(needed) {
        Some((CircuitState::Closed, TransitionReason::ProbesSucceeded))
    } else {
        None
    }
}

/// How long an open breaker has left at `now`, both in nanoseconds since
/// its base; `None` once the open period is over and a probe is due.
pub(crate) fn open_remaining(now: u64, until: u64) -> Option<Duration> {
    (now < until).then(|| Duration::from_nanos(until - now))
}

/// The trips in a row that an opening makes: one more after a failed probe
/// or when the breaker closed less than `memory` ago (`closed_for`), the
/// first of a new series otherwise.
pub(crate) fn trips_in_a_row(
    previous: u32,
    from: CircuitState,
    closed_for: Option<Duration>,
    memory: Duration,
) -> u32 {
    let remembered = closed_for.is_some_and(|since| since < memory);
    if from == CircuitState::HalfOpen || remembered {
        previous.saturating_add(1)
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: TripRules = TripRules {
        minimum_calls: 10,
        failure_rate: 0.5,
        slow_call_rate: None,
        consecutive_failures: None,
    };

    fn totals(calls: u64, failures: u64, slow: u64) -> Totals {
        Totals {
            calls,
            failures,
            slow,
        }
    }

    #[test]
    fn trips_at_the_failure_rate_once_the_window_holds_enough_calls() {
        assert_eq!(trip_reason(&RULES, totals(9, 9, 0), 9), None);
        assert_eq!(trip_reason(&RULES, totals(10, 4, 0), 4), None);
        assert_eq!(
            trip_reason(&RULES, totals(10, 5, 0), 1),
            Some(TransitionReason::FailureRate)
        );
        // An exact ratio is exact: 3 of 10 at a rate of 0.3.
        let rules = TripRules {
            failure_rate: 0.3,
            ..RULES
        };
        assert_eq!(
            trip_reason(&rules, totals(10, 3, 0), 1),
            Some(TransitionReason::FailureRate)
        );
    }

    #[test]
    fn slow_calls_trip_only_when_tracked_and_failures_come_first() {
        assert_eq!(trip_reason(&RULES, totals(10, 0, 10), 0), None);
        let rules = TripRules {
            slow_call_rate: Some(0.8),
            ..RULES
        };
        assert_eq!(trip_reason(&rules, totals(10, 0, 7), 0), None);
        assert_eq!(
            trip_reason(&rules, totals(10, 0, 8), 0),
            Some(TransitionReason::SlowCallRate)
        );
        assert_eq!(
            trip_reason(&rules, totals(10, 5, 8), 0),
            Some(TransitionReason::FailureRate)
        );
    }

    #[test]
    fn failures_in_a_row_trip_before_the_window_is_full() {
        let rules = TripRules {
            consecutive_failures: Some(3),
            ..RULES
        };
        assert_eq!(trip_reason(&rules, totals(2, 2, 0), 2), None);
        assert_eq!(
            trip_reason(&rules, totals(3, 3, 0), 3),
            Some(TransitionReason::ConsecutiveFailures)
        );
        // An empty window (cleared as it closed) divides nothing.
        let rules = TripRules {
            minimum_calls: 0,
            ..rules
        };
        assert_eq!(trip_reason(&rules, totals(0, 0, 0), 0), None);
    }

    #[test]
    fn a_round_admits_its_slots_and_counts_their_ends() {
        let round = ProbeWord::round(7);
        assert!(round.belongs_to(7) && !round.belongs_to(8));
        let one = round.admit(7, 2).unwrap();
        let two = one.admit(7, 2).unwrap();
        assert_eq!(two.admit(7, 2), None, "every slot taken");
        assert_eq!(round.admit(8, 2), None, "another round's probe");
        assert_eq!((two.in_flight(), two.successes()), (2, 0));

        let ended = two.finish(7, true).unwrap();
        assert_eq!((ended.in_flight(), ended.successes()), (1, 1));
        let ended = ended.finish(7, false).unwrap();
        assert_eq!((ended.in_flight(), ended.successes()), (0, 1));
        assert_eq!(ended.finish(7, true), None, "none under way");
        assert_eq!(two.finish(6, true), None, "a round that is over");
        // A free slot again once a probe has ended.
        assert!(two.finish(7, true).unwrap().admit(7, 2).is_some());
        // Generations past 32 bits keep their low bits.
        assert!(ProbeWord::round(1 << 32 | 5).belongs_to(5));
        assert_eq!(ProbeWord::from_bits(two.bits()), two);
    }

    #[test]
    fn a_failed_probe_opens_and_the_last_needed_success_closes() {
        let one_success = ProbeWord::round(1)
            .admit(1, 3)
            .and_then(|w| w.finish(1, true))
            .unwrap();
        assert_eq!(
            after_probe(one_success, true, false, 3),
            Some((CircuitState::Open, TransitionReason::ProbeFailed))
        );
        assert_eq!(after_probe(one_success, false, true, 3), None);
        let two_successes = one_success
            .admit(1, 3)
            .and_then(|w| w.finish(1, true))
            .unwrap();
        assert_eq!(
            after_probe(two_successes, false, true, 3),
            Some((CircuitState::Closed, TransitionReason::ProbesSucceeded))
        );
        // Neither (an ignored probe): the round goes on.
        assert_eq!(after_probe(two_successes, false, false, 3), None);
    }

    #[test]
    fn the_open_period_ends_at_its_instant() {
        assert_eq!(open_remaining(5, 8), Some(Duration::from_nanos(3)));
        assert_eq!(open_remaining(8, 8), None);
        assert_eq!(open_remaining(9, 8), None);
    }

    #[test]
    fn trips_in_a_row_grow_after_a_failed_probe_or_within_the_memory() {
        let memory = Duration::from_secs(60);
        let closed = CircuitState::Closed;
        assert_eq!(trips_in_a_row(3, CircuitState::HalfOpen, None, memory), 4);
        assert_eq!(
            trips_in_a_row(3, closed, Some(Duration::from_secs(59)), memory),
            4
        );
        assert_eq!(
            trips_in_a_row(3, closed, Some(Duration::from_secs(60)), memory),
            1
        );
        assert_eq!(trips_in_a_row(3, closed, None, memory), 1);
        // A plain breaker remembers nothing.
        assert_eq!(
            trips_in_a_row(3, closed, Some(Duration::ZERO), Duration::ZERO),
            1
        );
        assert_eq!(
            trips_in_a_row(u32::MAX, CircuitState::HalfOpen, None, memory),
            u32::MAX
        );
    }
}
