//! Logs of the example services, through `tracing` with a non-blocking
//! writer: a line is queued and written by a thread of its own, and when
//! the queue is full (stdout is slow, or closed) lines are dropped, never
//! waited for. No request ever blocks, or fails, because of a log line.
//!
//! The layers' events become one line per state change (a breaker opens,
//! an endpoint is ejected) and, for events that repeat by the thousand (a
//! call rejected by an open breaker, a retry the budget refused), one line
//! a second with their count.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tower_bulwark::balance::BalanceEvent;
use tower_bulwark::circuit_breaker::CircuitEvent;
use tower_bulwark::event::{Event, Events};
use tower_bulwark::retry::RetryEvent;
use tracing_appender::non_blocking::WorkerGuard;

/// Installs the process's logger (`RUST_LOG` filters, `info` by default),
/// and a thread that logs the counts of [`repeated`] events once a second.
/// Keep the guard for as long as the process should log.
pub fn init() -> WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(10_000)
        .finish(std::io::stdout());
    // The layers' events are logged by `log_events` below, with repeats
    // counted; the crate's own `tracing` events of them (feature `tracing`,
    // on in CI's `--all-features` runs) would say each twice.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_bulwark=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        .with_ansi(false)
        .try_init();
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            for ((what, whose), count) in REPEATED.take() {
                tracing::warn!(count, "{what} in the last second ({whose})");
            }
        }
    });
    guard
}

/// Counts of repeated events since the last line, by what and whose.
struct Repeated {
    counts: Mutex<BTreeMap<(&'static str, String), u64>>,
}

static REPEATED: Repeated = Repeated {
    counts: Mutex::new(BTreeMap::new()),
};

impl Repeated {
    fn count(&self, what: &'static str, whose: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        match counts.get_mut(&(what, whose.to_owned())) {
            Some(count) => *count += 1,
            None => {
                // A bound, as `whose` may come from a request.
                if counts.len() < 1000 {
                    counts.insert((what, whose.to_owned()), 1);
                }
            }
        }
    }

    fn take(&self) -> BTreeMap<(&'static str, String), u64> {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Counts an event that may repeat by the thousand (a dependency failing
/// every request): the logger writes one line a second with the count,
/// not a line each time.
pub fn repeated(what: &'static str, whose: &str) {
    REPEATED.count(what, whose);
}

/// Logs `events`: state changes at once, repeated events counted.
pub fn log_events(events: &Events) {
    events.subscribe(move |event: &Event| match event {
        Event::Circuit(CircuitEvent::StateTransition {
            service,
            key,
            from,
            to,
            reason,
            ..
        }) => tracing::info!(
            service = &**service,
            key = key.as_deref().unwrap_or(""),
            "circuit {from} -> {to} ({reason:?})"
        ),
        Event::Circuit(CircuitEvent::CallRejected { service, .. }) => {
            repeated("calls rejected by an open circuit", service);
        }
        Event::Retry(RetryEvent::BudgetExhausted { service, .. }) => {
            repeated("retries refused by the budget", service);
        }
        Event::Balance(BalanceEvent::EndpointEjected {
            service, endpoint, ..
        }) => {
            tracing::warn!(
                service = &**service,
                endpoint = &**endpoint,
                "endpoint ejected"
            );
        }
        Event::Balance(BalanceEvent::EndpointReturned {
            service, endpoint, ..
        }) => {
            tracing::info!(
                service = &**service,
                endpoint = &**endpoint,
                "endpoint back, on probation"
            );
        }
        Event::Balance(BalanceEvent::DiscoveryFailed { service, error, .. }) => {
            tracing::warn!(service = &**service, error = &**error, "discovery failed");
        }
        other => tracing::debug!("{other:?}"),
    });
}
