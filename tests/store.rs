//! The example services' store (`examples/support/src/db.rs`): several
//! instances over one database, as the services run. Each test runs on
//! SQLite (a temporary file) and, when `BULWARK_POSTGRES_URL` names a
//! Postgres server (`postgres://user:password@host/db`, a role that may
//! create databases), on a database of its own there too. CI starts
//! Debian's Postgres and sets it; with `CI=true` and no Postgres, these
//! tests say so and run on SQLite only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use bulwark_examples::db;
use db::{Db, Order, TemporaryDb};
use sqlx::Connection;

/// A database for one test, removed afterwards.
enum Backend {
    Sqlite(TemporaryDb),
    Postgres { server: String, name: String },
}

impl Backend {
    fn url(&self) -> String {
        match self {
            Backend::Sqlite(file) => file.url(),
            Backend::Postgres { server, name } => with_database(server, name),
        }
    }

    async fn remove(self) {
        if let Backend::Postgres { server, name } = self {
            let mut conn = sqlx::AnyConnection::connect(&server).await.unwrap();
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        }
    }
}

/// `url` with its database (the path) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    format!("{server}/{name}{query}")
}

/// Every backend to run a test on, each with a fresh database.
async fn backends(test: &str) -> Vec<Backend> {
    sqlx::any::install_default_drivers();
    let mut backends = vec![Backend::Sqlite(TemporaryDb::new(test))];
    match std::env::var("BULWARK_POSTGRES_URL") {
        Ok(server) if !server.is_empty() => {
            static MADE: AtomicU64 = AtomicU64::new(0);
            let name = format!(
                "bulwark_{test}_{}_{}",
                std::process::id(),
                MADE.fetch_add(1, Ordering::Relaxed)
            );
            let mut conn = sqlx::AnyConnection::connect(&server)
                .await
                .expect("BULWARK_POSTGRES_URL names a server that answers");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            backends.push(Backend::Postgres { server, name });
        }
        _ => eprintln!("{test}: on SQLite only (BULWARK_POSTGRES_URL is not set)"),
    }
    backends
}

/// Three "instances": pools of their own over one database, as three
/// processes of a service have.
async fn instances(url: &str) -> Vec<Db> {
    let connecting = (0..3).map(|_| Db::connect(url));
    futures::future::try_join_all(connecting).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_make_the_schema_once() {
    for backend in backends("schema").await {
        // Three instances create the tables and seed the users at once.
        let dbs = instances(&backend.url()).await;
        let users = dbs[1].users(0, 100).await.unwrap();
        assert_eq!(users.len(), 100, "{}", backend.url());
        assert_eq!(users.first().map(|u| u.id), Some(1));
        assert_eq!(users.last().map(|u| u.id), Some(100));
        assert!(dbs[2].users(100, 10).await.unwrap().is_empty());
        // A new user gets an id past the seeded ones, on every backend.
        let user = dbs[0].create_user("ada").await.unwrap();
        assert_eq!(user.id, 101);
        assert_eq!(dbs[2].user(101).await.unwrap(), Some(user));
        assert_eq!(dbs[1].user(i64::MAX).await.unwrap(), None);
        drop(dbs);
        backend.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_unique_across_instances() {
    for backend in backends("ids").await {
        let dbs = instances(&backend.url()).await;
        let mut writes = Vec::new();
        for (i, db) in dbs.iter().enumerate() {
            for n in 0..100 {
                let db = db.clone();
                let key = (n % 2 == 0).then(|| format!("ids-{i}-{n}"));
                writes.push(tokio::spawn(async move {
                    let item = format!("item {i}-{n}");
                    db.create_order(1 + n, &item, 1 + i as i64, key.as_deref())
                        .await
                        .unwrap()
                }));
            }
        }
        let mut made = Vec::new();
        for write in writes {
            let (order, created) = write.await.unwrap();
            assert!(created);
            made.push(order);
        }
        let ids: BTreeSet<i64> = made.iter().map(|o| o.id).collect();
        assert_eq!(ids.len(), 300, "every order has an id of its own");
        // Every instance reads every order as it was made.
        let stored: BTreeMap<i64, Order> = dbs[2]
            .all_orders()
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.id, o))
            .collect();
        assert_eq!(stored.len(), 300);
        for order in &made {
            assert_eq!(stored.get(&order.id), Some(order));
            assert_eq!(dbs[0].order(order.id).await.unwrap().as_ref(), Some(order));
        }
        drop(dbs);
        backend.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_makes_one_order() {
    for backend in backends("idempotency").await {
        let dbs = instances(&backend.url()).await;
        // Twenty copies of one request, on three instances at once: a
        // client retrying, and a gateway retrying for it.
        let mut copies = Vec::new();
        for n in 0..20 {
            let db = dbs[n % 3].clone();
            copies.push(tokio::spawn(async move {
                db.create_order(7, "book", 2, Some("order-7-book"))
                    .await
                    .unwrap()
            }));
        }
        let mut answers = Vec::new();
        for copy in copies {
            answers.push(copy.await.unwrap());
        }
        let created = answers.iter().filter(|(_, created)| *created).count();
        assert_eq!(created, 1, "one copy makes the order");
        let first = &answers[0].0;
        assert!(answers.iter().all(|(order, _)| order == first));
        assert_eq!(
            (first.user_id, first.item.as_str(), first.quantity),
            (7, "book", 2)
        );
        assert_eq!(dbs[1].orders_of(7).await.unwrap(), vec![first.clone()]);
        // Another key, another order; no key, a new order each time.
        let (other, created) = dbs[0]
            .create_order(7, "book", 2, Some("another"))
            .await
            .unwrap();
        assert!(created && other.id != first.id);
        let (a, _) = dbs[0].create_order(7, "pen", 1, None).await.unwrap();
        let (b, _) = dbs[1].create_order(7, "pen", 1, None).await.unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(dbs[2].all_orders().await.unwrap().len(), 4);
        drop(dbs);
        backend.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_order_outlives_the_instance_that_took_it() {
    for backend in backends("durable").await {
        let url = backend.url();
        // An instance acknowledges orders, and goes away without closing
        // anything. (CI kills a real order service process with SIGKILL
        // under load: `.ci/services_evidence.py`.)
        let taken = {
            let db = Db::connect(&url).await.unwrap();
            let mut taken = Vec::new();
            for n in 0..20 {
                taken.push(db.create_order(n + 1, "lamp", 1, None).await.unwrap().0);
            }
            taken
        };
        let db = Db::connect(&url).await.unwrap();
        for order in &taken {
            assert_eq!(db.order(order.id).await.unwrap().as_ref(), Some(order));
        }
        drop(db);
        backend.remove().await;
    }
}

#[test]
fn a_database_name_replaces_the_path() {
    assert_eq!(
        with_database("postgres://u:p@127.0.0.1:5432/postgres", "x"),
        "postgres://u:p@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@host/db?sslmode=disable", "x"),
        "postgres://u@host/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://host", "x"), "postgres://host/x");
}
