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
//! On a server, [`Respond`](crate::server::Respond) (feature `http`) makes
//! the layer answer by itself, with the HTTP response or gRPC status the
//! cause means, and keep the inner service's error type (axum's
//! `Infallible`); see [`crate::server`].
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
use crate::error::ErrorKind;

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
    #[cfg(feature = "stack")]
    impl<Req, Res> Sealed for super::OptionalFallback<Req, Res> {}
    #[cfg(feature = "http")]
    impl<P> Sealed for crate::server::Respond<P> {}

    pub trait SealedCause {}
    #[cfg(feature = "circuit-breaker")]
    impl SealedCause for crate::circuit_breaker::error::CircuitOpen {}
    impl SealedCause for tower::timeout::error::Elapsed {}
}

/// Why a layer does not send a request on: the breaker's
/// [`CircuitOpen`](crate::circuit_breaker::error::CircuitOpen) or the
/// timeout's [`Elapsed`](crate::timeout::error::Elapsed). What a fallback is
/// given with the request.
pub trait Cause: Into<BoxError> + sealed::SealedCause {
    /// What it means to a caller.
    fn kind(&self) -> ErrorKind;
}

#[cfg(feature = "circuit-breaker")]
impl Cause for crate::circuit_breaker::error::CircuitOpen {
    #[inline]
    fn kind(&self) -> ErrorKind {
        ErrorKind::CircuitOpen {
            retry_after: self.retry_after(),
        }
    }
}

impl Cause for tower::timeout::error::Elapsed {
    #[inline]
    fn kind(&self) -> ErrorKind {
        ErrorKind::Elapsed
    }
}

/// How a layer's errors look with this fallback: the inner service's
/// errors boxed into a [`BoxError`] beside the layer's own (with
/// [`NoFallback`] and [`WithFallback`]), or kept as they are when the layer
/// answers by itself ([`Respond`](crate::server::Respond): axum's
/// `Infallible` stays `Infallible`).
pub trait ErrorPolicy: sealed::Sealed {
    /// The layer's error, for an inner service failing with `E`.
    type Error<E>;

    /// An error of the inner service, as the layer returns it.
    fn inner<E: Into<BoxError>>(error: E) -> Self::Error<E>;
}

/// What a layer does with a request it will not send to its inner service
/// (whose errors are `E`): implemented by [`NoFallback`], [`WithFallback`],
/// [`Respond`](crate::server::Respond) and `OptionalFallback` only.
pub trait Fallback<Req, Res, E>: ErrorPolicy {
    /// The future answering a request sent to the fallback.
    type Future: Future<Output = Result<Res, Self::Error<E>>>;

    /// Whether the fallback is ready for [`call`](Fallback::call).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error<E>>>;

    /// Answers `req`: [`NoFallback`] fails with `cause`, [`WithFallback`]
    /// calls its service (and drops `cause` without boxing it),
    /// [`Respond`](crate::server::Respond) answers what `cause` means.
    fn call<C: Cause>(&mut self, req: Req, cause: C) -> Self::Future;
}

impl ErrorPolicy for NoFallback {
    type Error<E> = BoxError;

    #[inline]
    fn inner<E: Into<BoxError>>(error: E) -> BoxError {
        error.into()
    }
}

impl<Req, Res, E> Fallback<Req, Res, E> for NoFallback {
    type Future = Ready<Result<Res, BoxError>>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call<C: Cause>(&mut self, _req: Req, cause: C) -> Self::Future {
        std::future::ready(Err(cause.into()))
    }
}

impl<F> ErrorPolicy for WithFallback<F> {
    type Error<E> = BoxError;

    #[inline]
    fn inner<E: Into<BoxError>>(error: E) -> BoxError {
        error.into()
    }
}

impl<F, Req, Res, E> Fallback<Req, Res, E> for WithFallback<F>
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
    fn call<C: Cause>(&mut self, req: Req, _cause: C) -> Self::Future {
        FallbackFuture {
            inner: self.service.call(req),
        }
    }
}

/// A fallback that answers at once, always ready: [`NoFallback`] and
/// [`Respond`](crate::server::Respond). A breaker per key decides only when
/// it has the request, after readiness, so it takes only these.
pub trait Immediate: sealed::Sealed {}

impl Immediate for NoFallback {}

/// A fallback that a request can be handed to later, after it has been sent
/// to the inner service: what [`Timeout`](crate::timeout::Timeout) needs.
pub trait DeferredFallback<Req, Res, E>: Fallback<Req, Res, E> + Sized {
    /// What is kept of a request before it is sent on, for the fallback:
    /// for [`WithFallback`], a clone of it; for [`NoFallback`] and
    /// [`Respond`](crate::server::Respond), nothing, so no copy is made
    /// and `Req` need not be `Clone`.
    type Kept;

    /// A copy of the fallback, and what it keeps of `req`, which is about
    /// to be sent on.
    fn keep(&self, req: &Req) -> (Self, Self::Kept);

    /// A copy of the fallback, and what it keeps of `req`, which will not
    /// be sent on.
    fn take(&self, req: Req) -> (Self, Self::Kept);

    /// Answers the request `kept` was kept of, as [`Fallback::call`].
    fn call_kept<C: Cause>(&mut self, kept: Self::Kept, cause: C) -> Self::Future;
}

impl<Req, Res, E> DeferredFallback<Req, Res, E> for NoFallback {
    type Kept = ();

    #[inline]
    fn keep(&self, _req: &Req) -> (Self, ()) {
        (NoFallback, ())
    }

    #[inline]
    fn take(&self, _req: Req) -> (Self, ()) {
        (NoFallback, ())
    }

