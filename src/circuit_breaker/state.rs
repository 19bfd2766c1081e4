//! The breaker's state machine, apart from the `Service` plumbing.
//!
//! Every decision is a method that takes the time it needs as an argument,
//! so the logic is exercised directly by tests on a paused clock.
//!
//! Concurrency: the success path (admit a call while closed, record its
//! outcome) only touches atomics. State transitions are rare and take a
//! mutex, so that the fields describing the new state (end of the open
//! period, probe counters, cleared window) are all in place before the new
//! state word is published with `Release`; readers load the word with
//! `Acquire` and so see them.
//!
//! Every transition bumps a generation number kept in the state word, and
//! each permit remembers the generation it was issued in. An outcome that
//! arrives after the state moved on is discarded instead of being counted in
//! a window or probe round it does not belong to.

use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

#[cfg(feature = "balance")]
pub(crate) use super::config::Gate;
use super::config::{Settings, SlidingWindow};
use super::decide::{self, ProbeWord, TripRules};
use super::event::{CircuitEvent, CircuitState, TransitionReason};
use super::window::{CountWindow, TimeWindow, Totals, Window, outcome_bits};
use crate::classify::Outcome;
use crate::telemetry::{Counter, Gauge, Scope};

const CODE_BITS: u32 = 3;
const CODE_MASK: u64 = (1 << CODE_BITS) - 1;

/// The code of [`CircuitState::Closed`], tested first on the hot path.
const CLOSED: u64 = 0;

fn code(state: CircuitState) -> u64 {
    match state {
        CircuitState::Closed => CLOSED,
        CircuitState::Open => 1,
        CircuitState::HalfOpen => 2,
        CircuitState::ForcedOpen => 3,
        CircuitState::ForcedClosed => 4,
        CircuitState::Disabled => 5,
    }
}

fn decode(word: u64) -> CircuitState {
    match word & CODE_MASK {
        0 => CircuitState::Closed,
        1 => CircuitState::Open,
        2 => CircuitState::HalfOpen,
        3 => CircuitState::ForcedOpen,
        4 => CircuitState::ForcedClosed,
        _ => CircuitState::Disabled,
    }
}

fn generation(word: u64) -> u64 {
    word >> CODE_BITS
}

/// What a breaker would do with a call now; see [`Breaker::standing`].
#[cfg(feature = "balance")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Closed: calls go through.
    Admits,
    /// Open for long enough, or half-open with a probe slot free: the next
    /// call is a probe.
    ProbeDue,
    /// Open, or half-open with every probe slot taken.
    Rejects,
}

/// What the breaker decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Closed (or forced closed) in generation `epoch`: the outcome is recorded.
    Record { epoch: u64 },
    /// A half-open probe of generation `epoch`; it holds a probe slot.
    Probe { epoch: u64 },
    /// Disabled: the call goes through and nothing is recorded.
    Untracked,
    /// The call must not reach the inner service; `retry_after` in
    /// nanoseconds, `u64::MAX` when unknown (kept small: a permit is moved
    /// on every call).
    Rejected { retry_after: u64 },
}

impl Permit {
    const UNKNOWN: u64 = u64::MAX;

    fn rejected(retry_after: Option<Duration>) -> Self {
        Permit::Rejected {
            retry_after: retry_after.map_or(Self::UNKNOWN, |d| {
                u64::try_from(d.as_nanos()).unwrap_or(Self::UNKNOWN - 1)
            }),
        }
    }

    /// How long until the next probe, for a rejected call.
    pub(crate) fn retry_after(self) -> Option<Duration> {
        match self {
            Permit::Rejected { retry_after } if retry_after != Self::UNKNOWN => {
                Some(Duration::from_nanos(retry_after))
            }
            _ => None,
        }
    }
}

