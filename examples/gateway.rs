//! The gateway, on its own: routes `/users…` and `/orders…` to several
//! instances of each service through `ResilienceLayer`, and exports
//! `/metrics`. It proxies nothing else: the instances' admin routes live on
//! ports it never calls.
//!
//! ```text
//! cargo run --example user_service -- --port 3001 --admin-port 4001 &
//! cargo run --example user_service -- --port 3002 --admin-port 4002 &
//! cargo run --example order_service -- --port 3101 --admin-port 4101 \
//!     --users http://127.0.0.1:3001,http://127.0.0.1:3002 &
//! cargo run --example gateway -- --port 3000 \
//!     --users http://127.0.0.1:3001,http://127.0.0.1:3002 --orders http://127.0.0.1:3101
//! curl localhost:3000/users/7
//! ```
//!
//! `--help` lists the flags.

use bulwark_examples as common;

use std::sync::Arc;

use clap::Parser;
use tower::BoxError;
use tower_bulwark::event::Events;

use common::args::{LimitArgs, Urls, urls};
use common::gateway::Gateway;

/// The gateway of the tower-bulwark examples.
#[derive(Debug, Parser)]
struct Flags {
    /// The port of the gateway, on 127.0.0.1.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    /// The user service instances, comma-separated.
    #[arg(long, env = "USERS", value_parser = urls)]
    users: Urls,
    /// The order service instances, comma-separated.
    #[arg(long, env = "ORDERS", value_parser = urls)]
    orders: Urls,
    /// The most bytes each upstream's cache keeps (keys and bodies); 0
    /// for no cache.
    #[arg(long, env = "CACHE_BYTES", default_value_t = common::gateway::CACHE_BYTES)]
    cache_bytes: u64,
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
    let (users, orders) = (flags.users.0, flags.orders.0);
    let client = common::client::reqwest_client()?;
    let cache = (flags.cache_bytes > 0).then_some(flags.cache_bytes);
    let gateway = Gateway::with_cache(&users, &orders, client, &events, cache)?;
    let app = gateway.router().merge(common::metrics_route());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", flags.port)).await?;
    tracing::info!(
        url = format!("http://{}", listener.local_addr()?),
        "gateway up"
    );
    tokio::select! {
        () = common::server::serve(listener, app, flags.limits.limits(), Arc::default()) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
