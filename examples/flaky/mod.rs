//! A flaky HTTP server on 127.0.0.1 for the client examples: every other
//! request to a route answers `503 Service Unavailable`.
//!
//! - `GET /greeting`: 503, 200, 503, 200, ...
//! - `POST /orders`: the same, and it counts the orders it received, so a
//!   client can see that an order was not sent twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower::BoxError;

/// The running server: its address and what reached it.
pub(crate) struct Flaky {
    /// `http://127.0.0.1:port`.
    pub(crate) url: String,
    greetings: Arc<AtomicU32>,
    orders: Arc<AtomicU32>,
    server: tokio::task::JoinHandle<()>,
}

impl Flaky {
    /// `GET /greeting` requests that reached the server.
    pub(crate) fn greetings(&self) -> u32 {
        self.greetings.load(Ordering::SeqCst)
    }

    /// `POST /orders` requests that reached the server.
    pub(crate) fn orders(&self) -> u32 {
        self.orders.load(Ordering::SeqCst)
    }
}

impl Drop for Flaky {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// 503 on odd counts, `ok` on even ones.
fn flaky(count: &AtomicU32, ok: StatusCode) -> (StatusCode, String) {
    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
    if n % 2 == 1 {
        (StatusCode::SERVICE_UNAVAILABLE, "busy, try again".into())
    } else {
        (ok, format!("answer #{n}"))
    }
}

/// Starts the server on a free port of 127.0.0.1.
pub(crate) async fn spawn() -> Result<Flaky, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (greetings, orders) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (g, o) = (greetings.clone(), orders.clone());
    let app = Router::new()
        .route(
            "/greeting",
            get(move || async move { flaky(&g, StatusCode::OK) }),
        )
        .route(
            "/orders",
            post(move || async move { flaky(&o, StatusCode::CREATED) }),
        );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Flaky {
        url,
        greetings,
        orders,
        server,
    })
}
