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
//!
//! Each answer has a short plain body ("circuit open", "timed out") that
//! names no internal address. The timeout answers without a copy of the
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
}

impl<B: From<&'static str>> Answers<http::Response<B>> for Http {
    fn answer(&self, kind: ErrorKind) -> http::Response<B> {
        let mut response = kind.http_response();
        if kind == ErrorKind::Elapsed {
            *response.status_mut() = self.timeout;
        }
        response
    }
}

#[cfg(feature = "grpc")]
impl<B: Default> Answers<http::Response<B>> for Grpc {
    fn answer(&self, kind: ErrorKind) -> http::Response<B> {
        kind.grpc_status().into_http()
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
