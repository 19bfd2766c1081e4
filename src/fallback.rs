//! Where a layer sends a request that its inner service will not answer.
//!
//! [`CircuitBreaker`](crate::circuit_breaker::CircuitBreaker) and
//! [`Timeout`](crate::timeout::Timeout) can answer a request themselves when
//! the inner service is not to be used: the breaker when it is open, the
//! timeout when the deadline passes. By default they fail with their error
//! ([`NoFallback`]); give the layer a backup service with `.fallback(svc)`
//! and the request goes to that service instead ([`WithFallback`]).
//!
//! A fallback is any `tower::Service` with the same request and response
//! types as the inner service whose error converts into [`BoxError`]: a
//! static answer (`service_fn`), a cache, a replica in another region.
//! Its readiness is only polled when it is about to be used, so a slow or
//! busy fallback never holds back the primary path.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "circuit-breaker")] {
//! use std::convert::Infallible;
//! use tower::{service_fn, ServiceBuilder};
//! use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
//!
//! let fallback = service_fn(|_name: String| async { Ok::<_, Infallible>("cached greeting".to_string()) });
//! let breaker = CircuitBreakerLayer::new(CircuitBreakerConfig::default())
//!     .expect("valid config")
//!     .fallback(fallback);
//! let svc = ServiceBuilder::new()
//!     .layer(breaker)
//!     .service(service_fn(|name: String| async move { Ok::<_, Infallible>(format!("hello {name}")) }));
//! # let _ = svc;
//! # }
//! ```

use std::future::{Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_service::Service;

use crate::BoxError;

/// The default: the layer answers with its own error (`CircuitOpen`,
/// `Elapsed`) and no other service is called.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFallback;

/// A backup service that answers the requests the inner service will not.
///
/// Made by the layers' `.fallback(svc)` methods.
#[derive(Debug, Clone)]
pub struct WithFallback<F> {
    service: F,
}

impl<F> WithFallback<F> {
    pub(crate) fn new(service: F) -> Self {
        WithFallback { service }
    }

    /// The fallback service.
    pub fn get_ref(&self) -> &F {
        &self.service
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoFallback {}
    impl<F> Sealed for super::WithFallback<F> {}
}

/// What a layer does with a request it will not send to its inner service:
/// implemented by [`NoFallback`] and [`WithFallback`] only.
pub trait Fallback<Req, Res>: sealed::Sealed {
    /// The future answering a request sent to the fallback.
    type Future: Future<Output = Result<Res, BoxError>>;

    /// Whether the fallback is ready for [`call`](Fallback::call).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>>;

    /// Answers `req`: [`NoFallback`] fails with `cause`, [`WithFallback`]
    /// calls its service (and drops `cause` without boxing it).
    fn call<E: Into<BoxError>>(&mut self, req: Req, cause: E) -> Self::Future;
}

impl<Req, Res> Fallback<Req, Res> for NoFallback {
    type Future = Ready<Result<Res, BoxError>>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call<E: Into<BoxError>>(&mut self, _req: Req, cause: E) -> Self::Future {
        std::future::ready(Err(cause.into()))
    }
}

impl<F, Req, Res> Fallback<Req, Res> for WithFallback<F>
where
    F: Service<Req, Response = Res>,
    F::Error: Into<BoxError>,
{
    type Future = FallbackFuture<F::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.service.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call<E: Into<BoxError>>(&mut self, req: Req, _cause: E) -> Self::Future {
        FallbackFuture {
            inner: self.service.call(req),
        }
    }
}

/// A fallback that a request can be handed to later, after it has been sent
/// to the inner service: what [`Timeout`](crate::timeout::Timeout) needs.
pub trait DeferredFallback<Req, Res>: Fallback<Req, Res> + Sized {
    /// What is kept of a request before it is sent on: for [`WithFallback`],
    /// a clone of the fallback service and of the request; for
    /// [`NoFallback`], nothing, so no clone is made and `Req` need not be
    /// `Clone`.
    fn keep(&self, req: &Req) -> Option<(Self, Req)>;
}

impl<Req, Res> DeferredFallback<Req, Res> for NoFallback {
    #[inline]
    fn keep(&self, _req: &Req) -> Option<(Self, Req)> {
        None
    }
}

impl<F, Req, Res> DeferredFallback<Req, Res> for WithFallback<F>
where
    F: Service<Req, Response = Res> + Clone,
    F::Error: Into<BoxError>,
    Req: Clone,
{
    #[inline]
    fn keep(&self, req: &Req) -> Option<(Self, Req)> {
        Some((self.clone(), req.clone()))
    }
}

pin_project! {
    /// The response future of a [`WithFallback`] service, with its error boxed.
    #[derive(Debug)]
    pub struct FallbackFuture<Fut> {
        #[pin]
        inner: Fut,
    }
}

impl<Fut, Res, E> Future for FallbackFuture<Fut>
where
    Fut: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Res, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map_err(Into::into)
    }
}
