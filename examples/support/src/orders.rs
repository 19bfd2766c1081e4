//! The order service: `POST /orders`, `GET /orders/{id}`,
//! `GET /orders?user_id=7` (the user's latest 20), over the services'
//! database.
//!
//! Reading orders needs nothing else. Creating one checks that its user
//! exists by calling the user service through a tower-bulwark stack; when
//! the user service cannot answer, that call alone answers 503 with
//! `Retry-After` and the header [`DEPENDENCY_HEADER`], which tells the
//! gateway that the order service itself is fine. `POST /orders` honours
//! an `Idempotency-Key` header: the same key returns the order it first
//! made (200, where a new order is 201), and never makes a second; the
//! same key with a different order is refused (422).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use tower::{BoxError, Service, ServiceExt};
use tower_bulwark::classify::HttpClassifier;
use tower_bulwark::error::ErrorKind;
use tower_bulwark::event::Events;
use tower_bulwark::stack::{BalancedService, Http, ResilienceLayer};

use super::client::{HttpClient, Request};
use super::db::Db;
use super::http::{bad_request, id_of, unavailable};

/// The header of a 503 that a dependency of the order service caused, not
/// the order service itself: `x-dependency-unavailable: users`.
pub const DEPENDENCY_HEADER: &str = "x-dependency-unavailable";

#[derive(Debug, Clone, Deserialize)]
pub struct NewOrder {
    pub user_id: i64,
    pub item: String,
    #[serde(default = "one")]
    pub quantity: i64,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Deserialize)]
pub struct ByUser {
    pub user_id: String,
}

/// The user service as the order service sees it.
pub type UserClient = BalancedService<String, HttpClient, Request, HttpClassifier, String, Http>;

/// The cache key of a read: its path and query; writes are not cached.
pub fn read_key(request: &Request) -> Option<String> {
    (request.method() == http::Method::GET).then(|| request.uri().to_string())
}

/// A stack over the user instances at `urls`, named `service` in metrics
/// and events.
pub fn user_client(
    service: &str,
    urls: &[String],
    client: reqwest::Client,
    events: &Events,
) -> Result<UserClient, BoxError> {
    // The same stack configuration as the gateway's.
    let config = super::gateway::config(service);
    let layer = ResilienceLayer::builder(config)
        .http()
        .cache_key(read_key)
        .events(events)
        .build()?;
    let endpoints = urls
        .iter()
        .map(|url| (url.clone(), HttpClient::new(client.clone(), url.as_str())));
    Ok(layer.balance(endpoints)?)
}

#[derive(Clone)]
struct OrderState {
    db: Db,
    users: UserClient,
}

/// The order service's routes over `db`, checking users with `users`.
pub fn router(db: Db, users: UserClient) -> Router {
    Router::new()
        .route("/orders", axum::routing::get(of_user).post(create))
        .route("/orders/{id}", axum::routing::get(get))
        .with_state(OrderState { db, users })
}

async fn get(State(state): State<OrderState>, Path(id): Path<String>) -> Response {
    let id = match id_of(&id) {
        Ok(id) => id,
        Err(bad) => return bad.into_response(),
    };
    match state.db.order(id).await {
        Ok(Some(order)) => Json(order).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, format!("no order {id}")).into_response(),
        Err(error) => unavailable("orders", &error),
    }
}

async fn of_user(State(state): State<OrderState>, Query(by): Query<ByUser>) -> Response {
    let user_id = match id_of(&by.user_id) {
        Ok(id) => id,
        Err(bad) => return bad.into_response(),
    };
    match state.db.orders_of(user_id).await {
        Ok(orders) => Json(orders).into_response(),
        Err(error) => unavailable("orders", &error),
    }
}

/// Whether the user exists, as the user service says.
enum UserCheck {
    Exists,
    Missing,
    /// The user service could not say; `Retry-After` seconds.
    Unknown(u64),
}

async fn check_user(users: &mut UserClient, user_id: i64) -> UserCheck {
    let Ok(request) = http::Request::get(format!("/users/{user_id}")).body(Bytes::new()) else {
        return UserCheck::Unknown(1);
    };
    let answer = match users.ready().await {
        Ok(users) => users.call(request).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(response) if response.status().is_success() => UserCheck::Exists,
        Ok(response) if response.status() == StatusCode::NOT_FOUND => UserCheck::Missing,
        Ok(_) => UserCheck::Unknown(1),
        Err(error) => UserCheck::Unknown(
            ErrorKind::of(&*error)
                .and_then(|kind| kind.retry_after_secs())
                .unwrap_or(1),
        ),
    }
}

async fn create(
    State(mut state): State<OrderState>,
    headers: HeaderMap,
    Json(new): Json<NewOrder>,
) -> Response {
    let item = new.item.trim();
    if item.is_empty() || item.chars().count() > 200 || !(1..=1000).contains(&new.quantity) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "an order needs an item of 1 to 200 characters and a quantity from 1 to 1000",
        )
            .into_response();
    }
    let key = match headers.get(tower_bulwark::request::IDEMPOTENCY_KEY) {
        None => None,
        Some(key) => match key.to_str() {
            Ok(key) if (1..=200).contains(&key.len()) => Some(key.to_owned()),
            _ => return bad_request("idempotency-key: 1 to 200 visible ASCII characters"),
        },
    };
    match check_user(&mut state.users, new.user_id).await {
        UserCheck::Exists => {}
        UserCheck::Missing => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("no user {}", new.user_id),
            )
                .into_response();
        }
        UserCheck::Unknown(retry_after) => {
            let mut response =
                (StatusCode::SERVICE_UNAVAILABLE, "cannot check the user now").into_response();
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            headers.insert(DEPENDENCY_HEADER, HeaderValue::from_static("users"));
            return response;
        }
    }
    match state
        .db
        .create_order(new.user_id, item, new.quantity, key.as_deref())
        .await
    {
        Ok((order, true)) => (StatusCode::CREATED, Json(order)).into_response(),
        // The key was used before for this order: the order made then.
        Ok((order, false))
            if (order.user_id, order.item.as_str(), order.quantity)
                == (new.user_id, item, new.quantity) =>
        {
            (StatusCode::OK, Json(order)).into_response()
        }
        Ok((_, false)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key: already used for a different order",
        )
            .into_response(),
        Err(error) => unavailable("orders", &error),
    }
}
