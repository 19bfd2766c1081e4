//! gRPC clients: tonic channels behind the crate's layers.
//!
//! A `tonic::transport::Channel` is a `tower::Service` of HTTP requests, so
//! every layer stacks on it before `tonic::client::Grpc` (or a generated
//! client's `new`) takes it. Two things differ from plain HTTP:
//!
//! - A gRPC server answers HTTP 200 and puts the call's status in
//!   `grpc-status`, usually in the trailers at the end of the body. Give the
//!   layers a [`GrpcClassifier`](crate::classify::GrpcClassifier), and put
//!   [`GrpcOutcome`] outermost: it watches the body and, when it ends,
//!   tells the breaker, outlier detection and metrics the outcome its
//!   trailers carry.
//! - tonic turns a service's error into a `tonic::Status` by looking for one
//!   in the error's source chain, and makes an `UNKNOWN` of anything else.
//!   [`GrpcOutcome`] answers the crate's errors with the status they mean
//!   ([`crate::error`]): an open circuit or no endpoint is `UNAVAILABLE`, an
//!   elapsed deadline `DEADLINE_EXCEEDED`, each with the original error as
//!   its source.
//!
//! [`ResilienceLayer`](crate::stack::ResilienceLayer) built with
//! [`grpc()`](crate::stack::ResilienceBuilder::grpc) does both for you.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use tower::{BoxError, ServiceBuilder};
//! use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
//! use tower_bulwark::classify::GrpcClassifier;
//! use tower_bulwark::grpc::GrpcOutcomeLayer;
//! use tower_bulwark::timeout::TimeoutLayer;
//!
//! # fn main() -> Result<(), BoxError> {
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
//! let stack = ServiceBuilder::new()
//!     .layer(GrpcOutcomeLayer::new())
//!     .layer(CircuitBreakerLayer::new(CircuitBreakerConfig::default().service("greeter"))?
//!         .classify(GrpcClassifier::default()))
//!     .layer(TimeoutLayer::new(Duration::from_millis(500))?)
//!     .service(channel);
//! let client = tonic::client::Grpc::new(stack);
//! # let _ = client;
//! # Ok(())
//! # }
//! ```

mod body;
pub mod future;

use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

pub use self::body::GrpcBody;
use self::future::ResponseFuture;
use crate::BoxError;

/// Records gRPC outcomes at the end of the body, and answers the crate's
/// errors with the `tonic::Status` they mean. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct GrpcOutcome<S> {
    inner: S,
}

impl<S> GrpcOutcome<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        GrpcOutcome { inner }
    }

    inner_service!();
}

impl<S, Req, B> Service<Req> for GrpcOutcome<S>
where
    S: Service<Req, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<GrpcBody<B>>;
    type Error = tonic::Status;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| crate::error::grpc_status(e.into()))
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture::new(self.inner.call(req))
    }
}

/// Applies [`GrpcOutcome`]: put it outermost. See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcOutcomeLayer {
    _private: (),
}

impl GrpcOutcomeLayer {
    /// The layer.
    pub fn new() -> Self {
        GrpcOutcomeLayer { _private: () }
    }
}

impl<S> Layer<S> for GrpcOutcomeLayer {
    type Service = GrpcOutcome<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcOutcome::new(inner)
    }
}

/// `response` with its body watched for the end of the call: the pending
/// outcome the layers left in its extensions (if any) moves into the body.
pub(crate) fn watch<B>(response: http::Response<B>) -> http::Response<GrpcBody<B>> {
    let (mut parts, body) = response.into_parts();
    let pending = parts.extensions.remove::<crate::classify::PendingOutcome>();
    http::Response::from_parts(parts, GrpcBody::new(body, pending))
}
