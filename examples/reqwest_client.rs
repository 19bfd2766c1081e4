//! A `reqwest::Client` behind tower-bulwark layers.
//!
//! `reqwest::Client` is a `tower::Service<reqwest::Request>`, so the layers
//! stack on it directly. This example starts a flaky HTTP server on
//! 127.0.0.1 (every third request answers 503) and calls it through
//!
//! ```text
//! Metrics → Retry (budget) → CircuitBreaker → Timeout (1 s) → reqwest::Client
//! ```
//!
//! with one classifier for all of them: an error or a 5xx is a failure. The
//! 503s are retried, so every call succeeds. Run with:
//!
//! ```text
//! cargo run --example reqwest_client
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
use tower_bulwark::classify::Outcome;
use tower_bulwark::metrics::MetricsLayer;
use tower_bulwark::retry::{RetryConfig, RetryLayer};
use tower_bulwark::timeout::TimeoutLayer;

/// An error or a 5xx response is a failure, for every layer.
fn classify<E>(result: &Result<reqwest::Response, E>) -> Outcome {
    match result {
        Ok(response) if response.status().is_server_error() => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    // A flaky server: every third request gets a 503.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/greeting", listener.local_addr()?);
    let count = Arc::new(AtomicU32::new(0));
    let app = axum::Router::new().route(
        "/greeting",
        axum::routing::get(move || {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n % 3 == 0 {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "busy".to_string(),
                    )
                } else {
                    (axum::http::StatusCode::OK, format!("hello #{n}"))
                }
            }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut client = ServiceBuilder::new()
        .layer(MetricsLayer::new("greeter").classify(classify::<BoxError>))
        .layer(
            RetryLayer::new(RetryConfig::default().service("greeter").max_attempts(3))?
                .classify(classify::<BoxError>)
                // A request with a streaming body cannot be copied: it is
                // then sent once, never retried.
                .clone_requests_with(|request: &reqwest::Request| request.try_clone()),
        )
        .layer(
            CircuitBreakerLayer::new(CircuitBreakerConfig::default().service("greeter"))?
                .classify(classify::<BoxError>),
        )
        .layer(TimeoutLayer::new(Duration::from_secs(1))?)
        .service(reqwest::Client::new());

    for _ in 0..6 {
        let request = reqwest::Request::new(reqwest::Method::GET, url.parse()?);
        let response = client.ready().await?.call(request).await?;
        println!("{} {}", response.status(), response.text().await?);
    }
    server.abort();
    Ok(())
}
