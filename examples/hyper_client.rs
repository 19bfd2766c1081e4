//! hyper-util's `Client` behind the whole stack, unchanged.
//!
//! hyper-util's legacy `Client` is a `tower::Service<http::Request<B>>`, so
//! `ResilienceLayer` wraps it as it is. `http()` gives the stack what an
//! HTTP client wants: 429 and 5xx responses are failures for every layer
//! (so a 503 is retried), only requests safe to repeat are copied for a
//! retry (a `POST` without an `Idempotency-Key` is sent once; the body must
//! be `Clone`, as `Full<Bytes>` is), and a `Retry-After` sets the wait.
//!
//! Against a server on 127.0.0.1 that answers 503 to every other request:
//! every `GET` ends in 200, and the `POST` reaches the server once.
//!
//! ```text
//! cargo run --example hyper_client
//! ```

mod flaky;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
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
    .http()
    .build()?;
    let hyper = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut client = layer.layer(hyper);

    for _ in 0..4 {
        let get = http::Request::get(format!("{}/greeting", server.url)).body(Full::default())?;
        let response = client.ready().await?.call(get).await?;
        println!("GET  /greeting -> {}", response.status());
        assert_eq!(response.status(), 200, "the 503 was retried");
    }

    let order = http::Request::post(format!("{}/orders", server.url))
        .body(Full::new(Bytes::from_static(br#"{"item":"book"}"#)))?;
    let response = client.ready().await?.call(order).await?;
    println!(
        "POST /orders   -> {} (not retried: not safe to repeat)",
        response.status()
    );
    assert_eq!(server.orders(), 1, "the POST reached the server once");
    println!("{} GETs reached the server for 4 calls", server.greetings());
    Ok(())
}
