use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tower_service::Service;

use super::config::BulkheadConfig;
use super::future::ResponseFuture;
use crate::BoxError;
use crate::error::Overloaded;

/// The places a layer's services share.
#[derive(Debug)]
pub(crate) struct Places {
    semaphore: Arc<Semaphore>,
    max: usize,
    queue: usize,
    wait: Duration,
    waiting: AtomicUsize,
}

impl Places {
    pub(crate) fn new(config: &BulkheadConfig) -> Self {
        Places {
            semaphore: Arc::new(Semaphore::new(config.max_concurrent_calls)),
            max: config.max_concurrent_calls,
            queue: config.max_queue,
            wait: config.max_wait,
            waiting: AtomicUsize::new(0),
        }
    }

    /// Places taken: calls running, and services ready to call.
    pub(crate) fn in_flight(&self) -> usize {
        self.max - self.semaphore.available_permits()
    }

    /// A place in the queue, if there is one.
    fn enqueue(self: &Arc<Self>) -> Option<QueueSlot> {
        self.waiting
            .fetch_update(AcqRel, Acquire, |n| (n < self.queue).then_some(n + 1))
            .ok()
            .map(|_| QueueSlot(self.clone()))
    }

    fn overloaded(&self) -> Overloaded {
        Overloaded::new("bulkhead", (!self.wait.is_zero()).then_some(self.wait))
    }
}

/// A call's place in the queue, given back when dropped.
#[derive(Debug)]
struct QueueSlot(Arc<Places>);

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, AcqRel);
    }
}

type Acquire = Pin<Box<dyn Future<Output = Option<OwnedSemaphorePermit>> + Send>>;

enum State {
    Idle,
    /// A place is held for the next call.
    Ready(OwnedSemaphorePermit),
    /// Waiting for a place, until the deadline.
    Waiting {
        acquire: Acquire,
        deadline: Pin<Box<tokio::time::Sleep>>,
        _slot: QueueSlot,
    },
    /// No place: the next call fails.
    Rejected,
}

/// Caps the calls running at once. See the [module docs](super).
pub struct Bulkhead<S> {
    inner: S,
    places: Arc<Places>,
    state: State,
}

impl<S> Bulkhead<S> {
    pub(crate) fn new(inner: S, places: Arc<Places>) -> Self {
        Bulkhead {
            inner,
            places,
            state: State::Idle,
        }
    }

    /// Takes a place, waits in the queue for one, or gives up: pending only
    /// while waiting.
    fn poll_place(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match &mut self.state {
                State::Ready(_) | State::Rejected => return Poll::Ready(()),
                State::Idle => {
                    self.state = match self.places.semaphore.clone().try_acquire_owned() {
                        Ok(permit) => State::Ready(permit),
                        Err(TryAcquireError::NoPermits) => match self.places.enqueue() {
                            Some(slot) => {
                                let semaphore = self.places.semaphore.clone();
                                State::Waiting {
                                    acquire: Box::pin(async move {
                                        semaphore.acquire_owned().await.ok()
                                    }),
                                    deadline: Box::pin(tokio::time::sleep(self.places.wait)),
                                    _slot: slot,
                                }
                            }
                            None => State::Rejected,
                        },
                        // The semaphore is never closed.
                        Err(TryAcquireError::Closed) => State::Rejected,
                    };
                }
                State::Waiting {
                    acquire, deadline, ..
                } => {
                    if let Poll::Ready(permit) = acquire.as_mut().poll(cx) {
                        self.state = permit.map_or(State::Rejected, State::Ready);
                    } else if deadline.as_mut().poll(cx).is_ready() {
                        self.state = State::Rejected;
                    } else {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

impl<S: Clone> Clone for Bulkhead<S> {
    /// A clone shares the places; it holds none of its own yet.
    fn clone(&self) -> Self {
        Bulkhead::new(self.inner.clone(), self.places.clone())
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Bulkhead<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .field("places", &self.places)
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
    /// with [`Overloaded`].
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        std::task::ready!(self.poll_place(cx));
        match self.state {
            State::Ready(_) => self.inner.poll_ready(cx).map_err(Into::into),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Ready(permit) => ResponseFuture::called(self.inner.call(req), permit),
            // `call` without `poll_ready`: a place if one is free now.
            State::Idle => match self.places.semaphore.clone().try_acquire_owned() {
                Ok(permit) => ResponseFuture::called(self.inner.call(req), permit),
                Err(_) => ResponseFuture::overloaded(self.places.overloaded()),
            },
            State::Waiting { .. } | State::Rejected => {
                ResponseFuture::overloaded(self.places.overloaded())
            }
        }
    }
}
