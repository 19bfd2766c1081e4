//! An axum server with the crate's layers in its own stack.
//!
//! `ResilienceLayer::server` gives the layers that belong on a server, in
//! their order (metrics, a circuit breaker, a timeout), answering by
//! themselves: `Router::layer` takes the stack as it is. Each route has a
//! breaker of its own (axum's matched route is the key), so a failing route
//! answers 503 with `Retry-After` while the others keep answering; a slow
//! one is answered 504 at its deadline; the metrics carry the route,
//! method and status class.
//!
//! The example calls its own routes over 127.0.0.1 to show this, and
//! stops. The README shows `app` as it is here.
//!
//! ```text
//! cargo run --example axum_server --features axum
//! ```

use std::time::Duration;

use axum::http::StatusCode;
use axum::{Router, routing::get};
use tower::BoxError;
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, OpenDuration};
use tower_bulwark::key::ByRoute;
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};

fn app() -> Result<Router, BoxError> {
    let resilience = ResilienceLayer::server(
        ResilienceConfig::default()
            .service("api")
            .timeout(Duration::from_millis(500))
            .circuit_breaker(
                CircuitBreakerConfig::default()
                    .consecutive_failures(3)
                    .open_duration(OpenDuration::fixed(Duration::from_secs(10))),
            ),
    )
    // A breaker, and metric labels, per route: at most 100 routes.
    .per_route(ByRoute, 100)
    .build()?;
    Ok(Router::new()
        .route("/users/{id}", get(|| async { "a user" }))
        .route(
            "/reports",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken") }),
        )
        .route("/export", get(slow_export))
        .layer(resilience))
}

async fn slow_export() -> &'static str {
    tokio::time::sleep(Duration::from_secs(60)).await;
    "too late"
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let server =
        tokio::spawn(async move { axum::serve(listener, app()?).await.map_err(BoxError::from) });

    let client = reqwest::Client::new();
    let get = |path: &'static str| client.get(format!("{url}{path}")).send();
    for _ in 0..3 {
        println!("GET /reports  -> {}", get("/reports").await?.status());
    }
    let open = get("/reports").await?;
    let retry_after = open.headers().get("retry-after").cloned();
    println!(
        "GET /reports  -> {} Retry-After: {retry_after:?} (its breaker is open)",
        open.status()
    );
    assert_eq!(open.status(), 503);
    let user = get("/users/7").await?.status();
    println!("GET /users/7  -> {user} (a breaker of its own)");
    assert_eq!(user, 200);
    let export = get("/export").await?.status();
    println!("GET /export   -> {export} (at its deadline)");
    assert_eq!(export, 504);
    server.abort();
    Ok(())
}
