use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::future::ResponseFuture;
use crate::BoxError;
use crate::admission::places::{Gate, Places};

/// Caps the calls running at once. See the [module docs](super).
pub struct Bulkhead<S> {
    inner: S,
    gate: Gate,
}

impl<S> Bulkhead<S> {
    pub(crate) fn new(inner: S, places: Arc<Places>) -> Self {
        Bulkhead {
            inner,
            gate: Gate::new(places),
        }
    }

    inner_service!(into_inner: "A place taken by `poll_ready` is given back.",);
}

impl<S: Clone> Clone for Bulkhead<S> {
    /// A clone shares the places; it holds none of its own yet.
    fn clone(&self) -> Self {
        Bulkhead {
            inner: self.inner.clone(),
            gate: self.gate.clone(),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Bulkhead<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .field("places", self.gate.places())
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for Bulkhead<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    /// Takes a place (or waits for one), then asks the inner service. With
    /// no place to be had it is ready all the same, and the call fails
    /// with [`Overloaded`](crate::error::Overloaded).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if std::task::ready!(self.gate.poll_place(cx)) {
            self.inner.poll_ready(cx).map_err(Into::into)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.gate.take() {
            Ok(place) => ResponseFuture::called(self.inner.call(req), place),
            Err(overloaded) => ResponseFuture::overloaded(overloaded),
        }
    }
}
