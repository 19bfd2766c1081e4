//! One endpoint's shared state, and the ticket a call holds on it.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

use tokio::time::Instant;

use super::telemetry::Telemetry;
use crate::circuit_breaker::state::{Breaker, Permit, Standing};
use crate::classify::{Outcome, Record, cut_off};
use crate::telemetry::LookedUpCounter;

/// An endpoint as every clone of a balancer sees it: the service to clone
/// for each call, its weight, and (through [`Deref`]) its load and health
/// figures, in the [`Core`] that its calls in flight hold.
#[derive(Debug)]
pub(crate) struct Endpoint<K, S> {
    pub(crate) key: K,
    pub(crate) service: S,
    pub(crate) weight: u32,
    /// Held once here and once by each call in flight, so that its
    /// reference count, less this one, is the endpoint's pending count (see
    /// [`Endpoint::pending`]).
    core: Arc<Core>,
}

/// What a call needs of its endpoint once it is sent, and what every pick
/// reads: the load and health figures.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) label: Arc<str>,
    ewma: PeakEwma,
    /// The outlier detector; `None` when outlier detection is off.
    breaker: Option<Breaker>,
    removed: AtomicBool,
    busy: AtomicBool,
    requests: LookedUpCounter,
    telemetry: Arc<Telemetry>,
    health: Health,
}

/// What active health checks found, written by the probing task only.
#[derive(Debug)]
struct Health {
    healthy: AtomicBool,
    /// Whether the balancer counts this endpoint among the unhealthy.
    counted: AtomicBool,
    successes: AtomicU32,
    failures: AtomicU32,
    /// Successes in a row since the outlier detector ejected it.
    returning: AtomicU32,
}

impl<K, S> Deref for Endpoint<K, S> {
    type Target = Core;

    #[inline]
    fn deref(&self) -> &Core {
        &self.core
    }
}

impl<K, S> Endpoint<K, S> {
    pub(crate) fn new(
        key: K,
        label: Arc<str>,
        service: S,
        weight: u32,
        breaker: Option<Breaker>,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        let core = Core {
            requests: telemetry.requests_counter(&label),
            label,
            ewma: PeakEwma::default(),
            breaker,
            removed: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            telemetry,
            health: Health {
                healthy: AtomicBool::new(true),
                counted: AtomicBool::new(false),
                successes: AtomicU32::new(0),
                failures: AtomicU32::new(0),
                returning: AtomicU32::new(0),
            },
        };
        Endpoint {
            key,
            service,
            weight,
            core: Arc::new(core),
        }
    }

    /// Requests in flight: the tickets holding the core, read from its
    /// reference count rather than counted apart, which would cost each
    /// call two more atomic read-modify-writes. A call counts from its
    /// `call` until its answer (or, for an outcome known at the end of the
    /// body, until the body ends), as does a reservation for an ejected
    /// endpoint's probe.
    #[inline]
    pub(crate) fn pending(&self) -> u64 {
        (Arc::strong_count(&self.core) - 1) as u64
    }

    /// Whether to time a call to this endpoint (peak EWMA), `draw` giving
    /// random bits if asked; see [`PeakEwma::times`].
    #[inline]
    pub(crate) fn times(&self, draw: impl FnOnce() -> u32) -> bool {
        let telemetry = &self.telemetry;
        self.ewma
            .times(telemetry.latest(), telemetry.decay_rate, draw)
    }

    /// Expected cost of one more request: the decayed estimate times
    /// pending + 1.
    #[inline]
    pub(crate) fn ewma_cost(&self, now: u64, default_rtt: f64, rate: f64) -> f64 {
        self.ewma.estimate(now, default_rtt, rate) * (self.pending() + 1) as f64
    }

    /// What a call holds on the endpoint once it is sent.
    #[inline]
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    pub(crate) fn snapshot(&self) -> EndpointSnapshot<'_, K> {
        EndpointSnapshot {
            key: &self.key,
            weight: self.weight,
            pending: self.pending(),
            ejected: self.is_ejected(),
            healthy: self.health.healthy.load(Relaxed),
        }
    }
}

