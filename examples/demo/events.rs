//! What the layers reported, for the live view and the summary: one line
//! per state change, and counts for what repeats.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tower_bulwark::balance::BalanceEvent;
use tower_bulwark::circuit_breaker::CircuitEvent;
use tower_bulwark::event::Event;
use tower_bulwark::retry::RetryEvent;

#[derive(Clone, Default)]
pub(crate) struct EventLog {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    names: BTreeMap<String, String>,
    /// Lines not shown yet.
    pending: Vec<String>,
    ejected: BTreeSet<String>,
    transitions: Vec<String>,
    /// Retries refused by a budget since the last look, by service.
    refused: BTreeMap<String, u64>,
}

impl EventLog {
    /// Names to show for endpoints' URLs.
    pub(crate) fn set_names(&self, names: BTreeMap<String, String>) {
        self.lock().names = names;
    }

    /// A line to show.
    pub(crate) fn note(&self, line: String) {
        self.lock().pending.push(line);
    }

    /// Takes note of `event`: cheap, as it runs on the request path.
    pub(crate) fn record(&self, event: &Event) {
        let mut log = self.lock();
        let log = &mut *log;
        let name = |endpoint: &str| {
            log.names
                .get(endpoint)
                .cloned()
                .unwrap_or_else(|| endpoint.to_owned())
        };
        match event {
            Event::Circuit(CircuitEvent::StateTransition {
                service, from, to, ..
            }) => {
                log.transitions.push(format!("{service} {to}"));
                log.pending
                    .push(format!("{service} breaker {from} -> {to}"));
            }
            Event::Balance(BalanceEvent::EndpointEjected {
                service, endpoint, ..
            }) => {
                let endpoint = name(endpoint);
                log.ejected.insert(format!("{endpoint} (by {service})"));
                log.pending.push(format!("{service}: {endpoint} ejected"));
            }
            Event::Balance(BalanceEvent::EndpointReturned {
                service, endpoint, ..
            }) => {
                let endpoint = name(endpoint);
                log.ejected.remove(&format!("{endpoint} (by {service})"));
                log.pending
                    .push(format!("{service}: {endpoint} back, on probation"));
            }
            Event::Retry(RetryEvent::BudgetExhausted { service, .. }) => {
                match log.refused.get_mut(&**service) {
                    Some(count) => *count += 1,
                    None => {
                        log.refused.insert(service.to_string(), 1);
                    }
                }
            }
            _ => {}
        }
    }

    /// The lines not shown yet.
    pub(crate) fn take_pending(&self) -> Vec<String> {
        let mut log = self.lock();
        let refused = std::mem::take(&mut log.refused);
        for (service, count) in refused {
            log.pending
                .push(format!("{service}: {count} retries refused by the budget"));
        }
        std::mem::take(&mut log.pending)
    }

    /// The endpoints ejected now.
    pub(crate) fn ejected(&self) -> Vec<String> {
        self.lock().ejected.iter().cloned().collect()
    }

    /// Every breaker transition so far.
    pub(crate) fn transitions(&self) -> Vec<String> {
        self.lock().transitions.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