    #[inline]
    fn call_kept<C: Cause>(&mut self, _kept: (), cause: C) -> Self::Future {
        std::future::ready(Err(cause.into()))
    }
}

impl<F, Req, Res, E> DeferredFallback<Req, Res, E> for WithFallback<F>
where
    F: Service<Req, Response = Res> + Clone,
    F::Error: Into<BoxError>,
    Req: Clone,
{
    type Kept = Req;

    #[inline]
    fn keep(&self, req: &Req) -> (Self, Req) {
        (self.clone(), req.clone())
    }

    #[inline]
    fn take(&self, req: Req) -> (Self, Req) {
        (self.clone(), req)
    }

    #[inline]
    fn call_kept<C: Cause>(&mut self, kept: Req, cause: C) -> Self::Future {
        Fallback::<Req, Res, E>::call(self, kept, cause)
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

#[cfg(feature = "stack")]
pub use self::optional::{OptionalFallback, OptionalFallbackFuture};

#[cfg(feature = "stack")]
mod optional {
    use super::*;
    use std::sync::Arc;
    use tower::util::BoxCloneSyncService;

    type BoxFuture<Res> = Pin<Box<dyn Future<Output = Result<Res, BoxError>> + Send>>;

    /// A fallback chosen at run time: a boxed backup service, or none.
    ///
    /// What [`ResilienceLayer`](crate::stack::ResilienceLayer) uses, so that a
    /// stack has one type whether it has a fallback or not. Boxing costs an
    /// allocation per call *to the fallback* only: the primary path never
    /// touches it.
    ///
    /// A clone shares the backup service and makes its own copy only when it
    /// first sends a request to it: the breaker's service is cloned on every
    /// call by the layers above it (retries, hedges), and copying a boxed
    /// service allocates.
    pub struct OptionalFallback<Req, Res> {
        shared: Option<Arc<BoxCloneSyncService<Req, Res, BoxError>>>,
        own: Option<BoxCloneSyncService<Req, Res, BoxError>>,
    }

    impl<Req, Res> OptionalFallback<Req, Res> {
        /// No fallback: the layer answers with its own error.
        pub fn none() -> Self {
            OptionalFallback {
                shared: None,
                own: None,
            }
        }

        /// `service` answers what the layer will not send on.
        pub fn new<S>(service: S) -> Self
        where
            S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
            S::Error: Into<BoxError>,
            S::Future: Send + 'static,
            Req: 'static,
            Res: 'static,
        {
            let service = tower::ServiceBuilder::new()
                .map_err(Into::into)
                .service(service);
            OptionalFallback {
                shared: Some(Arc::new(BoxCloneSyncService::new(service))),
                own: None,
            }
        }

        /// Whether a fallback service is set.
        pub fn is_some(&self) -> bool {
            self.shared.is_some()
        }

        /// This clone's own copy of the backup service, made on first use.
        fn service(&mut self) -> Option<&mut BoxCloneSyncService<Req, Res, BoxError>> {
            let shared = self.shared.as_ref()?;
            Some(
                self.own
                    .get_or_insert_with(|| BoxCloneSyncService::clone(shared)),
            )
        }
    }

    impl<Req, Res> Clone for OptionalFallback<Req, Res> {
        fn clone(&self) -> Self {
            OptionalFallback {
                shared: self.shared.clone(),
                own: None,
            }
        }
    }

    impl<Req, Res> Default for OptionalFallback<Req, Res> {
        fn default() -> Self {
            Self::none()
        }
    }

    impl<Req, Res> std::fmt::Debug for OptionalFallback<Req, Res> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("OptionalFallback")
                .field("is_some", &self.shared.is_some())
                .finish()
        }
    }

    pin_project! {
        /// The response future of an [`OptionalFallback`]: the layer's own
        /// error, or the fallback service's answer.
        pub struct OptionalFallbackFuture<Res> {
            #[pin]
            state: State<Res>,
        }
    }

    pin_project! {
        #[project = StateProj]
        enum State<Res> {
            Failed { error: Option<BoxError> },
            Service { #[pin] future: BoxFuture<Res> },
        }
    }

    impl<Res> Future for OptionalFallbackFuture<Res> {
        type Output = Result<Res, BoxError>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            match self.project().state.project() {
                StateProj::Failed { error } => Poll::Ready(Err(error
                    .take()
                    .unwrap_or_else(|| "fallback future polled after completion".into()))),
                StateProj::Service { future } => future.poll(cx),
            }
        }
    }

    impl<Res> std::fmt::Debug for OptionalFallbackFuture<Res> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("OptionalFallbackFuture")
                .finish_non_exhaustive()
        }
    }

    impl<Req, Res> ErrorPolicy for OptionalFallback<Req, Res> {
        type Error<E> = BoxError;

        #[inline]
        fn inner<E: Into<BoxError>>(error: E) -> BoxError {
            error.into()
        }
    }

    impl<Req, Res, E> Fallback<Req, Res, E> for OptionalFallback<Req, Res> {
        type Future = OptionalFallbackFuture<Res>;

        #[inline]
        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            match self.service() {
                Some(service) => service.poll_ready(cx),
                None => Poll::Ready(Ok(())),
            }
        }

        #[inline]
        fn call<C: Cause>(&mut self, req: Req, cause: C) -> Self::Future {
            match self.service() {
                Some(service) => OptionalFallbackFuture {
                    state: State::Service {
                        future: service.call(req),
                    },
                },
                None => OptionalFallbackFuture {
                    state: State::Failed {
                        error: Some(cause.into()),
                    },
                },
            }
        }
    }
}