impl Core {
    /// Under active health checks: healthy, and not ejected (an ejected
    /// endpoint comes back through the probes, not a client's request).
    #[inline]
    pub(crate) fn passes_checks(&self) -> bool {
        self.health.healthy.load(Relaxed) && !self.is_ejected()
    }

    /// Records a probe's result; `thresholds` are the successes and the
    /// failures in a row that change the endpoint's health.
    pub(crate) fn probed(&self, ok: bool, (healthy_after, unhealthy_after): (u32, u32)) {
        let health = &self.health;
        if ok {
            health.failures.store(0, Relaxed);
            let successes = health.successes.fetch_add(1, Relaxed) + 1;
            if successes >= healthy_after && !health.healthy.swap(true, SeqCst) {
                if health.counted.swap(false, SeqCst) {
                    self.telemetry.unhealthy_changed(false);
                }
                self.telemetry.health_changed(&self.label, true);
            }
        } else {
            health.successes.store(0, Relaxed);
            let failures = health.failures.fetch_add(1, Relaxed) + 1;
            if failures >= unhealthy_after && health.healthy.swap(false, SeqCst) {
                if !self.is_removed() && !health.counted.swap(true, SeqCst) {
                    self.telemetry.unhealthy_changed(true);
                    // Removed meanwhile: `remove` may have missed the count.
                    if self.is_removed() && health.counted.swap(false, SeqCst) {
                        self.telemetry.unhealthy_changed(false);
                    }
                }
                self.telemetry.health_changed(&self.label, false);
            }
        }
        // An endpoint the requests' failures ejected returns after enough
        // probes in a row succeed.
        match &self.breaker {
            Some(breaker) if ok && breaker.rejects() => {
                let returning = health.returning.fetch_add(1, Relaxed) + 1;
                if returning >= healthy_after {
                    health.returning.store(0, Relaxed);
                    breaker.set_state(crate::circuit_breaker::CircuitState::Closed);
                }
            }
            _ => health.returning.store(0, Relaxed),
        }
    }

    /// Whether the outlier detector lets a call through, and on what terms.
    #[inline]
    pub(crate) fn admit(&self) -> Permit {
        match &self.breaker {
            Some(breaker) => breaker.acquire(crate::clock::now),
            None => Permit::Untracked,
        }
    }

    /// Records `outcome` for a permit whose request was never sent (a
    /// readiness check that failed, or that found the endpoint busy).
    pub(crate) fn settle(&self, permit: Permit, outcome: Outcome) {
        if let Some(breaker) = &self.breaker {
            match outcome {
                Outcome::Ignored => breaker.release(permit),
                outcome => breaker.complete(permit, outcome, None, None),
            }
        }
    }

    /// Whether the endpoint is ejected, without taking a probe slot.
    #[inline]
    pub(crate) fn is_ejected(&self) -> bool {
        self.breaker.as_ref().is_some_and(Breaker::rejects)
    }

    /// Whether the outlier detector would let a call through now, as a
    /// call or as the probe of an ejected endpoint whose time is up;
    /// without taking a probe slot. The clock is read only for an endpoint
    /// that is ejected.
    #[inline]
    pub(crate) fn standing(&self) -> Standing {
        match &self.breaker {
            Some(breaker) => breaker.standing(crate::clock::now),
            None => Standing::Admits,
        }
    }

