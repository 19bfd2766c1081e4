//! The user service, on its own: `GET /users`, `GET /users/{id}`,
//! `POST /users` and `/metrics` on its port, and fault injection
//! (`/admin/faults`, `/admin/down`) on an admin port of 127.0.0.1 that the
//! gateway never proxies to. Every instance shares the database.
//!
//! ```text
//! cargo run --example user_service -- --port 3001 --admin-port 4001
//! curl localhost:3001/users/7
//! curl -X POST localhost:4001/admin/faults -H 'content-type: application/json' \
//!      -d '{"latency_ms": 200, "error_rate": 0.3}'
//! ```
//!
//! `--help` lists the flags.

use bulwark_examples as common;

use clap::Parser;
use tower::BoxError;

use common::args::{DatabaseArgs, LimitArgs};
use common::db::Db;

/// The user service of the tower-bulwark examples.
#[derive(Debug, Parser)]
struct Flags {
    /// The port of the service, on 127.0.0.1.
    #[arg(long, env = "PORT", default_value_t = 3001)]
    port: u16,
    /// The port of the admin routes, on 127.0.0.1.
    #[arg(long, env = "ADMIN_PORT", default_value_t = 4001)]
    admin_port: u16,
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let flags = Flags::parse();
    let _log = common::log::init();
    let db = Db::connect(&flags.database.database_url).await?;
    let app = common::users::router(db);
    let limits = flags.limits.limits();
    common::instance::run("user service", flags.port, flags.admin_port, app, limits).await
}
