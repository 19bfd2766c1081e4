//! The order service: `POST /orders`, `GET /orders/{id}`,
//! `GET /orders?user_id=7` (the user's latest 20).
//!
//! Creating an order checks that its user exists by calling the user
//! service through a tower-bulwark stack: balanced over the user
//! instances, with a breaker, a timeout, budgeted retries, and a cache
//! that answers from the last good answer while the user service fails.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tower::{BoxError, Service, ServiceExt};
use tower_bulwark::classify::HttpClassifier;
use tower_bulwark::error::ErrorKind;
use tower_bulwark::event::Events;
use tower_bulwark::stack::{BalancedService, Http, ResilienceLayer};

use super::client::{HttpClient, Request};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Order {
    pub(crate) id: u64,
    pub(crate) user_id: u64,
    pub(crate) item: String,
    pub(crate) quantity: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NewOrder {
    pub(crate) user_id: u64,
    pub(crate) item: String,
    #[serde(default = "one")]
    pub(crate) quantity: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
pub(crate) struct ByUser {
    pub(crate) user_id: u64,
}

/// The orders of one or more instances, and each user's order ids.
#[derive(Debug, Clone, Default)]
pub(crate) struct OrderStore {
    orders: Arc<RwLock<Orders>>,
}

#[derive(Debug, Default)]
struct Orders {
    by_id: BTreeMap<u64, Order>,
    by_user: BTreeMap<u64, Vec<u64>>,
}

impl OrderStore {
    fn get(&self, id: u64) -> Option<Order> {
        self.read().by_id.get(&id).cloned()
    }

    /// A user's latest orders, newest last.
    fn of_user(&self, user_id: u64) -> Vec<Order> {
        let orders = self.read();
        let ids = orders.by_user.get(&user_id).map_or(&[][..], Vec::as_slice);
        ids[ids.len().saturating_sub(20)..]
            .iter()
            .filter_map(|id| orders.by_id.get(id).cloned())
            .collect()
    }

    fn create(&self, new: NewOrder) -> Order {
        let mut orders = self.orders.write().unwrap_or_else(|p| p.into_inner());
        let id = orders.by_id.keys().next_back().map_or(1, |last| last + 1);
        let order = Order {
            id,
            user_id: new.user_id,
            item: new.item,
            quantity: new.quantity,
        };
        orders.by_id.insert(id, order.clone());
        orders.by_user.entry(order.user_id).or_default().push(id);
        order
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Orders> {
        self.orders.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// The user service as the order service sees it.
pub(crate) type UserClient =
    BalancedService<String, HttpClient, Request, HttpClassifier, String, Http>;

/// The cache key of a read: its path and query; writes are not cached.
pub(crate) fn read_key(request: &Request) -> Option<String> {
    (request.method() == http::Method::GET).then(|| request.uri().to_string())
}

/// A stack over the user instances at `urls`, named `service` in metrics
/// and events.
pub(crate) fn user_client(
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
    orders: OrderStore,
    users: UserClient,
}

/// The order service's routes over `orders`, checking users with `users`.
pub(crate) fn router(orders: OrderStore, users: UserClient) -> Router {
    Router::new()
        .route("/orders", axum::routing::get(of_user).post(create))
        .route("/orders/{id}", axum::routing::get(get))
        .with_state(OrderState { orders, users })
}

async fn get(State(state): State<OrderState>, Path(id): Path<u64>) -> Response {
    match state.orders.get(id) {
        Some(order) => Json(order).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no order {id}")).into_response(),
    }
}

async fn of_user(State(state): State<OrderState>, Query(by): Query<ByUser>) -> Json<Vec<Order>> {
    Json(state.orders.of_user(by.user_id))
}

async fn create(State(mut state): State<OrderState>, Json(new): Json<NewOrder>) -> Response {
    if new.quantity == 0 || new.item.trim().is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "an order needs an item and a quantity",
        )
            .into_response();
    }
    let check = http::Request::get(format!("/users/{}", new.user_id))
        .body(Bytes::new())
        .map_err(BoxError::from);
    let answer = match check {
        Ok(request) => match state.users.ready().await {
            Ok(users) => users.call(request).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match answer {
        Ok(response) if response.status().is_success() => {
            (StatusCode::CREATED, Json(state.orders.create(new))).into_response()
        }
        Ok(response) if response.status() == StatusCode::NOT_FOUND => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("no user {}", new.user_id),
        )
            .into_response(),
        Ok(response) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the user service answered {}", response.status()),
        )
            .into_response(),
        Err(error) => {
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot check the user: {error}"),
            )
                .into_response();
            if let Some(secs) = ErrorKind::of(&*error).and_then(|k| k.retry_after_secs()) {
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, secs.into());
            }
            response
        }
    }
}
