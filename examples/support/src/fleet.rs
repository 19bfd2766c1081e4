//! The instances the demo, the load test and the chaos tests run in one
//! process: user service instances and order service instances over one
//! database, each order instance checking users through a stack of its
//! own.

use std::sync::Arc;
use std::time::Duration;

use tower::BoxError;
use tower_bulwark::event::Events;

use super::db::Db;
use super::faults::Faults;
use super::instance::Instance;
use super::orders::{router as orders_router, user_client};
use super::server::Limits;
use super::users::router as users_router;

/// `n` user service instances (`user-1`…) on free ports of 127.0.0.1, over
/// `db`.
pub async fn users(n: usize, db: &Db) -> std::io::Result<Vec<Arc<Instance>>> {
    let mut instances = Vec::with_capacity(n);
    for i in 1..=n {
        let app = users_router(db.clone());
        let faults = Arc::new(Faults::default());
        let instance = Instance::start(format!("user-{i}"), 0, 0, app, faults, Limits::default());
        instances.push(instance.await?);
    }
    Ok(instances)
}

/// `n` order service instances (`order-1`…) over `db`, each checking users
/// at `user_urls` through its own stack, named `order-i/users`.
pub async fn orders(
    n: usize,
    db: &Db,
    user_urls: &[String],
    client: &reqwest::Client,
    events: &Events,
) -> Result<Vec<Arc<Instance>>, BoxError> {
    let mut instances = Vec::with_capacity(n);
    for i in 1..=n {
        let users = user_client(
            &format!("order-{i}/users"),
            user_urls,
            client.clone(),
            events,
        )?;
        let app = orders_router(db.clone(), users);
        let faults = Arc::new(Faults::default());
        let instance = Instance::start(format!("order-{i}"), 0, 0, app, faults, Limits::default());
        instances.push(instance.await?);
    }
    Ok(instances)
}

/// The URLs of `instances`.
pub fn urls(instances: &[Arc<Instance>]) -> Vec<String> {
    instances.iter().map(|i| i.url()).collect()
}

/// The `q` quantile of latencies sorted in ascending order (zero for none).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    match sorted.len() {
        0 => Duration::ZERO,
        n => sorted[((n as f64 * q) as usize).min(n - 1)],
    }
}
