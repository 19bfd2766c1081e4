//! The breaker against a small reference model: random sequences of calls
//! that start, finish (success, failure, ignored, fast or slow), are dropped,
//! and clock steps. After every step the state, the window figures and the
//! number of calls that reached the inner service must agree with the model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
#![cfg(feature = "circuit-breaker")]

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use tokio::sync::oneshot;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::circuit_breaker::{
    CircuitBreakerConfig, CircuitBreakerLayer, CircuitState, OpenDuration, SlidingWindow,
    error::CircuitOpen,
};
use tower_bulwark::classify::Outcome;

const OPEN_MS: u64 = 100;

#[derive(Debug, Clone)]
struct Config {
    window: usize,
    minimum_calls: usize,
    rate: f64,
    slow_rate: f64,
    slow_ms: Option<u64>,
    consecutive: Option<u64>,
    probes: u32,
}

fn config() -> impl Strategy<Value = Config> {
    (1usize..=12)
        .prop_flat_map(|window| {
            (
                Just(window),
                1..=window,
                prop::sample::select(vec![0.2, 0.25, 0.5, 0.75, 1.0]),
                prop::sample::select(vec![0.5, 1.0]),
                prop::option::of(Just(50u64)),
                prop::option::of(1u64..=4),
                1u32..=3,
            )
        })
        .prop_map(
            |(window, minimum_calls, rate, slow_rate, slow_ms, consecutive, probes)| Config {
                window,
                minimum_calls,
                rate,
                slow_rate,
                slow_ms,
                consecutive,
                probes,
            },
        )
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Success,
    Failure,
    Ignored,
}

#[derive(Debug, Clone)]
enum Op {
    Begin,
    Finish(usize, End),
    Drop(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Begin),
        4 => (any::<usize>(), prop_oneof![Just(End::Success), Just(End::Failure), Just(End::Ignored)])
            .prop_map(|(i, e)| Op::Finish(i, e)),
        1 => any::<usize>().prop_map(Op::Drop),
        2 => prop_oneof![0u64..=60, Just(OPEN_MS)].prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Admit {
    Record(u64),
    Probe(u64),
    Rejected,
}

/// The reference: the breaker's rules, written as plainly as possible.
#[derive(Debug)]
struct Model {
    cfg: Config,
    now: u64,
    state: CircuitState,
    epoch: u64,
    window: VecDeque<(bool, bool)>,
    consecutive: u64,
    open_until: u64,
    probes: u32,
    successes: u32,
    admitted: u64,
}

impl Model {
    fn new(cfg: Config) -> Self {
        Model {
            cfg,
            now: 0,
            state: CircuitState::Closed,
            epoch: 0,
            window: VecDeque::new(),
            consecutive: 0,
            open_until: 0,
            probes: 0,
            successes: 0,
            admitted: 0,
        }
    }

    fn enter(&mut self, state: CircuitState) {
        self.state = state;
        self.epoch += 1;
        match state {
            CircuitState::Open => self.open_until = self.now + OPEN_MS,
            CircuitState::HalfOpen => {
                self.probes = 0;
                self.successes = 0;
            }
            CircuitState::Closed => {
                self.window.clear();
                self.consecutive = 0;
            }
            _ => unreachable!(),
        }
    }

    fn begin(&mut self) -> Admit {
        if self.state == CircuitState::Open && self.now >= self.open_until {
            self.enter(CircuitState::HalfOpen);
        }
        let admit = match self.state {
            CircuitState::Closed => Admit::Record(self.epoch),
            CircuitState::HalfOpen if self.probes < self.cfg.probes => {
                self.probes += 1;
                Admit::Probe(self.epoch)
            }
            _ => Admit::Rejected,
        };
        if admit != Admit::Rejected {
            self.admitted += 1;
        }
        admit
    }

    fn finish(&mut self, admit: Admit, end: End, elapsed: u64) {
        let slow = end != End::Ignored && self.cfg.slow_ms.is_some_and(|t| elapsed > t);
        let failure = end == End::Failure;
        match admit {
            Admit::Record(epoch) if end != End::Ignored && epoch == self.epoch => {
                self.window.push_back((failure, slow));
                if self.window.len() > self.cfg.window {
                    self.window.pop_front();
                }
                self.consecutive = if failure { self.consecutive + 1 } else { 0 };
                if (failure || slow) && self.state == CircuitState::Closed && self.should_trip() {
                    self.enter(CircuitState::Open);
                }
            }
            Admit::Probe(epoch) if epoch == self.epoch => {
                self.probes -= 1;
                if failure || slow {
                    self.enter(CircuitState::Open);
                } else if end == End::Success {
                    self.successes += 1;
                    if self.successes >= self.cfg.probes {
                        self.enter(CircuitState::Closed);
                    }
                }
            }
            _ => {}
        }
    }

    fn dropped(&mut self, admit: Admit) {
        if admit == Admit::Probe(self.epoch) {
            self.probes -= 1;
        }
    }

