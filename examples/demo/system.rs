//! The demo's system: three user and three order instances over one
//! database, and the gateway in front of them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tower::BoxError;
use tower_bulwark::event::Events;

use crate::common::db::{Db, TemporaryDb};
use crate::common::gateway::Gateway;
use crate::common::instance::Instance;
use crate::common::{client, fleet, metrics_route, server};

/// The instances and the gateway, running.
pub(crate) struct System {
    pub(crate) users: Vec<Arc<Instance>>,
    pub(crate) orders: Vec<Arc<Instance>>,
    gateway: Gateway,
    pub(crate) gateway_url: String,
    server: tokio::task::JoinHandle<()>,
    pub(crate) client: reqwest::Client,
}

impl System {
    /// Three user and three order instances over `database`, and the
    /// gateway on `port`.
    pub(crate) async fn start(
        database: &TemporaryDb,
        port: u16,
        events: &Events,
    ) -> Result<System, BoxError> {
        let db = Db::connect(&database.url()).await?;
        let client = client::reqwest_client()?;
        let users = fleet::users(3, &db).await?;
        let orders = fleet::orders(3, &db, &fleet::urls(&users), &client, events).await?;
        let gateway = Gateway::new(
            &fleet::urls(&users),
            &fleet::urls(&orders),
            client.clone(),
            events,
        )?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let gateway_url = format!("http://{}", listener.local_addr()?);
        let app = gateway.clone().router().merge(metrics_route());
        let server = tokio::spawn(server::serve(
            listener,
            app,
            server::Limits::default(),
            Arc::default(),
        ));
        Ok(System {
            users,
            orders,
            gateway,
            gateway_url,
            server,
            client,
        })
    }

    /// Names to show for the instances' URLs.
    pub(crate) fn names(&self) -> BTreeMap<String, String> {
        self.users
            .iter()
            .chain(&self.orders)
            .map(|i| (i.url(), i.name().to_owned()))
            .collect()
    }

    pub(crate) fn describe(&self, clients: u64, duration: Duration) -> String {
        let list = |instances: &[Arc<Instance>]| {
            let names: Vec<String> = instances
                .iter()
                .map(|i| format!("{} {}", i.name(), i.addr()))
                .collect();
            names.join(", ")
        };
        format!(
            "tower-bulwark demo: {clients} clients, {} s, gateway at {}\n{}\n{}\n\
             each second: requests answered, the share of good answers (not a 5xx nor a\n\
             connection error: stale and fallback answers are good), latency quantiles\n",
            duration.as_secs(),
            self.gateway_url,
            list(&self.users),
            list(&self.orders),
        )
    }

    /// The breakers' states, as one line.
    pub(crate) fn breakers(&self) -> String {
        format!(
            "users {}, orders {}",
            self.gateway.users_breaker.state(),
            self.gateway.orders_breaker.state()
        )
    }

    /// The concurrency limits the gateway has learned, as one line.
    pub(crate) fn limits(&self) -> String {
        let [users, orders] = self.gateway.concurrency_limits();
        format!("users {users}, orders {orders}")
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.server.abort();
    }
}
