//! A `reqwest::Client` behind the whole stack, unchanged.
//!
//! `reqwest::Client` is a `tower::Service<reqwest::Request>`, so
//! `ResilienceLayer` wraps it as it is. `reqwest()` gives the stack what an
//! HTTP client wants: 429 and 5xx responses are failures for every layer
//! (so a 503 is retried), only requests safe to repeat are copied for a
//! retry (a `POST` without an `Idempotency-Key` is sent once), and a
//! `Retry-After` sets the wait.
//!
//! Against a server on 127.0.0.1 that answers 503 to every other request:
//! every `GET` ends in 200, and the `POST` reaches the server once.
//!
//! ```text
//! cargo run --example reqwest_client --features reqwest
//! ```

mod flaky;

use tower::{BoxError, Layer, Service, ServiceExt};
use tower_bulwark::retry::RetryConfig;
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let server = flaky::spawn().await?;

    let layer = ResilienceLayer::builder(
        ResilienceConfig::default()
            .service("greeter")
            .retry(RetryConfig::default()),
    )
    .reqwest()
    .build()?;
    let mut client = layer.layer(reqwest::Client::new());

    for _ in 0..4 {
        let get = reqwest::Client::new()
            .get(format!("{}/greeting", server.url))
            .build()?;
        let response = client.ready().await?.call(get).await?;
        println!("GET  /greeting -> {}", response.status());
        assert_eq!(response.status(), 200, "the 503 was retried");
    }

    let order = reqwest::Client::new()
        .post(format!("{}/orders", server.url))
        .body(r#"{"item":"book"}"#)
        .build()?;
    let response = client.ready().await?.call(order).await?;
    println!(
        "POST /orders   -> {} (not retried: not safe to repeat)",
        response.status()
    );
    assert_eq!(server.orders(), 1, "the POST reached the server once");
    println!("{} GETs reached the server for 4 calls", server.greetings());
    Ok(())
}
