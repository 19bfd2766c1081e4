//! The instances the demo, the load test and the chaos tests run: user
//! service instances sharing one store, and order service instances, each
//! checking users through a stack of its own.

use std::sync::Arc;
use std::time::Duration;

use tower::BoxError;
use tower_bulwark::event::Events;

use super::faults::Faults;
use super::instance::Instance;
use super::orders::{OrderStore, router as orders_router, user_client};
use super::users::{UserStore, router as users_router};

/// `n` user service instances (`user-1`…) on free ports of 127.0.0.1,
/// sharing one store seeded with users 1 to 100.
pub(crate) async fn users(n: usize) -> std::io::Result<Vec<Arc<Instance>>> {
    let store = UserStore::seeded();
    let mut instances = Vec::with_capacity(n);
    for i in 1..=n {
        let app = users_router(store.clone());
        let faults = Arc::new(Faults::default());
        instances.push(Instance::start(format!("user-{i}"), 0, app, faults).await?);
    }
    Ok(instances)
}

/// `n` order service instances (`order-1`…) sharing one store, each
/// checking users at `user_urls` through its own stack, named
/// `order-i/users`.
pub(crate) async fn orders(
    n: usize,
    user_urls: &[String],
    client: &reqwest::Client,
    events: &Events,
) -> Result<Vec<Arc<Instance>>, BoxError> {
    let store = OrderStore::default();
    let mut instances = Vec::with_capacity(n);
    for i in 1..=n {
        let users = user_client(
            &format!("order-{i}/users"),
            user_urls,
            client.clone(),
            events,
        )?;
        let app = orders_router(store.clone(), users);
        let faults = Arc::new(Faults::default());
        instances.push(Instance::start(format!("order-{i}"), 0, app, faults).await?);
    }
    Ok(instances)
}

/// The URLs of `instances`.
pub(crate) fn urls(instances: &[Arc<Instance>]) -> Vec<String> {
    instances.iter().map(|i| i.url()).collect()
}

/// The `q` quantile of latencies sorted in ascending order (zero for none).
pub(crate) fn quantile(sorted: &[Duration], q: f64) -> Duration {
    match sorted.len() {
        0 => Duration::ZERO,
        n => sorted[((n as f64 * q) as usize).min(n - 1)],
    }
}
