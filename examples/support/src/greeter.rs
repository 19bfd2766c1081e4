//! A gRPC greeter on 127.0.0.1 for the tonic examples and tests, with no
//! `protoc`: the messages are plain `prost` structs and the service is
//! written where `tonic-build` would generate it.
//!
//! It can be told to fail: it then answers `UNAVAILABLE` in the trailers
//! after the response headers, as a gRPC server does when a call fails
//! after it started answering (every streaming error, and any proxy that
//! does not send "trailers-only" responses). It can be told to be slow (a
//! minute a call). It counts the calls that reached it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};

use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tower::{BoxError, Service};

/// `message HelloRequest { string name = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `message HelloReply { string message = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(string, tag = "1")]
    pub message: String,
}

/// The method's path.
pub const SAY_HELLO: &str = "/demo.Greeter/SayHello";

/// What the server does, shared with whoever steers it.
#[derive(Clone, Default)]
pub struct Greeter {
    failing: Arc<AtomicBool>,
    slow: Arc<AtomicBool>,
    calls: Arc<AtomicU32>,
}

impl Greeter {
    /// Fails every call from now on (or not).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Takes a minute to answer every call from now on (or not).
    #[allow(dead_code)]
    pub fn slow(&self, slow: bool) {
        self.slow.store(slow, Ordering::SeqCst);
    }

    /// Calls that reached the server.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A running server.
pub struct Server {
    /// `http://127.0.0.1:port`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts `greeter` on a free port of 127.0.0.1.
pub async fn serve(greeter: Greeter) -> Result<Server, BoxError> {
    serve_with(greeter, tower::layer::util::Identity::new()).await
}

/// Starts `greeter` behind `layer` (the server's own stack) on a free port
/// of 127.0.0.1.
pub async fn serve_with<L, B>(greeter: Greeter, layer: L) -> Result<Server, BoxError>
where
    L: tower::Layer<tonic::service::Routes> + Clone + Send + 'static,
    L::Service: Service<http::Request<tonic::body::Body>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as Service<http::Request<tonic::body::Body>>>::Future: Send + 'static,
    <L::Service as Service<http::Request<tonic::body::Body>>>::Error: Into<BoxError> + Send,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let incoming = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    });
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .layer(layer)
            .add_service(greeter)
            .serve_with_incoming(incoming)
            .await;
    });
    Ok(Server { url, task })
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
            greeter.calls.fetch_add(1, Ordering::SeqCst);
            let codec = tonic_prost::ProstCodec::<HelloReply, HelloRequest>::default();
            // Answered as a stream of one reply, so that a failure is sent
            // in the trailers, after the headers.
            Ok(tonic::server::Grpc::new(codec)
                .server_streaming(SayHello(greeter), request)
                .await)
        })
    }
}

struct SayHello(Greeter);

type Replies = futures::stream::Once<std::future::Ready<Result<HelloReply, Status>>>;

impl tonic::server::ServerStreamingService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type ResponseStream = Replies;
    type Future = BoxFuture<Result<Response<Replies>, Status>>;

    fn call(&mut self, request: Request<HelloRequest>) -> Self::Future {
        if self.0.slow.load(Ordering::SeqCst) {
            let greeter = self.0.clone();
            return Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                let mut this = SayHello(greeter);
                this.answer(request)
            });
        }
        let answer = self.answer(request);
        Box::pin(std::future::ready(answer))
    }
}

impl SayHello {
    fn answer(&mut self, request: Request<HelloRequest>) -> Result<Response<Replies>, Status> {
        let reply = if self.0.failing.load(Ordering::SeqCst) {
            Err(Status::unavailable("greeter is restarting"))
        } else {
            Ok(HelloReply {
                message: format!("hello {}", request.into_inner().name),
            })
        };
        Ok(Response::new(futures::stream::once(std::future::ready(
            reply,
        ))))
    }
}
