//! The layers on the server side: in an axum `Router` or a tonic `Server`,
//! answering by themselves.
//!
//! On a server, a layer that will not send a request on (an open breaker,
//! an elapsed deadline) has nobody to hand an error to: the framework wants
//! a response. Give the layer [`Respond`] and it answers by itself, and
//! keeps the inner service's error type, so axum's `Router::layer` (whose
//! routes are `Infallible`) and tonic's `Server::layer` take it as it is:
//!
//! | cause | [`Respond::http`] | [`Respond::grpc`] (feature `grpc`) |
//! |---|---|---|
//! | circuit open | 503, `Retry-After` in whole seconds rounded up (at least 1) | `UNAVAILABLE`, `grpc-retry-pushback-ms` |
//! | deadline passed | 504 (or 408: [`Respond::timeout_status`]) | `DEADLINE_EXCEEDED` |
//! | overloaded (admission control, through [`RespondLayer`]) | 503, `Retry-After` when known | `RESOURCE_EXHAUSTED`, `grpc-retry-pushback-ms` when known |
//!
//! Each answer has a short plain body ("circuit open", "timed out") that
//! names no internal address.
//!
//! A route served by a service that fails with a `BoxError` (a client stack
//! to an upstream, a balancer) gets the same answers from
//! [`RespondLayer`]: 503 when no endpoint is available, 502 for an error
//! that is not the crate's. The timeout answers without a copy of the
//! request: unlike a fallback service, [`Respond`] needs nothing of it, so
//! neither the request nor its body need be `Clone`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
//! use tower_bulwark::server::Respond;
//! use tower_bulwark::timeout::TimeoutLayer;
//!
//! # fn main() -> Result<(), tower::BoxError> {
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "a user" }))
//!     .layer(TimeoutLayer::new(Duration::from_secs(2))?.respond(Respond::http()))
//!     .layer(CircuitBreakerLayer::new(CircuitBreakerConfig::default())?.respond(Respond::http()));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

use std::future::Ready;
use std::task::{Context, Poll};

use http::StatusCode;

use crate::error::ErrorKind;
use crate::fallback::{Cause, DeferredFallback, ErrorPolicy, Fallback, Immediate};

/// Makes a layer answer by itself on a server, with the HTTP response or
/// gRPC status its cause means, instead of failing. See the
/// [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Respond<P = Http> {
    answers: P,
}

/// HTTP answers: 503 with `Retry-After`, 504 (or another status) on a
/// deadline.
#[derive(Debug, Clone, Copy)]
pub struct Http {
    timeout: StatusCode,
}

/// gRPC answers, as trailers-only responses: `UNAVAILABLE`,
/// `DEADLINE_EXCEEDED`.
#[cfg(feature = "grpc")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Grpc {
    _private: (),
}

impl Respond {
    /// HTTP answers: 503 with `Retry-After` when the circuit is open, 504
    /// when the deadline passed.
    pub fn http() -> Self {
        Respond {
            answers: Http {
                timeout: StatusCode::GATEWAY_TIMEOUT,
            },
        }
    }

    /// Answers an elapsed deadline with `status` instead of 504: 408
    /// (Request Timeout) is the usual other choice.
    pub fn timeout_status(mut self, status: StatusCode) -> Self {
        self.answers.timeout = status;
        self
    }
}

#[cfg(feature = "grpc")]
impl Respond<Grpc> {
    /// gRPC answers: `UNAVAILABLE` (with `grpc-retry-pushback-ms`) when the
    /// circuit is open, `DEADLINE_EXCEEDED` when the deadline passed.
    pub fn grpc() -> Self {
        Respond {
            answers: Grpc::default(),
        }
    }
}

/// Turns what a cause means into a response of type `Res`.
pub trait Answers<Res> {
    /// The response for `kind`.
    fn answer(&self, kind: ErrorKind) -> Res;

    /// The response for an error that is not the crate's, for
    /// [`RespondLayer`]: `status` for HTTP, the error's own gRPC status.
    fn answer_other(&self, error: crate::BoxError, status: StatusCode) -> Res;
}

impl<B: From<&'static str>> Answers<http::Response<B>> for Http {
    fn answer(&self, kind: ErrorKind) -> http::Response<B> {
        let mut response = kind.http_response();
        if kind == ErrorKind::Elapsed {
            *response.status_mut() = self.timeout;
        }
        response
    }

    fn answer_other(&self, _error: crate::BoxError, status: StatusCode) -> http::Response<B> {
        let mut response =
            http::Response::new(B::from(status.canonical_reason().unwrap_or("error")));
        *response.status_mut() = status;
        response
    }
}

#[cfg(feature = "grpc")]
impl<B: Default> Answers<http::Response<B>> for Grpc {
    fn answer(&self, kind: ErrorKind) -> http::Response<B> {
        kind.grpc_status().into_http()
    }

    /// The error's status if it is (or carries) a `tonic::Status`;
    /// otherwise as `tonic::Status::from_error` makes it.
    fn answer_other(&self, error: crate::BoxError, _status: StatusCode) -> http::Response<B> {
        crate::error::grpc_status(error).into_http()
    }
}

impl<P> Immediate for Respond<P> {}

impl<P> ErrorPolicy for Respond<P> {
    type Error<E> = E;

    #[inline]
    fn inner<E: Into<crate::BoxError>>(error: E) -> E {
        error
    }
}

impl<P, Req, Res, E> Fallback<Req, Res, E> for Respond<P>
where
    P: Answers<Res>,
{
    type Future = Ready<Result<Res, E>>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call<C: Cause>(&mut self, _req: Req, cause: C) -> Self::Future {
        std::future::ready(Ok(self.answers.answer(cause.kind())))
    }
}