    #[inline]
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Acquire)
    }

    /// Takes the endpoint out of the set: no new requests; calls in flight
    /// finish. Frees its place among the ejected, if it had one.
    pub(crate) fn remove(&self) {
        if !self.removed.swap(true, AcqRel) {
            if let Some(breaker) = &self.breaker {
                breaker.leave_group();
            }
            if self.health.counted.swap(false, SeqCst) {
                self.telemetry.unhealthy_changed(false);
            }
            self.set_busy(false);
        }
    }

    /// Feeds the response-time estimate with a call sent at `sent_at` and
    /// its outcome.
    ///
    /// A failed call is no answer: it counts as twice the endpoint's
    /// estimate (or the default, before the first answer), up to
    /// [`FAILURE_PENALTY_CAP`] times the default, when that is slower than
    /// the failure was. Without this,
    /// an endpoint that fails fast would look the fastest of all and draw
    /// the calls, and their retries, that it fails; the cap keeps a
    /// recovered endpoint from being shunned for long.
    ///
    /// The successful probe of an endpoint back from ejection starts its
    /// estimate afresh: what it did before it was ejected says nothing of
    /// it now. A call that was not timed (`sent_at` `None`) can teach a
    /// failure only.
    fn observe_since(&self, sent_at: Option<u64>, outcome: Observed) {
        let now = nanos_since(self.telemetry.base, crate::clock::now());
        self.telemetry.note_time(now);
        let mut rtt = sent_at.map_or(0.0, |sent_at| now.saturating_sub(sent_at) as f64);
        let (rate, default_rtt) = (self.telemetry.decay_rate, self.telemetry.default_rtt);
        match outcome {
            Observed::Answer => self.ewma.observe(rtt, now, rate),
            Observed::Failure => {
                // Twice the estimate as it stands, not as it has decayed
                // since: failures in a row double it each time, so that an
                // endpoint that keeps failing is tried after longer and
                // longer, where one that failed once is back soon.
                let penalty = (2.0 * self.ewma.stored().max(default_rtt))
                    .min(FAILURE_PENALTY_CAP * default_rtt);
                rtt = rtt.max(penalty);
                self.ewma.observe(rtt, now, rate);
            }
            Observed::Returned => self.ewma.restart(rtt, now),
        }
    }

    /// Notes whether the last readiness check found the endpoint busy.
    #[inline]
    pub(crate) fn set_busy(&self, busy: bool) {
        if self.busy.load(Relaxed) != busy && self.busy.swap(busy, Relaxed) != busy {
            self.telemetry.busy_changed(busy);
        }
    }
}

/// One endpoint's figures at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EndpointSnapshot<'a, K> {
    pub(crate) key: &'a K,
    pub(crate) weight: u32,
    pub(crate) pending: u64,
    pub(crate) ejected: bool,
    pub(crate) healthy: bool,
}

/// The most a failure counts for, in units of the prior: an endpoint
/// that kept failing is tried again within `decay × ln(1024 × prior / the
/// others' cost)` (1.1 s with the defaults and others at 20 ms).
const FAILURE_PENALTY_CAP: f64 = 1024.0;

/// A peak-sensitive moving average of response times, lock-free.
///
/// Written by hand: tower's `PeakEwma` keeps its estimate behind a mutex per
/// endpoint and lets an untried prior weigh on it for many seconds; this one
/// is three atomics, an endpoint's first answer replaces the prior, and a
/// busy endpoint's calls are timed one in a few (see [`PeakEwma::times`]).
/// Concurrent updates may overwrite each other: each is one sample of a
/// statistical estimate, and the estimate never becomes invalid.
#[derive(Debug, Default)]
struct PeakEwma {
    /// The estimate in nanoseconds, as `f64` bits; 0 before the first answer.
    estimate: AtomicU64,
    /// When it was last updated, in nanoseconds since the balancer's base.
    updated: AtomicU64,
    /// One call in `sampling + 1` (a power of two) is timed; 0 (every
    /// call) until timed answers come close together.
    sampling: AtomicU32,
}

/// Answers closer together than this share of the time constant make an
/// endpoint busy: below it a decay's `exp()` is `1 - x` within 5e-7, and
/// the endpoint's calls are timed one in a few.
const CLOSE: f64 = 1.0 / 1024.0;

/// The most calls one timed call of a busy endpoint stands for, less one:
/// one call in 8 is timed.
const MAX_SAMPLING: u32 = 7;

/// `exp(-x)`, the weight an estimate keeps after `x` time constants.
#[inline]
fn decay_weight(x: f64) -> f64 {
    // exp() costs more than the rest of a pick; close answers use `1 - x`.
    // (Not 1: answers closer together than that, as to a busy endpoint,
    // would then never pull a peak down.)
    if x < CLOSE { 1.0 - x } else { (-x).exp() }
}

impl PeakEwma {
    /// Time constants since the last update; `rate` is the reciprocal of
    /// the time constant, per nanosecond.
    #[inline]
    fn since_update(&self, now: u64, rate: f64) -> f64 {
        now.saturating_sub(self.updated.load(Relaxed)) as f64 * rate
    }

