//! The services' database: SQLite by default (a file every instance on the
//! machine shares; nothing to install), or Postgres for instances on
//! several machines (`--database-url postgres://...`), through sqlx.
//!
//! Ids come from the database, so they are unique across instances; a
//! write is acknowledged only once committed, so it survives a `kill -9`
//! of the instance that made it (SQLite in WAL mode with `synchronous =
//! NORMAL` loses a commit only if the machine itself fails).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};
use tower::BoxError;

/// A user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
}

/// An order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Order {
    pub id: i64,
    pub user_id: i64,
    pub item: String,
    pub quantity: i64,
}

/// Which database is behind the pool: their SQL differs a little.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

/// A pool of connections to the services' database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    kind: Kind,
}

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    item TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, id);
";

const POSTGRES_SCHEMA: &str = "
SELECT pg_advisory_xact_lock(4242);
CREATE TABLE IF NOT EXISTS users (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    item TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    idempotency_key TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, id);
";

/// Users 1 to 100 exist in a new database.
const SEEDED_USERS: i64 = 100;

impl Db {
    /// Connects to `url` (`sqlite://path?mode=rwc`, `postgres://...`),
    /// creates the tables if they are missing, and seeds users 1 to 100.
    pub async fn connect(url: &str) -> Result<Db, BoxError> {
        install_default_drivers();
        let kind = if url.starts_with("sqlite:") {
            Kind::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Kind::Postgres
        } else {
            return Err(format!("--database-url: sqlite:// or postgres://, got {url:?}").into());
        };
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if kind == Kind::Sqlite {
                        sqlite_wal(conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let db = Db { pool, kind };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), BoxError> {
        let schema = match self.kind {
            Kind::Sqlite => SQLITE_SCHEMA,
            Kind::Postgres => POSTGRES_SCHEMA,
        };
        // On SQLite, take the write lock up front (waiting for it as long
        // as the busy timeout): a transaction that reads the schema first
        // could not take it later if another instance wrote meanwhile.
        let begin = match self.kind {
            Kind::Sqlite => "BEGIN IMMEDIATE",
            Kind::Postgres => "BEGIN",
        };
        let mut tx = self.pool.begin_with(begin).await?;
        tx.execute(sqlx::raw_sql(schema)).await?;
        for id in 1..=SEEDED_USERS {
            sqlx::query("INSERT INTO users (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
                .bind(id)
                .bind(format!("user-{id}"))
                .execute(&mut *tx)
                .await?;
        }
        if self.kind == Kind::Postgres {
            // Seeded with explicit ids: move the sequence past them.
            tx.execute(sqlx::raw_sql(
                "SELECT setval('users_id_seq', GREATEST((SELECT MAX(id) FROM users), 1))",
            ))
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn user(&self, id: i64) -> Result<Option<User>, BoxError> {
        let row = sqlx::query("SELECT id, name FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| User {
            id: row.get(0),
            name: row.get(1),
        }))
    }

    /// Up to `limit` users with ids above `after`, in id order.
    pub async fn users(&self, after: i64, limit: i64) -> Result<Vec<User>, BoxError> {
        let rows = sqlx::query("SELECT id, name FROM users WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| User {
                id: row.get(0),
                name: row.get(1),
            })
            .collect())
    }

    pub async fn create_user(&self, name: &str) -> Result<User, BoxError> {
        let row = sqlx::query("INSERT INTO users (name) VALUES ($1) RETURNING id")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(User {
            id: row.get(0),
            name: name.to_owned(),
        })
    }

    pub async fn order(&self, id: i64) -> Result<Option<Order>, BoxError> {
        let row = sqlx::query("SELECT id, user_id, item, quantity FROM orders WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(order_of))
    }

    /// The user's latest 20 orders, oldest first.
    pub async fn orders_of(&self, user_id: i64) -> Result<Vec<Order>, BoxError> {
        let rows = sqlx::query(
            "SELECT id, user_id, item, quantity FROM orders WHERE user_id = $1 ORDER BY id DESC LIMIT 20",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let mut orders: Vec<Order> = rows.into_iter().map(order_of).collect();
        orders.reverse();
        Ok(orders)
    }

    /// Creates an order; with an idempotency key already used, returns the
    /// order made then instead (and `false`).
    pub async fn create_order(
        &self,
        user_id: i64,
        item: &str,
        quantity: i64,
        key: Option<&str>,
    ) -> Result<(Order, bool), BoxError> {
        let inserted = sqlx::query(
            "INSERT INTO orders (user_id, item, quantity, idempotency_key) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(user_id)
        .bind(item)
        .bind(quantity)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = inserted {
            let order = Order {
                id: row.get(0),
                user_id,
                item: item.to_owned(),
                quantity,
            };
            return Ok((order, true));
        }
        let row = sqlx::query(
            "SELECT id, user_id, item, quantity FROM orders WHERE idempotency_key = $1",
        )
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        Ok((order_of(row), false))
    }

    /// Every order, in id order (for checks).
    pub async fn all_orders(&self) -> Result<Vec<Order>, BoxError> {
        let rows = sqlx::query("SELECT id, user_id, item, quantity FROM orders ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(order_of).collect())
    }
}

/// Puts a SQLite connection in WAL mode (readers and one writer at once,
/// across processes), with `synchronous = NORMAL` and a busy timeout of 5
/// seconds. Switching a new database to WAL takes a lock that SQLite does
/// not wait for: instances starting together on a new file retry it.
async fn sqlite_wal(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute(sqlx::raw_sql(
        "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;",
    ))
    .await?;
    let mut tries = 0;
    loop {
        match sqlx::query_scalar::<_, String>("PRAGMA journal_mode = WAL")
            .fetch_one(&mut *conn)
            .await
        {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(sqlx::Error::Protocol(format!(
                    "SQLite kept journal mode {mode}, not WAL"
                )));
            }
            Err(sqlx::Error::Database(error))
                if error.message().contains("locked") && tries < 100 =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

fn order_of(row: sqlx::any::AnyRow) -> Order {
    Order {
        id: row.get(0),
        user_id: row.get(1),
        item: row.get(2),
        quantity: row.get(3),
    }
}

/// A SQLite database in a file of the system's temporary folder, named for
/// what uses it, the process and a count: what the demo, the load test and
/// the tests use. The file (and its WAL files) is removed when this is dropped.
#[derive(Debug)]
pub struct TemporaryDb {
    path: PathBuf,
}

impl TemporaryDb {
    pub fn new(name: &str) -> TemporaryDb {
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = format!("tower-bulwark-{name}-{}-{n}.db", std::process::id());
        TemporaryDb {
            path: std::env::temp_dir().join(file),
        }
    }

    /// The URL to give [`Db::connect`] (or `--database-url`).
    pub fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.path.display())
    }
}

impl Drop for TemporaryDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}