/// Figures of a breaker at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CircuitSnapshot {
    /// The current state.
    pub state: CircuitState,
    /// Calls in the sliding window.
    pub calls: u64,
    /// Failures among them.
    pub failures: u64,
    /// Slow calls among them (0 unless a slow-call duration is set).
    pub slow_calls: u64,
    /// Failures in a row, up to the last recorded call.
    pub consecutive_failures: u64,
    /// While open: time until the next probe may go through.
    pub retry_after: Option<Duration>,
    /// While half-open: probes in flight (never more than
    /// `half_open_probes`); 0 otherwise.
    pub probes_in_flight: u32,
}

impl CircuitSnapshot {
    /// Failures / calls in the window; `None` while it is empty.
    pub fn failure_rate(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.failures as f64 / self.calls as f64)
    }

    /// Slow calls / calls in the window; `None` while it is empty.
    pub fn slow_call_rate(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.slow_calls as f64 / self.calls as f64)
    }
}

#[derive(Debug)]
struct BreakerMetrics {
    state: Gauge,
    rejected: Counter,
    // Indexed by `outcome_index`.
    calls: [Counter; 3],
    slow: Counter,
    // The transitions the breaker makes by itself, registered up front so
    // that their series exist from the start (a counter that first appears
    // at 1 shows no increase in Prometheus); indexed as `AUTOMATIC`.
    transitions: [Counter; AUTOMATIC.len()],
    // Where the series of transitions made by hand (through a handle) are
    // registered, when they first happen: a series per pair that can
    // happen, and none for pairs that cannot.
    scope: Scope,
}

/// The transitions a breaker makes by itself.
const AUTOMATIC: [(CircuitState, CircuitState); 4] = [
    (CircuitState::Closed, CircuitState::Open),
    (CircuitState::Open, CircuitState::HalfOpen),
    (CircuitState::HalfOpen, CircuitState::Open),
    (CircuitState::HalfOpen, CircuitState::Closed),
];

fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Success => 0,
        Outcome::Failure => 1,
        Outcome::Ignored => 2,
    }
}

impl BreakerMetrics {
    /// Handles of `scope`, or no-op handles for a breaker without metrics of
    /// its own (one per endpoint of a balancer).
    fn new(scope: Option<Scope>) -> Self {
        let scope = scope.unwrap_or_else(Scope::silent);
        let calls = [Outcome::Success, Outcome::Failure, Outcome::Ignored].map(|o| {
            scope.counter(
                "bulwark_circuit_calls_total",
                &[("outcome", o.as_str().into())],
            )
        });
        let metrics = BreakerMetrics {
            transitions: AUTOMATIC.map(|(from, to)| Self::transition_counter(&scope, from, to)),
            state: scope.gauge("bulwark_circuit_state", &[]),
            rejected: scope.counter("bulwark_circuit_rejected_total", &[]),
            slow: scope.counter("bulwark_circuit_slow_calls_total", &[]),
            calls,
            scope,
        };
        metrics.state.set(CircuitState::Closed.gauge_value());
        metrics
    }

    fn transition_counter(scope: &Scope, from: CircuitState, to: CircuitState) -> Counter {
        scope.counter(
            "bulwark_circuit_transitions_total",
            &[("from", from.as_str().into()), ("to", to.as_str().into())],
        )
    }

    /// Counts a transition.
    fn transitioned(&self, from: CircuitState, to: CircuitState) {
        match AUTOMATIC.iter().position(|pair| *pair == (from, to)) {
            Some(index) => self.transitions[index].increment(1),
            None => Self::transition_counter(&self.scope, from, to).increment(1),
        }
    }
}

/// Trips in a row, and when the breaker last closed; guarded by the
/// transition lock.
#[derive(Debug, Default)]
struct Trips {
    in_a_row: u32,
    closed_at: Option<Instant>,
}

