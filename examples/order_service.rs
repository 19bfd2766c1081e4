//! The order service, on its own: `POST /orders`, `GET /orders/{id}`,
//! `GET /orders?user_id=7`, `/metrics`, and fault injection at
//! `/admin/faults`. It checks users with the user service instances given
//! by `--users`, through a tower-bulwark stack.
//!
//! ```text
//! cargo run --example user_service -- --port 3001 &
//! cargo run --example order_service -- --port 3101 --users http://127.0.0.1:3001
//! curl -X POST localhost:3101/orders -H 'content-type: application/json' \
//!      -d '{"user_id": 7, "item": "book"}'
//! ```
//!
//! Flags (or environment variables): `--port` (`PORT`, default 3101),
//! `--users` (`USERS`, comma-separated URLs, default
//! `http://127.0.0.1:3001`).

mod common;

use std::sync::Arc;

use tower::BoxError;
use tower_bulwark::event::Events;

use common::args::Args;
use common::faults::Faults;
use common::instance::Instance;
use common::orders::{OrderStore, router, user_client};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse(&[])?;
    let port: u16 = args.get("port", 3101)?;
    let mut users = args.list("users");
    if users.is_empty() {
        users.push("http://127.0.0.1:3001".to_owned());
    }
    let _ = common::prometheus();
    let events = Events::new();
    events.subscribe(|event| println!("event: {event:?}"));
    let client = user_client(
        "orders_to_users",
        &users,
        common::client::reqwest_client()?,
        &events,
    )?;
    let app = router(OrderStore::default(), client).merge(common::metrics_route());
    let instance = Instance::start("orders", port, app, Arc::new(Faults::default())).await?;
    println!(
        "order service on {}, users at {}",
        instance.url(),
        users.join(", ")
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
