//! gRPC: a tonic client channel behind tower-bulwark layers, against a
//! small gRPC server in the same process.
//!
//! A `tonic::transport::Channel` is a `tower::Service` of HTTP requests,
//! so the layers stack on it before `tonic::client::Grpc` takes it:
//!
//! ```text
//! Metrics → CircuitBreaker → Timeout (500 ms) → Channel
//! ```
//!
//! gRPC answers errors with HTTP 200 and a `grpc-status`; [`classify_grpc`]
//! reads it (from the headers, where a server puts it when it fails before
//! sending a message), so that `UNAVAILABLE` counts as a failure for every
//! layer. The server fails for a while; the breaker opens, calls fail fast
//! without reaching it, and a probe closes it once the server is back.
//! Messages are plain `prost` structs: no `protoc` and no build script.
//!
//! ```text
//! cargo run --example tonic_client
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::server::NamedService;
use tonic::{Code, Status};
use tower::{BoxError, Service, ServiceBuilder};
use tower_bulwark::circuit_breaker::{
    CircuitBreakerConfig, CircuitBreakerLayer, OpenDuration, error::CircuitOpen,
};
use tower_bulwark::classify::Outcome;
use tower_bulwark::metrics::MetricsLayer;
use tower_bulwark::timeout::TimeoutLayer;

/// The messages, as `protoc` would generate them from
/// `message HelloRequest { string name = 1; }` and
/// `message HelloReply { string message = 1; }`.
#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

const SAY_HELLO: &str = "/demo.Greeter/SayHello";

/// A gRPC status code that means the service failed, not the caller.
/// Read from the response headers: a trailers-only response (an error
/// before any message) carries it there; a status sent in trailers after a
/// message is not seen here.
fn classify_grpc<B>(result: &Result<http::Response<B>, BoxError>) -> Outcome {
    let Ok(response) = result else {
        return Outcome::Failure;
    };
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32);
    match code {
        None | Some(Code::Ok) => Outcome::Success,
        Some(
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Internal
            | Code::ResourceExhausted
            | Code::Unknown,
        ) => Outcome::Failure,
        // The caller's mistakes (NOT_FOUND, INVALID_ARGUMENT, ...).
        Some(_) => Outcome::Ignored,
    }
}

// ----------------------------------------------------------------- server

/// The greeter service, hand-written where `tonic-build` would generate it.
#[derive(Clone, Default)]
struct Greeter {
    failing: Arc<AtomicBool>,
}

impl NamedService for Greeter {
    const NAME: &'static str = "demo.Greeter";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<http::Request<tonic::body::Body>> for Greeter {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let greeter = self.clone();
        Box::pin(async move {
            if request.uri().path() != SAY_HELLO {
                return Ok(Status::unimplemented(request.uri().path().to_owned()).into_http());
            }
            let codec = tonic_prost::ProstCodec::<HelloReply, HelloRequest>::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            Ok(grpc.unary(SayHello(greeter), request).await)
        })
    }
}

struct SayHello(Greeter);

impl Service<tonic::Request<HelloRequest>> for SayHello {
    type Response = tonic::Response<HelloReply>;
    type Error = Status;
    type Future = std::future::Ready<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        std::future::ready(if self.0.failing.load(Ordering::SeqCst) {
            Err(Status::unavailable("greeter is restarting"))
        } else {
            Ok(tonic::Response::new(HelloReply {
                message: format!("hello {}", request.into_inner().name),
            }))
        })
    }
}

// ----------------------------------------------------------------- client

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let greeter = Greeter::default();
    let failing = greeter.failing.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(greeter)
            .serve_with_incoming(tokio_stream_from(listener)),
    );

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy();
    let breaker = CircuitBreakerLayer::new(
        CircuitBreakerConfig::default()
            .service("greeter")
            .consecutive_failures(3)
            .open_duration(OpenDuration::fixed(Duration::from_millis(500))),
    )?
    .classify(classify_grpc::<tonic::body::Body>);
    let handle = breaker.handle();
    let stack = ServiceBuilder::new()
        .layer(MetricsLayer::new("greeter").classify(classify_grpc::<tonic::body::Body>))
        .layer(breaker)
        .layer(TimeoutLayer::new(Duration::from_millis(500))?)
        .service(channel);
    let mut client = tonic::client::Grpc::new(stack);

    for n in 1..=16 {
        // The server fails from the 5th call to the 10th.
        failing.store((5..=10).contains(&n), Ordering::SeqCst);
        client.ready().await.map_err(|e| -> BoxError { e })?;
        let codec = tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default();
        let request = tonic::Request::new(HelloRequest {
            name: format!("call {n}"),
        });
        let answer = client.unary(request, SAY_HELLO.parse()?, codec).await;
        let state = handle.state().as_str();
        match answer {
            Ok(reply) => println!(
                "{n:>2} ok: {:<14} breaker {state}",
                reply.into_inner().message
            ),
            Err(status) if caused_by::<CircuitOpen>(&status) => {
                println!("{n:>2} failed fast: circuit open, the server was not called");
            }
            Err(status) => println!(
                "{n:>2} {:?}: {}  breaker {state}",
                status.code(),
                status.message()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.abort();
    Ok(())
}

/// Whether `status` was caused by an `E` from the layers.
fn caused_by<E: std::error::Error + 'static>(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<E>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// The listener's connections as the stream tonic's server takes.
fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}
