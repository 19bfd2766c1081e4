//! The order service, on its own: `POST /orders`, `GET /orders/{id}`,
//! `GET /orders?user_id=7` and `/metrics` on its port, fault injection on
//! an admin port of 127.0.0.1. Creating an order checks its user with the
//! user service instances given by `--users`, through a tower-bulwark
//! stack; every instance shares the database.
//!
//! ```text
//! cargo run --example user_service -- --port 3001 --admin-port 4001 &
//! cargo run --example order_service -- --port 3101 --admin-port 4101 --users http://127.0.0.1:3001
//! curl -X POST localhost:3101/orders -H 'content-type: application/json' \
//!      -H 'idempotency-key: order-1' -d '{"user_id": 7, "item": "book"}'
//! ```
//!
//! `--help` lists the flags.

use bulwark_examples as common;

use clap::Parser;
use tower::BoxError;
use tower_bulwark::event::Events;

use common::args::{DatabaseArgs, LimitArgs, Urls, urls};
use common::db::Db;

/// The order service of the tower-bulwark examples.
#[derive(Debug, Parser)]
struct Flags {
    /// The port of the service, on 127.0.0.1.
    #[arg(long, env = "PORT", default_value_t = 3101)]
    port: u16,
    /// The port of the admin routes, on 127.0.0.1.
    #[arg(long, env = "ADMIN_PORT", default_value_t = 4101)]
    admin_port: u16,
    /// The user service instances, comma-separated.
    #[arg(long, env = "USERS", default_value = "http://127.0.0.1:3001", value_parser = urls)]
    users: Urls,
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let flags = Flags::parse();
    let _log = common::log::init();
    let _ = common::prometheus();
    let events = Events::new();
    common::log::log_events(&events);
    let db = Db::connect(&flags.database.database_url).await?;
    let users = flags.users.0;
    let client = common::orders::user_client(
        "orders_to_users",
        &users,
        common::client::reqwest_client()?,
        &events,
    )?;
    let app = common::orders::router(db, client);
    tracing::info!(users = users.join(","), "checking users with");
    let limits = flags.limits.limits();
    common::instance::run("order service", flags.port, flags.admin_port, app, limits).await
}
