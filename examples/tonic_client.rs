//! A tonic `Channel` behind the whole stack, unchanged.
//!
//! A `tonic::transport::Channel` is a `tower::Service` of HTTP requests:
//! `ResilienceLayer` wraps it as it is, and `tonic::client::Grpc` (or a
//! generated client's `new`) takes the stack. `grpc()` gives the stack what
//! a gRPC client wants: the `grpc-status` decides what failed, whether it
//! comes in the response's headers or in the trailers at the end of its
//! body (the stack records the outcome when the body ends), and the
//! stack's own errors reach the caller as the `tonic::Status` they mean.
//!
//! The greeter on 127.0.0.1 fails for a while, with `UNAVAILABLE` in its
//! trailers: the breaker opens after three failures, and the calls that
//! follow get `UNAVAILABLE` from the breaker without reaching the server.
//! No `protoc` is needed. The README shows `greeter` as it is here.
//!
//! ```text
//! cargo run --example tonic_client --features grpc
//! ```

use bulwark_examples::greeter;

use std::time::Duration;

use tonic::transport::Channel;
use tower::{BoxError, Layer};
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, OpenDuration};
use tower_bulwark::classify::GrpcClassifier;
use tower_bulwark::stack::{Grpc, NoCache, ResilienceConfig, ResilienceLayer, ResilienceService};

/// A tonic `Channel` behind every layer of the stack, as a gRPC client.
type Greeter = tonic::client::Grpc<
    ResilienceService<Channel, http::Request<tonic::body::Body>, GrpcClassifier, NoCache, Grpc>,
>;

fn greeter(channel: Channel) -> Result<Greeter, BoxError> {
    let layer = ResilienceLayer::builder(
        ResilienceConfig::default()
            .service("greeter")
            .timeout(Duration::from_millis(500))
            .circuit_breaker(
                CircuitBreakerConfig::default()
                    .consecutive_failures(3)
                    .open_duration(OpenDuration::fixed(Duration::from_secs(30))),
            ),
    )
    .grpc()
    .build()?;
    Ok(tonic::client::Grpc::new(layer.layer(channel)))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    use greeter::{HelloReply, HelloRequest, SAY_HELLO};
    use tonic::Code;
    use tower_bulwark::circuit_breaker::error::CircuitOpen;

    // The server, told to fail with UNAVAILABLE in its trailers.
    let service = greeter::Greeter::default();
    let server = greeter::serve(service.clone()).await?;
    let channel = tonic::transport::Endpoint::from_shared(server.url.clone())?.connect_lazy();
    let mut client = greeter(channel)?;

    service.fail(true);
    for n in 1..=6 {
        client.ready().await?;
        let codec = tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default();
        let request = tonic::Request::new(HelloRequest {
            name: format!("call {n}"),
        });
        let status = match client.unary(request, SAY_HELLO.parse()?, codec).await {
            Ok(reply) => return Err(format!("unexpected reply {:?}", reply.into_inner()).into()),
            Err(status) => status,
        };
        let from_breaker = caused_by::<CircuitOpen>(&status);
        println!(
            "call {n}: {:?} {:<24} {}",
            status.code(),
            status.message(),
            if from_breaker {
                "(the breaker: the server was not called)"
            } else {
                "(the server)"
            },
        );
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(from_breaker, n > 3, "open after three failures");
    }
    assert_eq!(service.calls(), 3, "no call reached the server once open");
    Ok(())
}

/// Whether `status` was caused by an `E` from the layers.
fn caused_by<E: std::error::Error + 'static>(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<E>() {
            return true;
        }
        source = error.source();
    }
    false
}
