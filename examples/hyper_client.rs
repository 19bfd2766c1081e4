//! hyper-util's `Client` behind the whole stack, unchanged.
//!
//! hyper-util's legacy `Client` is a `tower::Service<http::Request<B>>`, so
//! `ResilienceLayer` wraps it as it is. `http()` gives the stack what an
//! HTTP client wants: 429 and 5xx responses (but 501) are failures for
//! every layer, so a 503 is retried; only requests safe to repeat are
//! copied for a retry (the body must be `Clone`, as `Full<Bytes>` is), so a
//! `POST` without an `Idempotency-Key` is sent once; a `Retry-After` sets
//! the wait.
//!
//! Against a server on 127.0.0.1 that answers 503 to every other request:
//! every `GET` ends in 200, and the `POST` reaches the server once. The
//! README shows `greeter` as it is here.
//!
//! ```text
//! cargo run --example hyper_client
//! ```

mod flaky;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use tower::{BoxError, Layer};
use tower_bulwark::classify::HttpClassifier;
use tower_bulwark::retry::RetryConfig;
use tower_bulwark::stack::{Http, NoCache, ResilienceConfig, ResilienceLayer, ResilienceService};

type Hyper = Client<HttpConnector, Full<Bytes>>;

/// hyper-util's `Client` behind every layer of the stack.
type Greeter = ResilienceService<Hyper, http::Request<Full<Bytes>>, HttpClassifier, NoCache, Http>;

fn greeter(client: Hyper) -> Result<Greeter, BoxError> {
    let layer = ResilienceLayer::builder(
        ResilienceConfig::default()
            .service("greeter")
            .retry(RetryConfig::default()),
    )
    .http()
    .build()?;
    Ok(layer.layer(client))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    use hyper_util::rt::TokioExecutor;
    use tower::{Service, ServiceExt};

    let server = flaky::spawn().await?;
    let mut greeter = greeter(Client::builder(TokioExecutor::new()).build_http())?;

    for _ in 0..4 {
        let get = http::Request::get(format!("{}/greeting", server.url)).body(Full::default())?;
        let response = greeter.ready().await?.call(get).await?;
        println!("GET  /greeting -> {}", response.status());
        assert_eq!(response.status(), 200, "the 503 was retried");
    }

    let order = http::Request::post(format!("{}/orders", server.url))
        .body(Full::new(Bytes::from_static(br#"{"item":"book"}"#)))?;
    let response = greeter.ready().await?.call(order).await?;
    println!(
        "POST /orders   -> {} (not retried: not safe to repeat)",
        response.status()
    );
    assert_eq!(server.orders(), 1, "the POST reached the server once");
    println!("{} GETs reached the server for 4 calls", server.greetings());
    Ok(())
}