    fn should_trip(&self) -> bool {
        let calls = self.window.len();
        let failures = self.window.iter().filter(|(f, _)| *f).count();
        let slow = self.window.iter().filter(|(_, s)| *s).count();
        let by_rate = calls >= self.cfg.minimum_calls
            && (failures as f64 / calls as f64 >= self.cfg.rate
                || (self.cfg.slow_ms.is_some()
                    && slow as f64 / calls as f64 >= self.cfg.slow_rate));
        by_rate || self.cfg.consecutive.is_some_and(|k| self.consecutive >= k)
    }
}

type Reply = Result<(), BoxError>;

fn run(cfg: Config, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut breaker = CircuitBreakerConfig::default()
            .sliding_window(SlidingWindow::count(cfg.window as u32))
            .minimum_calls(cfg.minimum_calls as u32)
            .failure_rate_threshold(cfg.rate)
            .slow_call_rate_threshold(cfg.slow_rate)
            .open_duration(OpenDuration::fixed(Duration::from_millis(OPEN_MS)))
            .half_open_probes(cfg.probes);
        if let Some(ms) = cfg.slow_ms {
            breaker = breaker.slow_call_duration(Duration::from_millis(ms));
        }
        if let Some(k) = cfg.consecutive {
            breaker = breaker.consecutive_failures(k as u32);
        }
        let layer = CircuitBreakerLayer::new(breaker).unwrap().classify(
            |r: Result<&(), &BoxError>| match r {
                Ok(()) => Outcome::Success,
                Err(e) if e.to_string() == "ignored" => Outcome::Ignored,
                Err(_) => Outcome::Failure,
            },
        );
        let handle = layer.handle();
        let inner_calls = Arc::new(AtomicU64::new(0));
        let counter = inner_calls.clone();
        let svc = layer.layer(service_fn(move |rx: oneshot::Receiver<Reply>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { rx.await.unwrap_or_else(|_| Err("sender dropped".into())) }
        }));

        let mut model = Model::new(cfg);
        let mut in_flight = Vec::new();
        for op in ops {
            match op {
                Op::Begin => {
                    let (tx, rx) = oneshot::channel();
                    let mut clone = svc.clone();
                    let mut fut = Box::pin(clone.ready().await.unwrap().call(rx));
                    let admit = model.begin();
                    match futures::poll!(fut.as_mut()) {
                        std::task::Poll::Ready(Err(e)) => {
                            prop_assert!(e.is::<CircuitOpen>(), "{e}");
                            prop_assert_eq!(admit, Admit::Rejected);
                        }
                        std::task::Poll::Ready(Ok(())) => {
                            prop_assert!(false, "answered before finishing")
                        }
                        std::task::Poll::Pending => {
                            prop_assert_ne!(admit, Admit::Rejected);
                            in_flight.push((tx, fut, admit, model.now));
                        }
                    }
                }
                Op::Finish(i, end) if !in_flight.is_empty() => {
                    let (tx, mut fut, admit, started) = in_flight.remove(i % in_flight.len());
                    let reply = match end {
                        End::Success => Ok(()),
                        End::Failure => Err("failed".into()),
                        End::Ignored => Err("ignored".into()),
                    };
                    let _ = tx.send(reply);
                    let done = futures::poll!(fut.as_mut());
                    prop_assert!(done.is_ready());
                    model.finish(admit, end, model.now - started);
                }
                Op::Drop(i) if !in_flight.is_empty() => {
                    let (_, fut, admit, _) = in_flight.remove(i % in_flight.len());
                    drop(fut);
                    model.dropped(admit);
                }
                Op::Advance(ms) => {
                    tokio::time::advance(Duration::from_millis(ms)).await;
                    model.now += ms;
                }
                Op::Finish(..) | Op::Drop(_) => {}
            }

            let snapshot = handle.snapshot();
            prop_assert_eq!(snapshot.state, model.state);
            prop_assert_eq!(snapshot.calls, model.window.len() as u64);
            prop_assert_eq!(
                snapshot.failures,
                model.window.iter().filter(|(f, _)| *f).count() as u64
            );
            prop_assert_eq!(
                snapshot.slow_calls,
                model.window.iter().filter(|(_, s)| *s).count() as u64
            );
            prop_assert_eq!(snapshot.consecutive_failures, model.consecutive);
            prop_assert_eq!(
                inner_calls.load(Ordering::SeqCst),
                model.admitted,
                "calls that reached the inner service"
            );
            prop_assert!(model.probes <= model.cfg.probes);
            let probes_in_flight = in_flight
                .iter()
                .filter(|(_, _, a, _)| *a == Admit::Probe(model.epoch))
                .count();
            prop_assert!(
                probes_in_flight <= model.cfg.probes as usize,
                "more probes in flight than allowed"
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn breaker_agrees_with_the_model(cfg in config(), ops in prop::collection::vec(op(), 1..150)) {
        run(cfg, ops)?;
    }
}
