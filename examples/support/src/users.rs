//! The user service: `GET /users?after=0&limit=20`, `GET /users/{id}`,
//! `POST /users`, over the services' database (users 1 to 100 are seeded).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Deserialize;

use super::db::Db;
use super::http::{bad_request, id_of, unavailable};

#[derive(Debug, Deserialize)]
pub struct NewUser {
    pub name: String,
}

/// A page of users: `after` an id, at most `limit` (1 to 100).
#[derive(Debug, Deserialize)]
pub struct Page {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

/// The user service's routes over `db`.
pub fn router(db: Db) -> Router {
    Router::new()
        .route("/users", axum::routing::get(list).post(create))
        .route("/users/{id}", axum::routing::get(get))
        .with_state(db)
}

async fn list(State(db): State<Db>, Query(page): Query<Page>) -> Response {
    let after = match page.after.as_deref().map(id_of).transpose() {
        Ok(after) => after.unwrap_or(0),
        Err(bad) => return bad.into_response(),
    };
    let limit = match page.limit.as_deref().map(str::parse::<i64>) {
        None => 20,
        Some(Ok(limit)) if (1..=100).contains(&limit) => limit,
        Some(_) => return bad_request("limit: a number from 1 to 100"),
    };
    match db.users(after, limit).await {
        Ok(users) => Json(users).into_response(),
        Err(error) => unavailable("users", &error),
    }
}

async fn get(State(db): State<Db>, Path(id): Path<String>) -> Response {
    let id = match id_of(&id) {
        Ok(id) => id,
        Err(bad) => return bad.into_response(),
    };
    match db.user(id).await {
        Ok(Some(user)) => Json(user).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, format!("no user {id}")).into_response(),
        Err(error) => unavailable("users", &error),
    }
}

async fn create(State(db): State<Db>, Json(new): Json<NewUser>) -> Response {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "a user needs a name of 1 to 100 characters",
        )
            .into_response();
    }
    match db.create_user(name).await {
        Ok(user) => (StatusCode::CREATED, Json(user)).into_response(),
        Err(error) => unavailable("users", &error),
    }
}
