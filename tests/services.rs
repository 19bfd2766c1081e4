//! The example services as a client meets them, over loopback TCP: the
//! order service's idempotent writes and its answer when the user service
//! is down, and the gateway's classifier, cache, retries of writes and
//! refusals. (`.ci/services.py` runs the same services as separate
//! processes: SIGKILL, the admin door, listeners' timeouts.)
#![cfg(all(feature = "stack", feature = "http"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use bulwark_examples as common;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_bulwark::circuit_breaker::CircuitState;
use tower_bulwark::event::Events;

use common::db::{Db, TemporaryDb};
use common::faults::FaultSettings;
use common::gateway::{CACHE_HEADER, Gateway, SHED_HEADER};
use common::instance::Instance;
use common::orders::DEPENDENCY_HEADER;

/// Two user and two order instances over one database, and the gateway.
struct System {
    users: Vec<Arc<Instance>>,
    orders: Vec<Arc<Instance>>,
    gateway: Gateway,
    url: String,
    client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    _database: TemporaryDb,
}

impl System {
    async fn start() -> System {
        let database = TemporaryDb::new("services");
        let db = Db::connect(&database.url()).await.unwrap();
        let client = common::client::reqwest_client().unwrap();
        let events = Events::new();
        let users = common::fleet::users(2, &db).await.unwrap();
        let user_urls = common::fleet::urls(&users);
        let orders = common::fleet::orders(2, &db, &user_urls, &client, &events)
            .await
            .unwrap();
        let order_urls = common::fleet::urls(&orders);
        let gateway = Gateway::new(&user_urls, &order_urls, client.clone(), &events).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = gateway.clone().router();
        let server = tokio::spawn(common::server::serve(
            listener,
            app,
            common::server::Limits::default(),
            Arc::default(),
        ));
        System {
            users,
            orders,
            gateway,
            url,
            client,
            server,
            _database: database,
        }
    }

