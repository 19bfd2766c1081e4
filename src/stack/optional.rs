//! A layer the configuration may turn off.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

/// A layer's service around `S` when the configuration turns the layer on,
/// or `S` as it is.
///
/// `tower::util::Either` does the same; this one is written out so that
/// its `call` is always inlined: the compiler then builds each layer's
/// future where the caller keeps it, instead of building it apart and
/// copying it up one layer at a time (those copies of a future of about
/// 600 bytes were a fifth of the stack's instructions; with this `call`
/// and the breaker's inlined, under a tenth of that).
#[derive(Clone, Debug)]
pub enum Optional<L, S> {
    /// The layer is on.
    On(L),
    /// The layer is off.
    Off(S),
}

impl<L, S, Req> Service<Req> for Optional<L, S>
where
    L: Service<Req>,
    S: Service<Req, Response = L::Response, Error = L::Error>,
{
    type Response = L::Response;
    type Error = L::Error;
    type Future = OptionalFuture<L::Future, S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Optional::On(service) => service.poll_ready(cx),
            Optional::Off(service) => service.poll_ready(cx),
        }
    }

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        match self {
            Optional::On(service) => OptionalFuture {
                kind: Kind::On {
                    future: service.call(req),
                },
            },
            Optional::Off(service) => OptionalFuture {
                kind: Kind::Off {
                    future: service.call(req),
                },
            },
        }
    }
}

pin_project! {
    /// Response future of [`Optional`].
    #[derive(Debug)]
    pub struct OptionalFuture<L, S> {
        #[pin]
        kind: Kind<L, S>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<L, S> {
        On { #[pin] future: L },
        Off { #[pin] future: S },
    }
}

impl<L, S> Future for OptionalFuture<L, S>
where
    L: Future,
    S: Future<Output = L::Output>,
{
    type Output = L::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::On { future } => future.poll(cx),
            KindProj::Off { future } => future.poll(cx),
        }
    }
}

/// Wraps `layer`'s service around `inner` when the layer is on.
pub(super) fn maybe<L: Layer<S>, S>(layer: Option<&L>, inner: S) -> Optional<L::Service, S> {
    match layer {
        Some(layer) => Optional::On(layer.layer(inner)),
        None => Optional::Off(inner),
    }
}
