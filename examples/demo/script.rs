//! The fault script: what breaks, and when.

use std::sync::Arc;
use std::time::Duration;

use crate::common::faults::FaultSettings;
use crate::common::instance::Instance;
use crate::traffic::Traffic;

/// What an overloaded user instance serves at once, and how long each
/// request takes: 150 requests a second for the three of them.
const USERS_AT_ONCE: u32 = 2;
const USERS_TAKE: Duration = Duration::from_millis(40);

#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    SlowUser(usize),
    FailingUser(usize),
    KillOrder(usize),
    HealAll,
    UsersDown,
    UsersUp,
    /// Every user instance serves [`USERS_AT_ONCE`] requests at a time,
    /// [`USERS_TAKE`] each, and a surge asks four times that of them for
    /// this long.
    UsersOverloaded(Duration),
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
        step(0.10, "user-2 answers 400 ms late", Action::SlowUser(1)),
        step(
            0.20,
            "user-3 fails half its requests",
            Action::FailingUser(2),
        ),
        step(0.30, "order-1 killed", Action::KillOrder(0)),
        step(0.40, "all healed, order-1 restarted", Action::HealAll),
        step(0.50, "every user instance down", Action::UsersDown),
        step(0.64, "the user service is back", Action::UsersUp),
        step(
            0.76,
            "users offered 4x what they serve",
            Action::UsersOverloaded(at(0.90) - at(0.76)),
        ),
        step(0.90, "the overload is over", Action::HealAll),
    ]
}

/// Does `action` to the instances and the traffic; a problem is returned
/// as a line to show.
pub(crate) async fn apply(
    action: Action,
    users: &[Arc<Instance>],
    orders: &[Arc<Instance>],
    traffic: &Traffic,
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
        Action::UsersOverloaded(length) => {
            for instance in users {
                instance.faults().set(FaultSettings {
                    latency_ms: USERS_TAKE.as_millis() as u64,
                    capacity: USERS_AT_ONCE,
                    ..FaultSettings::default()
                });
            }
            let serves = USERS_AT_ONCE as f64 * users.len() as f64 / USERS_TAKE.as_secs_f64();
            traffic.surge((4.0 * serves) as u32, length);
        }
    }
    None
}
