//! The user service: `GET /users`, `GET /users/{id}`, `POST /users`.
//!
//! Users live in memory, seeded with users 1 to 100. Instances started in
//! one process share a store, as replicas behind one database would.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct User {
    pub(crate) id: u64,
    pub(crate) name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NewUser {
    pub(crate) name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    #[serde(default)]
    pub(crate) after: u64,
    #[serde(default = "twenty")]
    pub(crate) limit: usize,
}

fn twenty() -> usize {
    20
}

/// The users of one or more instances.
#[derive(Debug, Clone)]
pub(crate) struct UserStore {
    users: Arc<RwLock<BTreeMap<u64, User>>>,
}

impl UserStore {
    /// Users 1 to 100.
    pub(crate) fn seeded() -> Self {
        let users = (1..=100)
            .map(|id| {
                (
                    id,
                    User {
                        id,
                        name: format!("user-{id}"),
                    },
                )
            })
            .collect();
        UserStore {
            users: Arc::new(RwLock::new(users)),
        }
    }

    fn get(&self, id: u64) -> Option<User> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn list(&self, page: &Page) -> Vec<User> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .range(page.after + 1..)
            .take(page.limit.min(100))
            .map(|(_, u)| u.clone())
            .collect()
    }

    fn create(&self, name: String) -> User {
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        let id = users.keys().next_back().map_or(1, |last| last + 1);
        let user = User { id, name };
        users.insert(id, user.clone());
        user
    }
}

/// The user service's routes over `store`.
pub(crate) fn router(store: UserStore) -> Router {
    Router::new()
        .route("/users", axum::routing::get(list).post(create))
        .route("/users/{id}", axum::routing::get(get))
        .with_state(store)
}

async fn list(State(store): State<UserStore>, Query(page): Query<Page>) -> Json<Vec<User>> {
    Json(store.list(&page))
}

async fn get(State(store): State<UserStore>, Path(id): Path<u64>) -> Response {
    match store.get(id) {
        Some(user) => Json(user).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no user {id}")).into_response(),
    }
}

async fn create(State(store): State<UserStore>, Json(new): Json<NewUser>) -> Response {
    if new.name.trim().is_empty() {
        return (StatusCode::UNPROCESSABLE_ENTITY, "a user needs a name").into_response();
    }
    (StatusCode::CREATED, Json(store.create(new.name))).into_response()
}