    /// The estimate at `now`: decayed towards zero while no answer arrives.
    #[inline]
    fn estimate(&self, now: u64, default_rtt: f64, rate: f64) -> f64 {
        let estimate = f64::from_bits(self.estimate.load(Relaxed));
        if estimate == 0.0 {
            default_rtt
        } else {
            estimate * decay_weight(self.since_update(now, rate))
        }
    }

    /// The estimate as last updated, not decayed; 0 before the first
    /// answer.
    fn stored(&self) -> f64 {
        f64::from_bits(self.estimate.load(Relaxed))
    }

    /// Whether to time a call, `draw` giving random bits if asked: every
    /// call, unless the endpoint's timed answers come within a thousandth
    /// of the time constant of each other (0.2 ms with the default: five
    /// thousand a second); then one call in two, four, up to eight, as
    /// long as they still do. A timed call reads the clock twice, which
    /// costs more than the rest of a pick, and a busy endpoint's estimate
    /// still has 256 timed answers or more per time constant (fewer halve
    /// the sampling, see [`PeakEwma::observe`]).
    ///
    /// Every call is timed again once the balancer's latest reading of the
    /// clock, `latest` (nanoseconds since its base), is four thousandths
    /// of the time constant past the last timed answer: an endpoint that
    /// turned slow is seen at its next call after a call to any endpoint
    /// read the clock, not after its next timed answer only. (Among
    /// concurrent calls its pending count shows it at once.)
    #[inline]
    fn times(&self, latest: u64, rate: f64, draw: impl FnOnce() -> u32) -> bool {
        let sampling = self.sampling.load(Relaxed);
        sampling == 0 || draw() & sampling == 0 || self.since_update(latest, rate) > 4.0 * CLOSE
    }

    /// Forgets the estimate and starts again from `rtt`, every call timed.
    fn restart(&self, rtt: f64, now: u64) {
        self.estimate.store(rtt.max(1.0).to_bits(), Relaxed);
        self.updated.store(now, Relaxed);
        self.sampling.store(0, Relaxed);
    }

    /// Takes in a response time of `rtt` at `now`, and times more or
    /// fewer calls as the timed answers come farther apart or closer
    /// together (see [`PeakEwma::times`]).
    fn observe(&self, rtt: f64, now: u64, rate: f64) {
        let estimate = f64::from_bits(self.estimate.load(Relaxed));
        let since = self.since_update(now, rate);
        let next = if estimate == 0.0 || rtt > estimate {
            // The first answer, or a slower one: take it as it is.
            rtt
        } else {
            let weight = decay_weight(since);
            estimate * weight + rtt * (1.0 - weight)
        };
        // A zero estimate means "no answer yet"; keep a real one positive.
        self.estimate.store(next.max(1.0).to_bits(), Relaxed);
        self.updated.store(now, Relaxed);
        // Closer timed answers time fewer calls; answers four times as far
        // apart as close ones time twice as many again.
        let sampling = self.sampling.load(Relaxed);
        let adapted = if since < CLOSE {
            ((sampling << 1) | 1).min(MAX_SAMPLING)
        } else if since > 4.0 * CLOSE {
            sampling >> 1
        } else {
            sampling
        };
        if adapted != sampling {
            self.sampling.store(adapted, Relaxed);
        }
    }
}

/// What a finished call tells the response-time estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Observed {
    /// An answer, or a call dropped before it (at least this long).
    Answer,
    /// A failure: no answer at all.
    Failure,
    /// The successful probe of an endpoint back from ejection.
    Returned,
}

/// A call's hold on an endpoint, from its `call`: the outlier detector's
/// permit, and its place among the endpoint's pending requests (its
/// reference to the endpoint's [`Core`] is that place). Dropped before
/// completion it gives the permit back and counts nothing.
#[derive(Debug)]
pub(crate) struct Ticket {
    core: Arc<Core>,
    permit: Option<Permit>,
    flags: Flags,
    /// When the request was sent, in nanoseconds since the balancer's base,
    /// when it is timed; 0 otherwise.
    sent_at: u64,
}

