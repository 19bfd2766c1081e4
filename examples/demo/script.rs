//! The fault script: what breaks, and when.

use std::sync::Arc;
use std::time::Duration;

use crate::common::faults::FaultSettings;
use crate::common::instance::Instance;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    SlowUser(usize),
    FailingUser(usize),
    KillOrder(usize),
    HealAll,
    UsersDown,
    UsersUp,
}

/// One step of the script: at this share of the run, do this.
pub(crate) struct Step {
    pub(crate) at: Duration,
    pub(crate) label: &'static str,
    pub(crate) action: Action,
}

/// The script of a run of `duration`.
pub(crate) fn script(duration: Duration) -> Vec<Step> {
    let at = |share: f64| duration.mul_f64(share);
    let step = |share, label, action| Step {
        at: at(share),
        label,
        action,
    };
    vec![
        step(0.12, "user-2 answers 400 ms late", Action::SlowUser(1)),
        step(
            0.25,
            "user-3 fails half its requests",
            Action::FailingUser(2),
        ),
        step(0.38, "order-1 killed", Action::KillOrder(0)),
        step(0.50, "all healed, order-1 restarted", Action::HealAll),
        step(0.62, "every user instance down", Action::UsersDown),
        step(0.80, "the user service is back", Action::UsersUp),
    ]
}

/// Does `action` to the instances; a problem is returned as a line to show.
pub(crate) async fn apply(
    action: Action,
    users: &[Arc<Instance>],
    orders: &[Arc<Instance>],
) -> Option<String> {
    let revive = |instances: Vec<Arc<Instance>>| async move {
        for instance in instances {
            if let Err(e) = instance.revive().await {
                return Some(format!("cannot restart {}: {e}", instance.name()));
            }
        }
        None
    };
    match action {
        Action::SlowUser(i) => users[i].faults().set(FaultSettings {
            latency_ms: 400,
            error_rate: 0.0,
            ..FaultSettings::default()
        }),
        Action::FailingUser(i) => users[i].faults().set(FaultSettings {
            latency_ms: 0,
            error_rate: 0.5,
            ..FaultSettings::default()
        }),
        Action::KillOrder(i) => orders[i].kill(),
        Action::HealAll => {
            for instance in users.iter().chain(orders) {
                instance.faults().heal();
            }
            return revive(users.iter().chain(orders).cloned().collect()).await;
        }
        Action::UsersDown => users.iter().for_each(|i| i.kill()),
        Action::UsersUp => return revive(users.to_vec()).await,
    }
    None
}
