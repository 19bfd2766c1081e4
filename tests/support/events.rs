//! Records the events of one layer kind that reach a hub, for tests that
//! assert on them.
#![allow(clippy::unwrap_used)] // test code: a poisoned lock is a failed test
#![allow(dead_code)] // each user reads what it needs

use std::sync::{Arc, Mutex};

use tower_bulwark::event::{Event, Events};

/// A hub that pushes every balancer event into `into`.
#[cfg(feature = "balance")]
pub(crate) fn record_balance(
    into: Arc<Mutex<Vec<tower_bulwark::balance::BalanceEvent>>>,
) -> Events {
    let hub = Events::new();
    hub.subscribe(move |event| {
        if let Event::Balance(event) = event {
            into.lock().unwrap().push(event.clone());
        }
    });
    hub
}

/// A hub that pushes every breaker event into `into`.
#[cfg(feature = "circuit-breaker")]
pub(crate) fn record_circuit(
    into: Arc<Mutex<Vec<tower_bulwark::circuit_breaker::CircuitEvent>>>,
) -> Events {
    let hub = Events::new();
    hub.subscribe(move |event| {
        if let Event::Circuit(event) = event {
            into.lock().unwrap().push(event.clone());
        }
    });
    hub
}