/// A ticket's yes-or-no facts, in one word.
///
/// One word rather than a `bool` each: a ticket is made on the stack and
/// then copied into the call's future a word at a time, and a word read
/// back from three one-byte writes must wait for them (a store-forwarding
/// stall, about a tenth of a least-pending call); one word written whole
/// is read back at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flags(u64);

impl Flags {
    /// Counted among the balancer's requests in flight too (consistent
    /// hashing's load bound).
    const COUNTS_TOTAL: u64 = 1;
    /// Sent, and neither answered nor handed to a deferred record yet.
    const IN_FLIGHT: u64 = 1 << 1;
    /// The endpoint's response-time estimate learns from the call (peak
    /// EWMA): its response time if it is timed, a failure if not.
    const LEARNS: u64 = 1 << 2;

    /// The flags of a call just sent: in flight.
    fn sent(counts_total: bool, learns: bool) -> Self {
        Flags(
            Self::IN_FLIGHT
                | (u64::from(counts_total) * Self::COUNTS_TOTAL)
                | (u64::from(learns) * Self::LEARNS),
        )
    }

    fn counts_total(self) -> bool {
        self.0 & Self::COUNTS_TOTAL != 0
    }

    fn in_flight(self) -> bool {
        self.0 & Self::IN_FLIGHT != 0
    }

    fn learns(self) -> bool {
        self.0 & Self::LEARNS != 0
    }

    /// Whether the call was in flight; it no longer is.
    fn take_in_flight(&mut self) -> bool {
        let was = self.in_flight();
        self.0 &= !Self::IN_FLIGHT;
        was
    }
}

/// What a call teaches its endpoint's response-time estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Learning {
    /// Nothing: the strategy keeps no estimate.
    Nothing,
    /// Its failure, if it fails (peak EWMA, a call not timed).
    Failures,
    /// Its response time, from when it is sent, or its failure.
    ResponseTime,
}

impl Ticket {
    /// The ticket of a call sent now to the endpoint of `core`, with the
    /// outlier detector's `permit`; counted among the balancer's requests
    /// in flight too if `counts_total`.
    ///
    /// Built whole, rather than made and then marked field by field, for
    /// the reason [`Flags`] gives.
    #[inline]
    pub(crate) fn send(
        core: Arc<Core>,
        permit: Permit,
        counts_total: bool,
        learning: Learning,
    ) -> Self {
        if counts_total {
            core.telemetry.sent();
        }
        core.requests.increment(1);
        let sent_at = if learning == Learning::ResponseTime {
            // In `call`, where a Metrics layer above has read the clock
            // already (see `crate::clock`).
            let telemetry = &core.telemetry;
            let at = nanos_since(telemetry.base, crate::clock::now());
            telemetry.note_time(at);
            // Zero means "not measured"; a call at the very base instant
            // is measured from a nanosecond later.
            at.max(1)
        } else {
            0
        };
        Ticket {
            core,
            permit: Some(permit),
            flags: Flags::sent(counts_total, learning != Learning::Nothing),
            sent_at,
        }
    }

    /// Whether this call is the probe of an ejected endpoint.
    fn is_probe(&self) -> bool {
        matches!(self.permit, Some(Permit::Probe { .. }))
    }

    /// The call completed with `outcome`.
    #[inline]
    fn complete(&mut self, outcome: Outcome) {
        if self.flags.take_in_flight() {
            if self.flags.counts_total() {
                self.core.telemetry.answered();
            }
            if self.sent_at != 0 {
                let observed = match outcome {
                    Outcome::Failure => Observed::Failure,
                    Outcome::Success if self.is_probe() => Observed::Returned,
                    _ => Observed::Answer,
                };
                self.core.observe_since(Some(self.sent_at), observed);
            } else if self.flags.learns() && outcome == Outcome::Failure {
                self.core.observe_since(None, Observed::Failure);
            }
        }
        if let (Some(permit), Some(breaker)) = (self.permit.take(), &self.core.breaker) {
            breaker.complete(permit, outcome, None, None);
        }
    }
}

impl Record for Ticket {
    #[inline]
    fn record(&mut self, outcome: Outcome) {
        self.complete(outcome);
    }

    fn defer(&mut self) -> Self {
        // The deferred record now holds the call in flight.
        let flags = self.flags;
        self.flags.take_in_flight();
        Ticket {
            core: self.core.clone(),
            permit: self.permit.take(),
            flags,
            sent_at: self.sent_at,
        }
    }
}

