//! A `reqwest::Client` behind the whole stack, unchanged.
//!
//! `reqwest::Client` is a `tower::Service<reqwest::Request>`, so
//! `ResilienceLayer` wraps it as it is. `reqwest()` gives the stack what an
//! HTTP client wants: 429 and 5xx responses (but 501) are failures for
//! every layer, so a 503 is retried; only requests safe to repeat are
//! copied for a retry, so a `POST` without an `Idempotency-Key` is sent
//! once; a `Retry-After` sets the wait.
//!
//! Against a server on 127.0.0.1 that answers 503 to every other request:
//! every `GET` ends in 200, and the `POST` reaches the server once. The
//! README shows `greeter` as it is here.
//!
//! ```text
//! cargo run --example reqwest_client --features reqwest
//! ```

mod flaky;

use tower::{BoxError, Layer};
use tower_bulwark::classify::HttpClassifier;
use tower_bulwark::retry::RetryConfig;
use tower_bulwark::stack::{Http, NoCache, ResilienceConfig, ResilienceLayer, ResilienceService};

/// A `reqwest::Client` behind every layer of the stack.
type Greeter = ResilienceService<reqwest::Client, reqwest::Request, HttpClassifier, NoCache, Http>;

fn greeter(client: reqwest::Client) -> Result<Greeter, BoxError> {
    let layer = ResilienceLayer::builder(
        ResilienceConfig::default()
            .service("greeter")
            .retry(RetryConfig::default()),
    )
    .reqwest()
    .build()?;
    Ok(layer.layer(client))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    use tower::{Service, ServiceExt};

    let server = flaky::spawn().await?;
    let client = reqwest::Client::new();
    let mut greeter = greeter(client.clone())?;

    for _ in 0..4 {
        let get = client.get(format!("{}/greeting", server.url)).build()?;
        let response = greeter.ready().await?.call(get).await?;
        println!("GET  /greeting -> {}", response.status());
        assert_eq!(response.status(), 200, "the 503 was retried");
    }

    let order = client
        .post(format!("{}/orders", server.url))
        .body(r#"{"item":"book"}"#)
        .build()?;
    let response = greeter.ready().await?.call(order).await?;
    println!(
        "POST /orders   -> {} (not retried: not safe to repeat)",
        response.status()
    );
    assert_eq!(server.orders(), 1, "the POST reached the server once");
    println!("{} GETs reached the server for 4 calls", server.greetings());
    Ok(())
}
