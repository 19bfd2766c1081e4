//! The user service, on its own: `GET /users`, `GET /users/{id}`,
//! `POST /users`, `/metrics`, and fault injection at `/admin/faults` and
//! `/admin/down`.
//!
//! ```text
//! cargo run --example user_service -- --port 3001
//! curl localhost:3001/users/7
//! curl -X POST localhost:3001/admin/faults -H 'content-type: application/json' \
//!      -d '{"latency_ms": 200, "error_rate": 0.3}'
//! ```
//!
//! Flags (or environment variables): `--port` (`PORT`, default 3001).

mod common;

use std::sync::Arc;

use tower::BoxError;

use common::args::Args;
use common::faults::Faults;
use common::instance::Instance;
use common::users::{UserStore, router};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse(&[])?;
    let port: u16 = args.get("port", 3001)?;
    let app = router(UserStore::seeded()).merge(common::metrics_route());
    let instance = Instance::start("users", port, app, Arc::new(Faults::default())).await?;
    println!("user service on {}", instance.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