impl Ticket {
    /// Dropped before completion: gives the permit back, and teaches the
    /// estimate what it can; a failure if the crate's own timeout cut the
    /// call off. (Its place among the pending requests goes with its
    /// reference.) Out of line: the success path only checks that nothing
    /// is left to do.
    #[cold]
    #[inline(never)]
    fn dropped_unfinished(&mut self) {
        let in_flight = self.flags.in_flight();
        if in_flight && cut_off::active() {
            // Cut off by the crate's own deadline: the endpoint hung, and
            // outlier detection and the estimate learn it as a failure.
            self.complete(Outcome::Failure);
            return;
        }
        if in_flight && self.flags.counts_total() {
            self.core.telemetry.answered();
        }
        if in_flight && self.sent_at != 0 {
            // A call dropped before its answer (a lost hedge, a caller
            // that gave up) took at least this long: the estimate learns
            // that much. An endpoint slower than the caller's patience
            // would otherwise never be seen to be slow.
            self.core
                .observe_since(Some(self.sent_at), Observed::Answer);
        }
        if let (Some(permit), Some(breaker)) = (self.permit.take(), &self.core.breaker) {
            breaker.release(permit);
        }
    }
}

impl Drop for Ticket {
    #[inline]
    fn drop(&mut self) {
        if self.flags.in_flight() || self.permit.is_some() {
            self.dropped_unfinished();
        }
    }
}

/// Nanoseconds from `base` to `at`.
pub(crate) fn nanos_since(base: Instant, at: Instant) -> u64 {
    let d = at.saturating_duration_since(base);
    // Without `as_nanos`, whose `u128` is slow to handle: u64 nanoseconds
    // last 584 years.
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

pub(crate) fn duration_nanos(d: Duration) -> f64 {
    d.as_nanos() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_close_together_still_pull_a_peak_down() {
        let decay: f64 = 200e6; // 200 ms, in nanoseconds
        let ewma = PeakEwma::default();
        ewma.observe(25e6, 1, decay.recip());
        // Answers of 1 ms every 100 µs (a 2000th of the decay) for 1 s,
        // five time constants.
        let mut now = 1;
        for _ in 0..10_000 {
            now += 100_000;
            ewma.observe(1e6, now, decay.recip());
        }
        let expected = 1e6 + 24e6 * (-1e9 / decay).exp();
        let estimate = ewma.stored();
        assert!(
            (estimate - expected).abs() < expected * 1e-3,
            "{estimate} ns, expected {expected}"
        );
    }

    #[test]
    fn a_busy_endpoint_is_timed_one_call_in_eight_until_its_answers_spread() {
        let rate = 200e6_f64.recip(); // a 200 ms time constant
        let ewma = PeakEwma::default();
        let timed = |latest: u64| {
            (0..800)
                .filter(|&draw| ewma.times(latest, rate, || draw))
                .count()
        };
        // Every call, until answers come close together.
        assert_eq!(timed(0), 800);
        let mut now = 1_000_000;
        ewma.observe(1e6, now, rate);
        assert_eq!(timed(now), 800);
        // Answers 10 µs apart (a 20 000th of the time constant): two, four,
        // then eight calls a timed one, and no further.
        for expected in [400, 200, 100, 100] {
            now += 10_000;
            ewma.observe(1e6, now, rate);
            assert_eq!(timed(now), expected);
        }
        // The balancer's clock a millisecond on (a 200th of the time
        // constant) with no timed answer since: every call again.
        assert_eq!(timed(now + 1_000_000), 800);
        // Answers a millisecond apart: twice as many timed at each.
        for expected in [200, 400, 800] {
            now += 1_000_000;
            ewma.observe(1e6, now, rate);
            assert_eq!(timed(now), expected);
        }
        // A restart (the probe of an endpoint back from ejection) times
        // every call.
        for _ in 0..3 {
            now += 10_000;
            ewma.observe(1e6, now, rate);
        }
        assert_eq!(timed(now), 100);
        ewma.restart(1e6, now);
        assert_eq!(timed(now), 800);
    }
}