impl<P, Req, Res, E> DeferredFallback<Req, Res, E> for Respond<P>
where
    P: Answers<Res> + Clone,
{
    type Kept = ();

    #[inline]
    fn keep(&self, _req: &Req) -> (Self, ()) {
        (self.clone(), ())
    }

    #[inline]
    fn take(&self, _req: Req) -> (Self, ()) {
        (self.clone(), ())
    }

    #[inline]
    fn call_kept<C: Cause>(&mut self, _kept: (), cause: C) -> Self::Future {
        std::future::ready(Ok(self.answers.answer(cause.kind())))
    }
}

/// Answers the errors of a service that fails with [`BoxError`](crate::BoxError)
/// (a client stack used as a route's service, a balancer of upstreams),
/// so that it can serve a route: the crate's errors as [`Respond`] answers
/// them (an open circuit 503 with `Retry-After`, no endpoint available
/// 503, a deadline 504), any other error with
/// [`other_status`](RespondLayer::other_status) (502 by default: the
/// upstream failed) and a body that names no address. See the
/// [module docs](self).
///
/// # Example
///
/// ```
/// use axum::Router;
/// use tower::{service_fn, BoxError, Layer};
/// use tower_bulwark::server::RespondLayer;
///
/// // An upstream, through the client stack of your choice.
/// let upstream = service_fn(|_req: axum::extract::Request| async {
///     Err::<axum::response::Response, BoxError>("10.0.0.7:8080 refused".into())
/// });
/// let app: Router = Router::new().route_service("/users/{id}", RespondLayer::http().layer(upstream));
/// # let _ = app;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RespondLayer<P = Http> {
    // `other` is unused by gRPC answers, which carry the error's own status.
    respond: Respond<P>,
    other: StatusCode,
}

impl RespondLayer {
    /// HTTP answers (see [`Respond::http`]); other errors are 502.
    pub fn http() -> Self {
        RespondLayer {
            respond: Respond::http(),
            other: StatusCode::BAD_GATEWAY,
        }
    }

    /// Answers an elapsed deadline with `status` instead of 504.
    pub fn timeout_status(mut self, status: StatusCode) -> Self {
        self.respond = self.respond.timeout_status(status);
        self
    }

    /// Answers errors that are not the crate's with `status` (500, say,
    /// when the service is the server's own work rather than an upstream).
    pub fn other_status(mut self, status: StatusCode) -> Self {
        self.other = status;
        self
    }
}

#[cfg(feature = "grpc")]
impl RespondLayer<Grpc> {
    /// gRPC answers (see [`Respond::grpc`]); other errors keep their own
    /// `tonic::Status`, or become one as `tonic::Status::from_error` makes it.
    pub fn grpc() -> Self {
        RespondLayer {
            respond: Respond::grpc(),
            other: StatusCode::BAD_GATEWAY,
        }
    }
}

impl<P> From<Respond<P>> for RespondLayer<P> {
    /// The layer answering as `respond` does; other errors are 502.
    fn from(respond: Respond<P>) -> Self {
        RespondLayer {
            respond,
            other: StatusCode::BAD_GATEWAY,
        }
    }
}

impl<P> RespondLayer<P> {
    #[cfg(feature = "stack")]
    pub(crate) fn with_other(mut self, status: StatusCode) -> Self {
        self.other = status;
        self
    }
}

impl<S, P: Clone> tower_layer::Layer<S> for RespondLayer<P> {
    type Service = Responding<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Responding {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service whose errors are answered as responses; made by
/// [`RespondLayer`].
#[derive(Debug, Clone)]
pub struct Responding<S, P = Http> {
    inner: S,
    layer: RespondLayer<P>,
}

impl<S, P> Responding<S, P> {
    inner_service!();
}

impl<S, Req, B, P> tower_service::Service<Req> for Responding<S, P>
where
    S: tower_service::Service<Req, Response = http::Response<B>>,
    S::Error: Into<crate::BoxError>,
    P: Answers<http::Response<B>> + Clone,
{
    type Response = http::Response<B>;
    type Error = std::convert::Infallible;
    type Future = future::RespondingFuture<S::Future, P>;

    /// Ready when the inner service is; an inner service that fails to get
    /// ready is called anyway, and its error answered then.
    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        future::RespondingFuture::new(
            self.inner.call(req),
            self.layer.respond.clone(),
            self.layer.other,
        )
    }
}

pub mod future {
    //! Future types.

    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, ready};

    use http::StatusCode;
    use pin_project_lite::pin_project;

    use super::{Answers, Respond};
    use crate::error::ErrorKind;

    pin_project! {
        /// Response future of [`Responding`](super::Responding).
        #[derive(Debug)]
        pub struct RespondingFuture<F, P> {
            #[pin]
            inner: F,
            respond: Respond<P>,
            other: StatusCode,
        }
    }

    impl<F, P> RespondingFuture<F, P> {
        pub(super) fn new(inner: F, respond: Respond<P>, other: StatusCode) -> Self {
            RespondingFuture {
                inner,
                respond,
                other,
            }
        }
    }

    impl<F, B, E, P> Future for RespondingFuture<F, P>
    where
        F: Future<Output = Result<http::Response<B>, E>>,
        E: Into<crate::BoxError>,
        P: Answers<http::Response<B>>,
    {
        type Output = Result<http::Response<B>, std::convert::Infallible>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            Poll::Ready(Ok(match ready!(this.inner.poll(cx)) {
                Ok(response) => response,
                Err(error) => {
                    let error: crate::BoxError = error.into();
                    match ErrorKind::of(&*error) {
                        Some(kind) => this.respond.answers.answer(kind),
                        None => this.respond.answers.answer_other(error, *this.other),
                    }
                }
            }))
        }
    }
}
