//! Stacks whose request and response types nobody names: the compiler
//! reads them from the service each stack wraps. Built (not run) by CI
//! under a memory cap, so that a change that makes this inference costly
//! for the compiler fails there rather than on a user's machine.
//!
//! ```text
//! cargo build --example inference --features reqwest,grpc
//! ```

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::cache::CacheConfig;
use tower_bulwark::hedge::HedgeConfig;
use tower_bulwark::retry::RetryConfig;
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};

/// Every section on that a client can use.
fn config() -> ResilienceConfig {
    ResilienceConfig::default()
        .timeout(Duration::from_secs(1))
        .retry(RetryConfig::default())
        .hedge(HedgeConfig::default())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    // reqwest: the layer's types come from `layer`'s argument.
    let layer = ResilienceLayer::builder(config()).reqwest().build()?;
    let mut reqwest = layer.layer(reqwest::Client::new());
    let request = reqwest::Client::new().get("http://127.0.0.1:9/").build()?;
    drop(reqwest.ready().await?.call(request));

    // hyper-util, balanced over two instances.
    let layer = ResilienceLayer::builder(config()).http().build()?;
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut hyper = layer.balance([("a", hyper.clone()), ("b", hyper)])?;
    drop(
        hyper
            .ready()
            .await?
            .call(http::Request::new(Full::default())),
    );

    // tonic: the channel decides.
    let layer = ResilienceLayer::builder(ResilienceConfig::default())
        .grpc()
        .build()?;
    let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
    let _grpc = tonic::client::Grpc::new(layer.layer(channel));

    // A closure service, with a cache keyed by a capturing closure and a
    // copier: only the closures' arguments are written down.
    let prefix = String::from("user");
    let layer = ResilienceLayer::builder(config().cache(CacheConfig::default()))
        .cache_key(move |id: &u64| Some(format!("{prefix}/{id}")))
        .clone_requests_with(|id: &u64| Some(*id))
        .build()?;
    let users = service_fn(|id: u64| async move { Ok::<_, BoxError>(format!("user {id}")) });
    let mut users = layer.layer(users);
    let _ = users.ready().await?.call(7).await?;

    // The same layer with no code at all.
    let layer = ResilienceLayer::new(ResilienceConfig::default())?;
    let mut echo = layer.layer(service_fn(|s: String| async move { Ok::<_, BoxError>(s) }));
    let _ = echo.ready().await?.call(String::from("x")).await?;
    Ok(())
}
