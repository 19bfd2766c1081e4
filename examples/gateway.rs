//! The gateway, on its own: routes `/users…` and `/orders…` to several
//! instances of each service through `ResilienceLayer`, and exports
//! `/metrics`.
//!
//! ```text
//! cargo run --example user_service -- --port 3001 &
//! cargo run --example user_service -- --port 3002 &
//! cargo run --example order_service -- --port 3101 --users http://127.0.0.1:3001,http://127.0.0.1:3002 &
//! cargo run --example gateway -- --port 3000 \
//!     --users http://127.0.0.1:3001,http://127.0.0.1:3002 --orders http://127.0.0.1:3101
//! curl localhost:3000/users/7
//! ```
//!
//! Flags (or environment variables): `--port` (`PORT`, default 3000),
//! `--users` (`USERS`), `--orders` (`ORDERS`): comma-separated URLs.

mod common;

use tower::BoxError;
use tower_bulwark::event::Events;

use common::args::Args;
use common::gateway::Gateway;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse(&[])?;
    let port: u16 = args.get("port", 3000)?;
    let (users, orders) = (args.list("users"), args.list("orders"));
    if users.is_empty() || orders.is_empty() {
        return Err("give the instances with --users URL,URL --orders URL,URL".into());
    }
    let _ = common::prometheus();
    let events = Events::new();
    events.subscribe(|event| println!("event: {event:?}"));
    let gateway = Gateway::new(&users, &orders, common::client::reqwest_client()?, &events)?;
    let app = gateway.router().merge(common::metrics_route());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("gateway on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