/// The shared state of one circuit breaker.
///
/// Aligned to 128 bytes (two cache lines, as the adjacent-line prefetcher
/// pulls lines in pairs), so that in its `Arc` the reference counts, which
/// every call changes, do not share a line with the state word and the
/// window, which every call reads: a core changing the counts would
/// otherwise take that line away from every other core calling.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Breaker {
    settings: Settings,
    base: Instant,
    word: AtomicU64,
    /// End of the open period, in nanoseconds since `base`.
    open_until: AtomicU64,
    probes: AtomicU64,
    consecutive: AtomicU64,
    window: Window,
    needs_clock: bool,
    /// Whether this breaker still counts against its group's gate.
    grouped: std::sync::atomic::AtomicBool,
    /// Held while changing state.
    transition: Mutex<Trips>,
    metrics: BreakerMetrics,
}

impl Breaker {
    pub(crate) fn new(settings: Settings) -> Self {
        let window = match settings.config.sliding_window {
            _ if !settings.rates => Window::Off,
            SlidingWindow::Count { size } => Window::Count(CountWindow::new(size as usize)),
            SlidingWindow::Time { size, buckets } => {
                Window::Time(TimeWindow::new(size, buckets as usize))
            }
        };
        Breaker {
            base: Instant::now(),
            word: AtomicU64::new(code(CircuitState::Closed)),
            open_until: AtomicU64::new(0),
            probes: AtomicU64::new(0),
            consecutive: AtomicU64::new(0),
            needs_clock: window.needs_clock() || settings.config.slow_call_duration.is_some(),
            grouped: std::sync::atomic::AtomicBool::new(settings.gate.is_some()),
            window,
            transition: Mutex::new(Trips::default()),
            metrics: BreakerMetrics::new(settings.metrics.then(|| {
                let scope = Scope::new(settings.service.clone());
                match &settings.key {
                    Some(key) => scope.with("key", crate::telemetry::label(key)),
                    None => scope,
                }
            })),
            settings,
        }
    }