    async fn post_order(
        &self,
        base: &str,
        body: Value,
        key: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut request = self
            .client
            .post(format!("{base}/orders"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    /// The status of a `GET` of `path`, and whether the gateway shed it.
    async fn get_answer(&self, path: String) -> (u16, bool) {
        let (status, headers, _) = self.get(&path).await;
        (status, headers.contains_key(SHED_HEADER))
    }

    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_gives_back_the_first_order() {
    let system = System::start().await;
    let order = json!({"user_id": 7, "item": "book", "quantity": 2});
    // The same request twice, to each order instance: one order.
    let (status, _, first) = system
        .post_order(&system.orders[0].url(), order.clone(), Some("k-1"))
        .await;
    assert_eq!(status, 201, "{first}");
    let (status, _, again) = system
        .post_order(&system.orders[1].url(), order.clone(), Some("k-1"))
        .await;
    assert_eq!(status, 200, "{again}");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first, serde_json::from_str::<Value>(&again).unwrap());
    // The key with another order is refused, not answered with the first.
    let other = json!({"user_id": 7, "item": "pen", "quantity": 2});
    let (status, _, body) = system.post_order(&system.url, other, Some("k-1")).await;
    assert_eq!(status, 422, "{body}");
    // Without a key, each request is an order of its own.
    let (_, _, a) = system.post_order(&system.url, order.clone(), None).await;
    let (_, _, b) = system.post_order(&system.url, order, None).await;
    let id = |text: &str| serde_json::from_str::<Value>(text).unwrap()["id"].clone();
    assert_ne!(id(&a), id(&b));
    assert_ne!(id(&a), first["id"]);
    let (status, _, body) = system.get("/orders?user_id=7").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Vec<Value>>(&body).unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_service_down_fails_new_orders_only_and_not_the_order_service() {
    let system = System::start().await;
    let (status, _, created) = system
        .post_order(&system.url, json!({"user_id": 3, "item": "lamp"}), None)
        .await;
    assert_eq!(status, 201);
    let created: Value = serde_json::from_str(&created).unwrap();
    for user in &system.users {
        user.kill();
    }
    // Reads need no user service.
    for _ in 0..20 {
        let (status, _, body) = system
            .get(&format!("/orders/{}?fresh", created["id"]))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // New orders for users the order instances have not checked before
    // (user 3 they still know, from their cache): 503 with Retry-After,
    // said to be the user service's doing.
    for n in 0..40 {
        let key = format!("down-{n}");
        let (status, headers, body) = system
            .post_order(
                &system.url,
                json!({"user_id": 10 + n, "item": "lamp"}),
                Some(&key),
            )
            .await;
        assert_eq!(status, 503, "{body}");
        assert!(headers.contains_key("retry-after"));
        assert_eq!(headers.get(DEPENDENCY_HEADER).unwrap(), "users");
    }
    // The gateway counted none of them against the order service.
    assert_eq!(system.gateway.orders_breaker.state(), CircuitState::Closed);
    let (status, _, body) = system.get("/orders?user_id=3").await;
    assert_eq!(status, 200, "{body}");
    assert!(system.users.iter().all(|u| !u.is_up()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_service_offered_more_than_it_serves_is_shed_at_the_gateway_not_timed_out() {
    let system = System::start().await;
    // Each user instance serves two requests at once, 20 ms each: the
    // gateway's first limit (20 calls) waits 100 ms at most, well within
    // its 250 ms timeout; 200 at once would wait 1 s.
    for instance in &system.users {
        instance.faults().set(FaultSettings {
            latency_ms: 20,
            capacity: 2,
            ..FaultSettings::default()
        });
    }
    let served = || {
        system
            .users
            .iter()
            .map(|u| u.faults().requests())
            .sum::<u64>()
    };
    let before = served();
    // Users nobody has: none in the cache, each one for the user service.
    let answers = futures::future::join_all(
        (0..200).map(|i| system.get_answer(format!("/users/{}", 1_000_000 + i))),
    )
    .await;
    let count = |f: &dyn Fn(&(u16, bool)) -> bool| answers.iter().filter(|a| f(a)).count();
    let (served_404, shed, timed_out) = (
        count(&|(status, _)| *status == 404),
        count(&|(status, shed)| *status == 503 && *shed),
        count(&|(status, _)| *status == 504),
    );
    assert_eq!(timed_out, 0, "{answers:?}");
    assert!(shed > 0, "{answers:?}");
    assert_eq!(
        served_404 + shed,
        200,
        "every request a 404 or shed: {answers:?}"
    );
    // The ones let through reached the service, and only once each.
    assert_eq!(served() - before, served_404 as u64);
    // A shed call says nothing of the service: its breaker stays closed.
    assert_eq!(system.gateway.users_breaker.state(), CircuitState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_retries_a_write_only_with_an_idempotency_key() {
    let system = System::start().await;
    for instance in &system.orders {
        instance.faults().set(FaultSettings {
            latency_ms: 0,
            error_rate: 1.0,
            ..FaultSettings::default()
        });
    }
    let requests = || {
        system
            .orders
            .iter()
            .map(|i| i.faults().requests())
            .sum::<u64>()
    };
    let order = json!({"user_id": 9, "item": "cup"});

    let before = requests();
    let (status, _, _) = system.post_order(&system.url, order.clone(), None).await;
    assert_eq!(status, 500);
    assert_eq!(requests() - before, 1, "not repeated");

    let before = requests();
    let (status, _, _) = system.post_order(&system.url, order, Some("cup-1")).await;
    assert_eq!(status, 500);
    assert!(requests() - before > 1, "repeated: it has a key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_cache_keys_by_route_and_keeps_no_404() {
    let system = System::start().await;
    let cache = |headers: &reqwest::header::HeaderMap| {
        headers
            .get(CACHE_HEADER)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (_, headers, _) = system.get("/users?limit=5&after=2&x=1").await;
    assert_eq!(cache(&headers).as_deref(), Some("miss"));
    let (status, headers, body) = system.get("/users?after=2&limit=5").await;
    assert_eq!(status, 200);
    assert_eq!(
        cache(&headers).as_deref(),
        Some("hit"),
        "same route, same parameters"
    );
    assert_eq!(serde_json::from_str::<Vec<Value>>(&body).unwrap().len(), 5);
    // A query the route does not read makes no entry of its own.
    let requests = system
        .users
        .iter()
        .map(|u| u.faults().requests())
        .sum::<u64>();
    for n in 0..50 {
        let (status, _, _) = system.get(&format!("/users/7?junk={n}")).await;
        assert_eq!(status, 200);
    }
    let after = system
        .users
        .iter()
        .map(|u| u.faults().requests())
        .sum::<u64>();
    assert_eq!(after - requests, 1);
    // A 404 is asked again each time.
    for _ in 0..3 {
        let (status, headers, _) = system.get("/users/5000").await;
        assert_eq!(status, 404);
        assert_eq!(cache(&headers).as_deref(), Some("miss"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_what_it_must_not_proxy_and_names_no_address() {
    let system = System::start().await;
    // Sent as they are: a URL parser would resolve the dot segments first.
    for path in [
        "/users/%2e%2e/admin/down",
        "/users/%2E%2e/admin/faults",
        "/orders/./x",
        "/users/../x",
    ] {
        let mut stream = tokio::net::TcpStream::connect(system.url.trim_start_matches("http://"))
            .await
            .unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
    }
    let (status, _, body) = system.get("/users/18446744073709551615").await;
    assert_eq!(status, 400, "{body}");
    // Every instance down: the answers name none of them.
    for instance in system.users.iter().chain(&system.orders) {
        instance.kill();
    }
    for path in ["/orders/1", "/orders?user_id=2"] {
        let (status, _, body) = system.get(path).await;
        assert!(status >= 500, "{path}: {status}");
        assert!(!body.contains("127.0.0.1"), "{path}: {body}");
    }
}