    /// The settings it was made with.
    #[cfg(feature = "keyed")]
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether a completed call must tell the time (slow-call tracking or a
    /// time window); when not, the closed path never reads the clock.
    #[inline]
    pub(crate) fn needs_clock(&self) -> bool {
        self.needs_clock
    }

    /// Whether a call must note its start time (slow-call tracking).
    #[inline]
    pub(crate) fn times_calls(&self) -> bool {
        self.settings.config.slow_call_duration.is_some()
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    #[inline]
    pub(crate) fn state(&self) -> CircuitState {
        decode(self.word.load(Acquire))
    }

    /// Decides whether a call may go through. `now` is read only while open.
    /// A closed breaker answers with one load, inlined into its caller; the
    /// other states are out of line.
    #[inline(always)]
    pub(crate) fn acquire(&self, now: impl FnMut() -> Instant) -> Permit {
        let word = self.word.load(Acquire);
        if word & CODE_MASK == CLOSED {
            Permit::Record {
                epoch: generation(word),
            }
        } else {
            self.acquire_otherwise(word, now)
        }
    }

    /// [`acquire`](Self::acquire) when the breaker was not closed at `word`.
    #[cold]
    #[inline(never)]
    fn acquire_otherwise(&self, mut word: u64, mut now: impl FnMut() -> Instant) -> Permit {
        loop {
            let epoch = generation(word);
            match decode(word) {
                CircuitState::Closed | CircuitState::ForcedClosed => {
                    return Permit::Record { epoch };
                }
                CircuitState::Disabled => return Permit::Untracked,
                CircuitState::ForcedOpen => return Permit::rejected(None),
                CircuitState::HalfOpen => {
                    return if self.try_probe(epoch) {
                        Permit::Probe { epoch }
                    } else {
                        Permit::rejected(None)
                    };
                }
                CircuitState::Open => {
                    let at = now();
                    let until = self.open_until.load(Acquire);
                    if let Some(left) = decide::open_remaining(self.nanos(at), until) {
                        return Permit::rejected(Some(left));
                    }
                    // Whoever wins moves the breaker to half-open; either way
                    // look again.
                    self.transition(
                        Some(word),
                        CircuitState::HalfOpen,
                        TransitionReason::OpenElapsed,
                        Some(at),
                    );
                }
            }
            word = self.word.load(Acquire);
        }
    }

    fn try_probe(&self, epoch: u64) -> bool {
        let slots = self.settings.config.half_open_probes;
        self.probes
            .fetch_update(AcqRel, Acquire, |w| {
                ProbeWord::from_bits(w)
                    .admit(epoch, slots)
                    .map(ProbeWord::bits)
            })
            .is_ok()
    }

    /// Records the outcome of a call that went through. `elapsed` is the
    /// call's duration when [`times_calls`](Self::times_calls); `now` is the
    /// time of completion when [`needs_clock`](Self::needs_clock). A
    /// success recorded by a closed breaker that does not time calls is
    /// inlined into its caller; the rest is out of line.
    #[inline(always)]
    pub(crate) fn complete(
        &self,
        permit: Permit,
        outcome: Outcome,
        elapsed: Option<Duration>,
        now: Option<Instant>,
    ) {
        if let (Permit::Record { epoch }, Outcome::Success, None) =
            (permit, outcome, self.settings.config.slow_call_duration)
        {
            self.metrics.calls[outcome_index(outcome)].increment(1);
            // The steady state of a healthy service: a success that would
            // change nothing, whatever the breaker's generation (there is no
            // run of failures to end, and the window would stay as it is),
            // checked here rather than in an out-of-line call.
            if self.window.settled_for_success() && self.consecutive.load(Relaxed) == 0 {
                return;
            }
            self.record(epoch, outcome, false, now);
            return;
        }
        self.complete_otherwise(permit, outcome, elapsed, now);
    }

    /// [`complete`](Self::complete) for every other outcome.
    #[inline(never)]
    fn complete_otherwise(
        &self,
        permit: Permit,
        outcome: Outcome,
        elapsed: Option<Duration>,
        now: Option<Instant>,
    ) {
        let slow = match (self.settings.config.slow_call_duration, elapsed) {
            (Some(threshold), Some(elapsed)) => elapsed > threshold && outcome != Outcome::Ignored,
            _ => false,
        };
        self.metrics.calls[outcome_index(outcome)].increment(1);
        if slow {
            self.metrics.slow.increment(1);
        }
        match permit {
            Permit::Record { epoch } => self.record(epoch, outcome, slow, now),
            Permit::Probe { epoch } => self.finish_probe(epoch, outcome, slow, now),
            Permit::Untracked | Permit::Rejected { .. } => {}
        }
    }

    /// Gives back a permit whose call will never complete (dropped before
    /// completion, or never made): it counts as [`Outcome::Ignored`], and a
    /// probe slot is freed.
    pub(crate) fn release(&self, permit: Permit) {
        if let Permit::Probe { epoch } = permit {
            self.finish_probe(epoch, Outcome::Ignored, false, None);
        }
    }

    #[inline]
    fn record(&self, epoch: u64, outcome: Outcome, slow: bool, now: Option<Instant>) {
        if outcome == Outcome::Ignored {
            return;
        }
        let word = self.word.load(Acquire);
        if generation(word) != epoch {
            return;
        }
        let failure = outcome.is_failure();
        let now_nanos = match (self.window.needs_clock(), now) {
            (false, _) => 0,
            (true, Some(at)) => self.nanos(at),
            (true, None) => self.nanos(crate::clock::now()),
        };
        self.window.record(outcome_bits(failure, slow), now_nanos);
        let consecutive = if failure {
            self.consecutive.fetch_add(1, Relaxed) + 1
        } else {
            if self.consecutive.load(Relaxed) != 0 {
                self.consecutive.store(0, Relaxed);
            }
            0
        };
        if (failure || slow) && decode(word) == CircuitState::Closed {
            let totals = self.window.totals(now_nanos);
            if let Some(reason) = decide::trip_reason(&self.trip_rules(), totals, consecutive) {
                self.transition(Some(word), CircuitState::Open, reason, now);
            }
        }
    }

    /// What makes this breaker trip, read from its settings (after a
    /// failure only: nothing on the success path).
    fn trip_rules(&self) -> TripRules {
        let c = &self.settings.config;
        TripRules {
            minimum_calls: u64::from(c.minimum_calls),
            failure_rate: c.failure_rate_threshold,
            slow_call_rate: c.slow_call_duration.map(|_| c.slow_call_rate_threshold),
            consecutive_failures: c.consecutive_failures,
        }
    }

    fn finish_probe(&self, epoch: u64, outcome: Outcome, slow: bool, now: Option<Instant>) {
        let failed = outcome == Outcome::Failure || slow;
        let succeeded = outcome == Outcome::Success && !slow;
        let updated = self.probes.fetch_update(AcqRel, Acquire, |w| {
            ProbeWord::from_bits(w)
                .finish(epoch, succeeded)
                .map(ProbeWord::bits)
        });
        let Ok(before) = updated else {
            // A probe of a round that is over.
            return;
        };
        let needed = self.settings.config.half_open_probes;
        let decided = decide::after_probe(ProbeWord::from_bits(before), failed, succeeded, needed);
        if let Some((to, reason)) = decided {
            let half_open = (epoch << CODE_BITS) | code(CircuitState::HalfOpen);
            self.transition(Some(half_open), to, reason, now);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Trips> {
        // The guarded data is a counter that is always valid; a panic in
        // another thread cannot leave it half-written.
        self.transition
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves to `to` if the state word is still `expected` (any state when
    /// `None`). Returns whether this call made the transition.
    fn transition(
        &self,
        expected: Option<u64>,
        to: CircuitState,
        reason: TransitionReason,
        now: Option<Instant>,
    ) -> bool {
        let mut trips = self.lock();
        let current = self.word.load(Acquire);
        if expected.is_some_and(|e| e != current) {
            return false;
        }
        let from = decode(current);
        let rejects = |state| matches!(state, CircuitState::Open | CircuitState::HalfOpen);
        if let Some(gate) = self.gate() {
            // A group limits how many of its members reject at once: a
            // breaker that may not open stays as it is.
            if to == CircuitState::Open && !rejects(from) && !gate.try_open() {
                return false;
            }
            if rejects(from) && !rejects(to) {
                gate.close();
            }
        }
        let epoch = generation(current) + 1;
        let now = now.unwrap_or_else(crate::clock::now);
        match to {
            CircuitState::Open => {
                trips.in_a_row = decide::trips_in_a_row(
                    trips.in_a_row,
                    from,
                    trips.closed_at.map(|at| now.saturating_duration_since(at)),
                    self.settings.trip_memory,
                );
                let unit = if self.settings.config.open_duration.jitter_of() > 0.0 {
                    rand::random::<f64>()
                } else {
                    0.0
                };
                let period = self
                    .settings
                    .config
                    .open_duration
                    .period(trips.in_a_row, unit);
                let period = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
                self.open_until
                    .store(self.nanos(now).saturating_add(period), Relaxed);
            }
            CircuitState::HalfOpen => self.probes.store(ProbeWord::round(epoch).bits(), Relaxed),
            CircuitState::Closed | CircuitState::ForcedClosed => {
                if to == CircuitState::Closed || from != CircuitState::Closed {
                    self.window.reset();
                    self.consecutive.store(0, Relaxed);
                }
                if reason == TransitionReason::Manual {
                    *trips = Trips::default();
                } else {
                    trips.closed_at = Some(now);
                }
            }
            CircuitState::ForcedOpen | CircuitState::Disabled => {}
        }
        self.word.store((epoch << CODE_BITS) | code(to), Release);
        self.metrics.state.set(to.gauge_value());
        self.metrics.transitioned(from, to);
        drop(trips);
        self.settings
            .config
            .events
            .emit(|| CircuitEvent::StateTransition {
                service: self.settings.service.clone(),
                key: self.settings.key.clone(),
                from,
                to,
                reason,
            });
        true
    }

    /// Counts a rejected call and reports it.
    #[inline]
    pub(crate) fn on_rejected(&self, retry_after: Option<Duration>) {
        self.metrics.rejected.increment(1);
        self.settings
            .config
            .events
            .emit(|| CircuitEvent::CallRejected {
                service: self.settings.service.clone(),
                key: self.settings.key.clone(),
                retry_after,
            });
    }

    fn gate(&self) -> Option<&super::config::Gate> {
        self.settings
            .gate
            .as_deref()
            .filter(|_| self.grouped.load(Acquire))
    }

    /// Whether calls are being rejected: open or half-open (an ejected
    /// endpoint, for a balancer).
    #[cfg(feature = "balance")]
    #[inline]
    pub(crate) fn rejects(&self) -> bool {
        matches!(self.state(), CircuitState::Open | CircuitState::HalfOpen)
    }

    /// What [`acquire`](Self::acquire) would give a call now, without
    /// taking a probe slot or changing state: for a balancer choosing among
    /// endpoints. `now` is read only while open.
    #[cfg(feature = "balance")]
    #[inline]
    pub(crate) fn standing(&self, now: impl FnOnce() -> Instant) -> Standing {
        let word = self.word.load(Acquire);
        // Closed, the usual case, with one test.
        if word & CODE_MASK == CLOSED {
            return Standing::Admits;
        }
        match decode(word) {
            CircuitState::Closed | CircuitState::ForcedClosed | CircuitState::Disabled => {
                Standing::Admits
            }
            CircuitState::ForcedOpen => Standing::Rejects,
            CircuitState::HalfOpen => {
                let probes = ProbeWord::from_bits(self.probes.load(Acquire));
                let slots = self.settings.config.half_open_probes;
                match probes.admit(generation(word), slots) {
                    Some(_) => Standing::ProbeDue,
                    None => Standing::Rejects,
                }
            }
            CircuitState::Open => {
                let until = self.open_until.load(Acquire);
                match decide::open_remaining(self.nanos(now()), until) {
                    None => Standing::ProbeDue,
                    Some(_) => Standing::Rejects,
                }
            }
        }
    }

    /// Stops counting against the group's gate (the endpoint left the
    /// balancer), giving back the place this breaker held, once.
    #[cfg(feature = "balance")]
    pub(crate) fn leave_group(&self) {
        let _trips = self.lock();
        if self.grouped.swap(false, AcqRel) && self.rejects() {
            if let Some(gate) = &self.settings.gate {
                gate.close();
            }
        }
    }

    /// Sets a state by hand.
    pub(crate) fn set_state(&self, to: CircuitState) {
        self.transition(None, to, TransitionReason::Manual, None);
    }

    pub(crate) fn snapshot(&self) -> CircuitSnapshot {
        let now = Instant::now();
        let word = self.word.load(Acquire);
        let state = decode(word);
        let Totals {
            calls,
            failures,
            slow,
        } = self.window.totals(self.nanos(now));
        let retry_after = (state == CircuitState::Open).then(|| {
            Duration::from_nanos(
                self.open_until
                    .load(Acquire)
                    .saturating_sub(self.nanos(now)),
            )
        });
        let probes = ProbeWord::from_bits(self.probes.load(Acquire));
        let probes_in_flight =
            if state == CircuitState::HalfOpen && probes.belongs_to(generation(word)) {
                u32::try_from(probes.in_flight()).unwrap_or(u32::MAX)
            } else {
                0
            };
        CircuitSnapshot {
            state,
            calls,
            failures,
            slow_calls: slow,
            consecutive_failures: self.consecutive.load(Relaxed),
            retry_after,
            probes_in_flight,
        }
    }

    pub(crate) fn service(&self) -> &str {
        &self.settings.service
    }
}
